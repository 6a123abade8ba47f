"""The rehearsal: a whole rollout of a config's model, then its next version, offline.

1. apply every target (bucket, artifact, endpoint, model, deployment) and call each
   endpoint as Earth Engine would;
2. re-apply unchanged: Terraform sees no change and Vertex AI gets no call;
3. restart the Vertex AI emulator: nothing is lost, the model still answers;
4. canary the next artifact on the first target, with a fault injected half-way through
   its deployment: the old model keeps serving; a re-apply converges to the canary split;
5. promote it there (100%): the old deployment is undeployed and its model deleted;
6. roll it to the other targets directly;
7. destroy: everything undeployed before the models are deleted; the artifacts stay.

Then, once, the gcloud scenario (rehearsal/gcloud.py): the seed's gcloud commands run by
Google's own CLI against the emulators, and the parity check against our stacks.
"""

from __future__ import annotations

import collections
import copy
import json
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from build_hooks import earth_engine as ee
from build_hooks.verify import reference
from rehearsal.emulators import Emulators
from rehearsal.rollout import EarthEngine, Progress, Rollout

CANARY_PERCENT = 30


class RehearsalFailed(AssertionError):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise RehearsalFailed(message)


@dataclass
class Report:
    config: str
    targets: list[str]
    first_sha256: str = ""
    next_sha256: str = ""
    facts: dict[str, object] = field(default_factory=dict)
    summary: str = ""


def next_source(source: str) -> str:
    if source.startswith("builtin:") and not source.endswith("-v2"):
        return source + "-v2"
    raise RehearsalFailed(f"model.source {source!r}: the rehearsal needs a built-in example for its next version")


def rehearse(config_path: Path, workdir: Path, *, max_targets: int | None = None, out=print) -> Report:
    workdir = workdir.resolve()
    data = tomllib.loads(config_path.read_text())
    data["model"]["artifact_dir"] = str(workdir / "artifact")
    data["targets"] = data["targets"][: max_targets or None]
    targets = [t["name"] for t in data["targets"]]
    report = Report(config=str(config_path), targets=targets)
    progress = Progress(out=out)
    try:
        with Emulators(workdir / "emulators") as emulators:
            _run(data, targets, workdir, emulators, progress, report)
    finally:
        report.summary = progress.summary()
    return report


