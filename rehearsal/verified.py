"""Scenario 9, verified promotion, on the config's first target: a canary whose artifact in the
bucket holds wrong weights under the same bands is stopped at the canary step (the golden tile
the build stored is not what it answers), serving goes back to the old version with no failed
Earth Engine request; a correct canary passes and is promoted."""

from __future__ import annotations

import copy
import json
import shutil
import tomllib
from pathlib import Path

from config.rollout import parse_config
from rehearsal.earth_engine_client import EarthEngine, PredictLoop
from rehearsal.emulators import Emulators
from rehearsal.prerequisites import missing_prerequisites
from rehearsal.progress import Progress, RehearsalFailed, check, found
from rehearsal.rollout import Rollout
from rehearsal.steps import CANARY_PERCENT, NEXT_VERSION_LABEL, PrerequisiteMissing, Report

FIXED_VERSION_LABEL = "rehearsal-fixed"
# The built-in models' other weights: the same bands and layers, another seed.
WRONG_WEIGHTS = """from build_hooks import examples


def model():
    return examples.{factory}(seed=7)
"""


def rehearse_verified_canary(config_path: Path, workdir: Path, *, out=print) -> Report:
    """Verified promotion on the config's first target (a built-in model's config): see the
    module docstring. The facts: what the refused apply said, the split after it, the Earth
    Engine requests during it (none failed; those the broken canary answered before the split
    went back), and the split after the correct canary and its promotion."""
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    data = tomllib.loads(config_path.read_text())
    data["model"]["artifact_dir"] = str(workdir / "artifact")
    data["targets"] = data["targets"][:1]
    report = Report(config=str(config_path), targets=[data["targets"][0]["name"]])
    progress = Progress(out=out, log=workdir / "rehearsal.log")
    config = parse_config(copy.deepcopy(data), config_path.resolve())
    if not config.model.source.startswith("builtin:"):
        raise PrerequisiteMissing(
            f"model.source {config.model.source}: the broken canary takes a built-in model's "
            "other weights; allowed: a builtin: source"
        )
    problems = missing_prerequisites(config)
    if problems:
        raise PrerequisiteMissing("missing prerequisites, nothing started:\n" + "\n".join(f"  {p}" for p in problems))
    try:
        with Emulators(workdir / "emulators") as emulators:
            _verified_canary(data, config_path, workdir, emulators, progress, report)
    finally:
        report.summary = progress.summary()
    return report


def _wrong_weights(rollout: Rollout, data: dict, workdir: Path, progress: Progress):
    """The same model with other weights, built beside the rehearsal: (its artifact folder, its config)."""
    from build_hooks.build import build

    factory = {"builtin:pytorch-landcover": "pytorch_landcover", "builtin:keras-landcover": "keras_landcover"}
    folder = workdir / "wrong-weights"
    folder.mkdir(exist_ok=True)
    (folder / "wrong_weights.py").write_text(WRONG_WEIGHTS.format(factory=factory[data["model"]["source"]]))
    wrong = copy.deepcopy(data)
    wrong["model"].update(source="wrong_weights:model", artifact_dir=str(folder / "artifact"))
    config = parse_config(wrong, folder / "rollout.toml")
    with progress.step("build the same model with other weights (the broken artifact's files)"):
        manifest = build(config, log=progress.detail)
    return config.artifact_dir / manifest.artifact_root, config


