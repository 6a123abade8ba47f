"""What the rehearsal's scenarios share (rehearsal/scenario.py, adopt.py, verified.py): the
report, the canary's share, the next version of the user's model, the emulator's journal."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from rehearsal.emulators import Emulators
from rehearsal.rollout import Rollout

CANARY_PERCENT = 10
NEXT_VERSION_LABEL = "rehearsal-next"
SEED_TARGET = "seed"


class PrerequisiteMissing(RuntimeError):
    """Something the rehearsal needs is not on this machine; nothing was started."""


@dataclass
class Report:
    config: str
    targets: list[str]
    first_sha256: str = ""
    next_sha256: str = ""
    tile_size: int = 0
    facts: dict[str, object] = field(default_factory=dict)
    summary: str = ""


def next_version(data: dict) -> dict:
    """The config of the next version of the user's own model: the same model, with
    `model.version_label` set, which changes the artifact's sha256 (and nothing it computes)."""
    data = copy.deepcopy(data)
    data["model"]["version_label"] = NEXT_VERSION_LABEL
    return data


def journal_since(emulators: Emulators, start: int) -> list[dict]:
    return emulators.journal()[start:]


def deployed_id_of(rollout: Rollout, target: str, address: str) -> str:
    """The deployed-model ID a deployment address stands for (from the synthesized stack,
    or, for a deployment the config dropped, from the state)."""
    name = address.split(".", 1)[1]
    spec = rollout.stack(f"{target}-deployment")["resource"].get("eevertex_deployment", {}).get(name)
    if spec is not None:
        return spec["deployed_model_id"]
    result = rollout.terraform.run(rollout.stack_dir(f"{target}-deployment"), "state", "show", "-no-color", address)
    for line in result.stdout.splitlines():
        if line.strip().startswith("deployed_model_id"):
            return line.split("=", 1)[1].strip().strip('"')
    raise KeyError(address)