def _run(data: dict, targets: list[str], workdir: Path, emulators: Emulators, progress: Progress, report: Report):
    rollout = Rollout(data, workdir, emulators, progress)
    first = rollout.synth()
    report.first_sha256 = first.sha256
    contract = ee.Contract.from_config(rollout.config.model, first)
    earth_engine = EarthEngine(emulators.vertex_url, contract)
    # One tile of the config's size per call: one request, answered by one deployed model.
    tiles = contract.example_tiles(count=1, seed=42)
    want_first = reference(rollout.config, contract, tiles)

    def served_by(target: str, manifest, want) -> str:
        prediction = earth_engine.predict(rollout.endpoint(target), tiles)
        for band, values in want.items():
            error = float(np.max(np.abs(prediction.bands[band] - values)))
            check(error < 1e-4, f"{target}: band {band} differs from {manifest.sha256[:12]}'s own output by {error:.2e}")
        return prediction.deployed_model_id

    # 1. apply every target
    for target in targets:
        rollout.apply(target)
        with progress.step(f"{target}: Earth Engine predicts a {contract.sides} tile"):
            check(served_by(target, first, want_first) == rollout.deployed_id(target, first.sha256),
                  f"{target}: not served by the deployed artifact")
    report.facts["first_apply_calls"] = emulators.calls()

    # 2. re-apply unchanged
    calls = emulators.calls()
    for target in targets:
        results = rollout.apply(target)
        check(all(r.startswith(("No changes", "Apply complete! Resources: 0 added, 0 changed, 0 destroyed"))
                  for r in results), f"{target}: re-apply changed something: {results}")
    check(emulators.calls() == calls, f"re-apply called Vertex AI: {calls} -> {emulators.calls()}")
    report.facts["reapply_changed_nothing"] = True

    # 3. restart the emulator
    with progress.step("restart the Vertex AI emulator (state on disk)"):
        emulators.restart_vertex()
    with progress.step(f"{targets[0]}: still answers after the restart"):
        served_by(targets[0], first, want_first)

    # 4. canary the next artifact on the first target, through a failed deployment
    canary = copy.deepcopy(data)
    canary["model"]["source"] = next_source(data["model"]["source"])
    canary["model"]["previous"] = {"sha256": first.sha256}
    canary["targets"][0]["traffic_percent"] = CANARY_PERCENT
    second = rollout.synth(canary)
    report.next_sha256 = second.sha256
    check(second.sha256 != first.sha256, "the next version built the same artifact")
    head = targets[0]
    old_id, new_id = rollout.deployed_id(head, first.sha256), rollout.deployed_id(head, second.sha256)
    emulators.fault(deployModel="fail_after_serving")
    try:
        rollout.apply(head)
    except RuntimeError as error:
        check("injected fault" in str(error), f"the apply failed, but not on the injected fault: {error}")
        progress.expected_failure("failed as injected")
    else:
        raise RehearsalFailed("the apply succeeded although the deployment was made to fail")
    check(rollout.deployed(head) == {old_id: 100}, f"after the failed deploy: {rollout.deployed(head)}")
    with progress.step(f"{head}: the old model serves through the failure"):
        check(served_by(head, first, want_first) == old_id, "not served by the old model")
    report.facts["failed_deploy_left"] = rollout.deployed(head)
    rollout.apply(head)
    check(rollout.deployed(head) == {new_id: CANARY_PERCENT, old_id: 100 - CANARY_PERCENT},
          f"re-apply did not converge to the canary split: {rollout.deployed(head)}")
    contract = ee.Contract.from_config(rollout.config.model, second)
    earth_engine = EarthEngine(emulators.vertex_url, contract)
    want_second = reference(rollout.config, contract, tiles)
    with progress.step(f"{head}: 10 Earth Engine calls split {CANARY_PERCENT}/{100 - CANARY_PERCENT}"):
        counts = collections.Counter()
        for _ in range(10):
            prediction = earth_engine.predict(rollout.endpoint(head), tiles)
            counts[prediction.deployed_model_id] += 1
            want = want_second if prediction.deployed_model_id == new_id else want_first
            error = max(float(np.max(np.abs(prediction.bands[b] - v))) for b, v in want.items())
            check(error < 1e-4, f"answer of {prediction.deployed_model_id} differs from its model by {error:.2e}")
        check(counts == {new_id: 3, old_id: 7}, f"canary traffic: {dict(counts)}")
    report.facts["canary_counts"] = {"next": counts[new_id], "first": counts[old_id]}

    # 5. promote on the first target
    promoted = copy.deepcopy(canary)
    del promoted["model"]["previous"]
    promoted["targets"][0]["traffic_percent"] = 100
    rollout.synth(promoted)
    start = len(emulators.journal())
    rollout.apply(head)
    check(rollout.deployed(head) == {new_id: 100}, f"after promotion: {rollout.deployed(head)}")
    promotion = [(c["method"], c["detail"]) for c in emulators.journal()[start:]]
    # Traffic moves first, then the old deployment goes, then its model.
    check([m for m, _ in promotion] == ["updateEndpoint", "undeployModel", "deleteModel"]
          and promotion[1][1] == old_id, f"promotion called Vertex AI in this order: {promotion}")
    report.facts["promotion_calls"] = [m for m, _ in promotion]
    project = data["targets"][0]["project"]
    models = [m for m in rollout.models() if f"projects/{project}/" in m]
    check(models == [f"projects/{project}/locations/{data['targets'][0]['region']}/models/"
                     f"{data['model']['name']}-{second.sha256[:12]}"],
          f"after promotion the models are {models}")
    with progress.step(f"{head}: every call served by the promoted model"):
        check(served_by(head, second, want_second) == new_id, "not served by the promoted model")

    # 6. roll to the other targets
    for target in targets[1:]:
        rollout.apply(target)
        check(rollout.deployed(target) == {rollout.deployed_id(target, second.sha256): 100},
              f"{target}: {rollout.deployed(target)}")
        with progress.step(f"{target}: Earth Engine predicts with the promoted model"):
            served_by(target, second, want_second)

    # 7. destroy
    start = len(emulators.journal())
    for target in targets:
        rollout.destroy(target)
        check(rollout.deployed(target) == {}, f"{target}: still deployed after destroy: {rollout.deployed(target)}")
        project = next(t["project"] for t in data["targets"] if t["name"] == target)
        check(not [m for m in rollout.models() if f"projects/{project}/" in m], f"{target}: models left after destroy")
        artifacts = rollout.artifacts_in_bucket(target)
        check(any(first.sha256 in a for a in artifacts) or target != head, f"{target}: first artifact gone: {artifacts}")
        check(any(second.sha256 in a for a in artifacts), f"{target}: next artifact gone from the bucket: {artifacts}")
    destroy = [c["method"] for c in emulators.journal()[start:]]
    deletes = [i for i, m in enumerate(destroy) if m.startswith("deleteModel")]
    undeploys = [i for i, m in enumerate(destroy) if m == "undeployModel"]
    check(len(undeploys) == len(targets) and len(deletes) == len(targets),
          f"destroy: one undeploy and one model delete per target expected, got {destroy}")
    # Per target: the undeploy (deployment stack) comes before the delete (model stack).
    check(all(u < d for u, d in zip(undeploys, deletes)), f"destroy deleted a model before undeploying it: {destroy}")
    report.facts["destroy_calls"] = destroy
    report.facts["destroyed"] = targets