def _verified_canary(
    data: dict, config_path: Path, workdir: Path, emulators: Emulators, progress: Progress, report: Report
) -> None:
    from build_hooks.verify import reference

    rollout = Rollout(data, workdir, emulators, progress, config_path=config_path)
    head = report.targets[0]
    first = rollout.synth(data)
    report.first_sha256 = first.sha256
    rollout.apply(head)
    earth_engine = EarthEngine(emulators.vertex_url, rollout.config, first)
    want_first = earth_engine.expected(rollout.config)
    old_id = rollout.deployed_id(head, first.sha256)
    endpoint = rollout.endpoint(head)
    wrong_root, wrong_config = _wrong_weights(rollout, data, workdir, progress)
    want_wrong = reference(wrong_config, earth_engine.contract, earth_engine.tiles)

    def canary(label: str) -> dict:
        step = copy.deepcopy(data)
        step["model"]["version_label"] = label
        step["model"]["previous"] = {"sha256": first.sha256}
        step["targets"][0]["traffic_percent"] = CANARY_PERCENT
        return step

    # The broken canary: its build is right (and so is its golden tile), but the files in the
    # bucket carry the other weights, as after a wrong upload or a wrong artifact_uri.
    broken = rollout.synth(canary(NEXT_VERSION_LABEL))
    report.next_sha256 = broken.sha256
    broken_id = rollout.deployed_id(head, broken.sha256)
    rollout.provision(head)
    bucket = rollout.stack(f"{head}-bucket")["resource"]["google_storage_bucket"]["artifacts"]
    gcs = rollout._gcs(bucket["project"]).bucket(bucket["name"])
    swapped = []
    for f in broken.files:
        if (
            f.path != "golden.json"
            and (wrong_root / f.path).read_bytes()
            != (rollout.config.artifact_dir / broken.artifact_root / f.path).read_bytes()
        ):
            gcs.blob(f"{naming_prefix(rollout, broken)}/{f.path}").upload_from_filename(str(wrong_root / f.path))
            swapped.append(f.path)
    check(bool(swapped), "the other weights changed no file of the artifact")
    with progress.step(
        f"{head}: canary {CANARY_PERCENT}% with wrong weights ({', '.join(swapped)}) under the same "
        "bands: refused at the canary step, Earth Engine calling"
    ):
        rollout.apply_stack(head, "model")
        expected = {old_id: want_first, broken_id: want_wrong}
        watch = rollout.watch_serving(head)
        with PredictLoop(earth_engine, endpoint, expected) as loop:
            result = rollout.terraform.run(
                rollout.stack_dir(f"{head}-deployment"), "apply", "-input=false", "-no-color", "-auto-approve", ok=False
            )
        rollout.check_served_throughout(watch)
        said = " ".join((result.stderr + result.stdout).split())
        check(not result.ok, "the apply of the broken canary succeeded")
        check(
            f"Verification failed: deployed model {broken_id}" in said
            and f"on {endpoint}" in said
            and "differs by up to" in said,
            f"the refused apply said: {said[-1500:]}",
        )
        check(not loop.failures, f"{len(loop.failures)} Earth Engine request(s) failed: {loop.failures[:3]}")
        split = rollout.serving(head)
        check(split == {old_id: 100}, f"after the refused canary the split is {split}")
        check(
            set(earth_engine.predict(endpoint, expected).deployed_model_ids) == {old_id},
            "after the refused canary not served by the old version",
        )
        wrong_answers = loop.served.count(broken_id)
        progress.note(
            f"{len(loop.served)} Earth Engine requests during the apply, none failed; {wrong_answers} "
            "answered by the broken canary while it was checked, before the split went back"
        )
    summary = found(r"Verification failed: .*? does not answer its golden tile", said, f"the refusal said {said!r}")[0]
    difference = found(r"band '.*?not promoted\.", said, f"the refusal said {said!r}")[0]
    report.facts.update(
        broken_canary_error=summary,
        broken_canary_difference=difference,
        broken_canary_split=split,
        broken_canary_requests=len(loop.served),
        broken_canary_answers=wrong_answers,
        broken_canary_failed_requests=len(loop.failures),
    )

    # Rolled back (traffic_percent = 0) the refused deployment goes: its version can go next.
    back = canary(NEXT_VERSION_LABEL)
    back["targets"][0]["traffic_percent"] = 0
    rollout.synth(back)
    with progress.step(f"{head}: roll back the refused canary (0%): its deployment is undeployed"):
        with PredictLoop(earth_engine, endpoint, {old_id: want_first}) as loop:
            rollout.apply_stack(head, "deployment")
        check(not loop.failures, f"{len(loop.failures)} Earth Engine request(s) failed: {loop.failures[:3]}")
        check(rollout.deployed(head) == {old_id: 100}, f"after the roll back: {rollout.deployed(head)}")

    # The correct canary (a new artifact, its files as built): checked, promoted.
    fixed = rollout.synth(canary(FIXED_VERSION_LABEL))
    fixed_id = rollout.deployed_id(head, fixed.sha256)
    want_fixed = earth_engine.expected(rollout.config)
    expected = {old_id: want_first, broken_id: want_wrong, fixed_id: want_fixed}
    with progress.step(
        f"{head}: the correct canary {CANARY_PERCENT}% answers its golden tile and takes traffic, then 100%"
    ):
        rollout.provision(head)
        rollout.apply_stack(head, "model")
        with PredictLoop(earth_engine, endpoint, expected) as loop:
            rollout.apply_stack(head, "deployment")
            check(
                rollout.serving(head) == {old_id: 100 - CANARY_PERCENT, fixed_id: CANARY_PERCENT},
                f"after the correct canary the split is {rollout.serving(head)}",
            )
            state = json.loads(rollout.terraform.run(rollout.stack_dir(f"{head}-deployment"), "show", "-json").stdout)
            traffic = next(
                r for r in state["values"]["root_module"]["resources"] if r["type"] == "eevertex_traffic_split"
            )
            check(
                traffic["values"]["verified"].get(fixed_id) == fixed.golden_sha256,
                f"verified: {traffic['values']['verified']}",
            )
            promoted = canary(FIXED_VERSION_LABEL)
            promoted["targets"][0]["traffic_percent"] = 100
            rollout.synth(promoted)
            rollout.apply_stack(head, "deployment")
        check(not loop.failures, f"{len(loop.failures)} Earth Engine request(s) failed: {loop.failures[:3]}")
        check(broken_id not in loop.served, "the broken canary answered again")
        check(rollout.serving(head) == {fixed_id: 100}, f"after the promotion the split is {rollout.serving(head)}")
    report.facts.update(
        fixed_canary_verified=traffic["values"]["verified"],
        promoted_split=rollout.serving(head),
        fixed_canary_failed_requests=len(loop.failures),
    )


