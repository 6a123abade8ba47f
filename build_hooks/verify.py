"""`python -m build_hooks.verify <config.toml>`: serve the built artifact locally as the
config's first target serves it (`build_hooks.serve.served`: our image, or a prebuilt image's
server) and check it answers Earth Engine's requests with what the framework model itself
computes.

The requests are the config's own: its tile size plus overlap, split into requests of at
most max_payload_bytes, web-safe base64 [y, x, 1] tensors (build_hooks.earth_engine);
every answer is checked for outputTileSize, every band, finite numbers. One tile, then
four; then a malformed request, which must get a 4xx while the server keeps serving.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from build_hooks import earth_engine as ee
from build_hooks.manifest import Manifest, read_manifest
from build_hooks.spec import load_spec
from config.rollout import RolloutConfig, load_config

TOLERANCE = 1e-4


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def reference(rollout: RolloutConfig, contract: ee.Contract, tiles: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What Earth Engine should get back for the tiles: the framework model's own answer,
    its centre outputTileSize, split into the output bands."""
    return contract.expected_outputs(reference_values(rollout, contract.model_input(tiles)))


def reference_values(rollout: RolloutConfig, channels_last: np.ndarray) -> np.ndarray:
    """The framework model's [N, s, s, values] for tiles [N, s, s, bands] (channels last)."""
    from build_hooks.golden import model_values

    return model_values(load_spec(rollout.model.source, rollout.path.parent if rollout.path else None), channels_last)


def check_call(name: str, rollout: RolloutConfig, contract: ee.Contract, tiles: dict, send) -> Check:
    """Send the tiles as Earth Engine would (`send(batch)` -> HTTP status and predictions, or
    the gRPC output tensors) and compare every band with the framework model's answer."""
    try:
        batches: dict[str, list[np.ndarray]] = {}
        for batch in contract.requests(tiles):
            status, predictions = send(batch)
            if status != 200:
                return Check(name, False, f"HTTP {status}: {str(predictions)[:300]}")
            for band, values in contract.read_predictions(batch, predictions).items():
                batches.setdefault(band, []).append(values)
    except (ee.ContractError, ValueError) as error:
        return Check(name, False, str(error))
    got = {band: np.concatenate(parts) for band, parts in batches.items()}
    return compare(name, got, reference(rollout, contract, tiles))


def compare(name: str, got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> Check:
    for band, expected in want.items():
        if band not in got:
            return Check(name, False, f"band {band!r} missing from the response (got {sorted(got)})")
        if got[band].shape != expected.shape:
            return Check(name, False, f"band {band!r} has shape {got[band].shape}, expected {expected.shape}")
        error = float(np.max(np.abs(got[band] - expected)))
        if error > TOLERANCE:
            return Check(name, False, f"band {band!r} differs by up to {error:.2e}")
    shapes = ", ".join(f"{b} {tuple(v.shape)}" for b, v in got.items())
    return Check(name, True, shapes)


def verify_served(rollout: RolloutConfig, manifest: Manifest) -> list[Check]:
    from build_hooks.serve import served

    contract = ee.Contract.from_config(rollout.model, manifest)
    with served(rollout, manifest) as server:

        def send(batch):
            status, body = server.predict(batch.rest_body())
            return status, body.get("predictions") if isinstance(body, dict) and status == 200 else body

        checks = _calls(server.description, rollout, contract, send)
        if contract.payload_format in ("ND_ARRAYS", "RAW_JSON"):
            status, body = server.predict(b'{"instances": [[[1.0, 2.0]]]}')
            checks.append(Check("malformed request", 400 <= status < 500, f"HTTP {status}: {body}"))
            (batch,) = contract.requests(contract.example_tiles(count=1))
            status, _ = server.predict(batch.body)
            checks.append(Check("still serving", status == 200, f"HTTP {status}"))
    return checks


def _calls(server: str, rollout: RolloutConfig, contract: ee.Contract, send) -> list[Check]:
    """One tile of the config's size, then four, as Earth Engine sends them."""
    return [
        check_call(
            f"{server}, {contract.payload_format}, {count} tile(s) of {contract.sides}",
            rollout,
            contract,
            contract.example_tiles(count=count, seed=count),
            send,
        )
        for count in (1, 4)
    ]


def verify(rollout: RolloutConfig) -> list[Check]:
    """Check the built artifact with the config's own tiles (tile_size + overlap)."""
    return verify_served(rollout, read_manifest(rollout.artifact_dir))


def main(argv: list[str]) -> int:
    failed = 0
    for path in argv or ["rollout.toml"]:
        rollout = load_config(path)
        print(f"verify {path} ({rollout.model.name}):")
        for check in verify(rollout):
            print(f"  {'ok  ' if check.ok else 'FAIL'} {check.name}: {check.detail}")
            failed += not check.ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