def main(argv: list[str]) -> int:
    import argparse
    import shutil

    parser = argparse.ArgumentParser(prog="python -m rehearsal", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="*", type=Path, default=[Path("rollout.toml")])
    parser.add_argument("--workdir", type=Path, default=Path(".rehearsal"))
    parser.add_argument("--max-targets", type=int, default=None)
    parser.add_argument("--scenario", choices=("all", "rollout", "gcloud"), default="all",
                        help="the rollout of each config, the gcloud CLI scenario (rehearsal/gcloud.py), or both")
    args = parser.parse_args(argv)
    failed = 0
    for config in args.configs if args.scenario in ("all", "rollout") else []:
        print(f"rehearse {config}")
        workdir = args.workdir / config.stem
        if workdir.exists():
            shutil.rmtree(workdir)
        try:
            report = rehearse(config, workdir, max_targets=args.max_targets)
        except Exception as error:  # noqa: BLE001 - report and go on with the next config
            print(f"FAILED: {error}")
            failed += 1
            continue
        print(report.summary)
        print(f"artifacts {report.first_sha256[:12]} -> {report.next_sha256[:12]} on {', '.join(report.targets)}: "
              f"canary calls {report.facts['canary_counts']}, failed deploy left {report.facts['failed_deploy_left']}")
    if args.scenario in ("all", "gcloud"):
        failed += _gcloud(args.configs, args.workdir)
    return 1 if failed else 0


def _gcloud(configs: list[Path], workdir: Path) -> int:
    """The gcloud scenario on the first config that opens the gRPC port (the seed's upload
    command does); skipped, with the reason printed, where it cannot run."""
    import shutil

    from rehearsal.gcloud import gcloud_missing, rehearse_gcloud

    grpc = [c for c in configs if tomllib.loads(c.read_text())["model"].get("grpc")]
    reason = gcloud_missing() or (None if grpc else "no config with grpc = true (the seed's upload command "
                                                    "opens gRPC port 8500); pass examples/tensorflow.toml")
    if reason:
        print(f"gcloud scenario: SKIPPED: {reason}")
        return 0
    print(f"gcloud scenario on {grpc[0]}")
    target = workdir / f"gcloud-{grpc[0].stem}"
    if target.exists():
        shutil.rmtree(target)
    try:
        report = rehearse_gcloud(grpc[0], target)
    except Exception as error:  # noqa: BLE001 - report it as the rollout scenarios are
        print(f"FAILED: {error}")
        return 1
    print(report.summary)
    for deployment in report.compared:
        fields = ", ".join(f"{k}={json.dumps(v, sort_keys=True)}" for k, v in deployment.items())
        print(f"parity: gcloud and the stacks agree on {fields}")
    print(f"{len(report.commands)} gcloud commands exited 0; their output is in {target}/gcloud.log")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