def naming_prefix(rollout: Rollout, manifest) -> str:
    from stacks import naming

    return naming.artifact_prefix(rollout.config.model.name, manifest.sha256)


def cli(config: Path, workdir: Path, *, asked: bool) -> int:
    """The verified-promotion scenario; skipped (said so) within `all` for a config whose model is
    not a built-in one (its other weights are a built-in model's)."""
    source = tomllib.loads(config.read_text())["model"].get("source", "")
    if not asked and not source.startswith("builtin:"):
        print(
            f"SKIPPED verified promotion: {config} serves {source}, not a built-in model (--scenario verified "
            "with rollout.toml rehearses it)"
        )
        return 0
    workdir = workdir / f"{config.stem}-verified"
    print(f"rehearse verified promotion with {config} (details: {workdir / 'rehearsal.log'})")
    if workdir.exists():
        shutil.rmtree(workdir)
    try:
        report = rehearse_verified_canary(config, workdir)
    except PrerequisiteMissing as error:
        print(f"NOT STARTED: {error}")
        return 1
    except (RehearsalFailed, RuntimeError, TimeoutError) as error:
        print(f"FAILED: {error}")
        return 1
    print(report.summary)
    print(
        f"broken canary refused: {report.facts['broken_canary_difference']}; "
        f"{report.facts['broken_canary_requests']} Earth Engine requests during it, none failed; "
        f"then promoted: {report.facts['promoted_split']}"
    )
    return 0
