"""The rehearsal: a config's whole rollout, offline, with real Terraform and our provider.

Scenarios, each checked against what the Vertex AI emulator then holds:
1. apply every target; Earth Engine calls each endpoint; a second plan is empty;
2. a label edited in the config: the plan updates the model in place; the emulator has it;
3. a deployment undeployed by hand: the plan creates it again; the apply restores serving;
4. replicas changed by hand: the plan updates the deployment in place, back to config;
5. gcloud first, then adopt: an endpoint, model and deployment made by the seed's commands with
   gcloud's defaults are imported (endpoint_id, config `adopt`, import blocks): the plans show
   only in-place updates, then nothing; a canary of the next version rolls out on them;
6. canary 10% -> promote 100% -> roll back (0%), Earth Engine calling throughout each
   apply, each first killed mid-way and then applied again: no request fails, no instant
   passes without a deployed model taking traffic, and the split is exactly what each plan showed;
7. an apply killed mid-way (Terraform and the provider, SIGKILL): the next apply
   converges, nothing is uploaded or deployed twice;
8. destroy: endpoints undeployed and deleted, models deleted, artifacts kept in the bucket.
Scenario 5 is rehearsal/adopt.py; the verified promotion (9) rehearsal/verified.py.
"""

from __future__ import annotations

import collections
import copy
import json
import shutil
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from build_hooks.manifest import Manifest
from config.rollout import ConfigError, parse_config
from rehearsal import adopt, verified
from rehearsal.earth_engine_client import EarthEngine, PredictLoop
from rehearsal.emulators import Emulators
from rehearsal.prerequisites import missing_prerequisites
from rehearsal.progress import Progress, RehearsalFailed, check
from rehearsal.rollout import Rollout
from rehearsal.steps import (
    CANARY_PERCENT,
    SEED_TARGET,
    PrerequisiteMissing,
    Report,
    deployed_id_of,
    journal_since,
    next_version,
)


def rehearse(
    config_path: Path, workdir: Path, *, max_targets: int | None = None, quick: bool = False, out=print
) -> Report:
    """Rehearse the config's rollout; `quick`: only apply, Earth Engine calling, canary, promote,
    roll back and destroy (no drift by hand, no gcloud adoption, no interrupted applies: those
    exercise the provider, the same whatever the model)."""
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    data = tomllib.loads(config_path.read_text())
    data["model"]["artifact_dir"] = str(workdir / "artifact")
    data["targets"] = data["targets"][: max_targets or None]
    targets = [t["name"] for t in data["targets"]]
    report = Report(config=str(config_path), targets=targets)
    progress = Progress(out=out, log=workdir / "rehearsal.log")
    try:
        config = parse_config(copy.deepcopy(data), config_path.resolve())
        parse_config(next_version(data), config_path.resolve())
    except ConfigError as error:
        raise PrerequisiteMissing(str(error)) from None
    problems = missing_prerequisites(config)
    if problems:
        raise PrerequisiteMissing("missing prerequisites, nothing started:\n" + "\n".join(f"  {p}" for p in problems))
    try:
        with Emulators(workdir / "emulators") as emulators:
            run = Run.start(data, targets, config_path, workdir, emulators, progress, report)
            run.quick() if quick else run.all()
    finally:
        report.summary = progress.summary()
    return report


@dataclass
class Run:
    """One rollout rehearsal: what its scenarios share, and one method per scenario."""

    rollout: Rollout
    emulators: Emulators
    progress: Progress
    report: Report
    targets: list[str]
    data: dict
    first: Manifest
    earth_engine: EarthEngine
    want_first: dict
    next_applied: set[str] = field(default_factory=set)
    """The targets the next version was applied to: their buckets hold its artifact too."""

    @classmethod
    def start(
        cls,
        data: dict,
        targets: list[str],
        config_path: Path,
        workdir: Path,
        emulators: Emulators,
        progress: Progress,
        report: Report,
    ) -> Run:
        """Build the user's artifact and synthesize (the stacks read only its manifest)."""
        rollout = Rollout(data, workdir, emulators, progress, config_path=config_path)
        first = rollout.synth(data)
        report.first_sha256 = first.sha256
        earth_engine = EarthEngine(emulators.vertex_url, rollout.config, first)
        report.tile_size = earth_engine.tile_size
        return cls(
            rollout,
            emulators,
            progress,
            report,
            targets,
            data,
            first,
            earth_engine,
            earth_engine.expected(rollout.config),
        )

    @property
    def head(self) -> str:
        return self.targets[0]

    def all(self) -> None:
        self.apply_every_target()
        self.label_edit()
        deployed_id = self.undeployed_by_hand()
        self.replicas_by_hand(deployed_id)
        self.data = adopt.adopt(
            self.rollout, self.data, self.first, self.earth_engine, self.want_first, self.progress, self.report
        )
        canary, second = self.canary_promote_rollback(deployed_id)
        self.interrupted_apply(canary, second)
        self.destroy(second)

    def quick(self) -> None:
        self.apply_every_target()
        _, second = self.canary_promote_rollback(self.rollout.deployed_id(self.head, self.first.sha256))
        self.destroy(second)

    def served(self, target: str, expected: dict[str, dict]) -> set[str]:
        return set(self.earth_engine.predict(self.rollout.endpoint(target), expected).deployed_model_ids)

    def plans_empty(self, target: str) -> None:
        for kind in ("model", "deployment"):
            plan = self.rollout.plan(target, kind)
            check(plan.empty, f"{target}-{kind}: the plan after apply is not empty: {plan.describe()}")

    def apply_every_target(self) -> None:
        """1. Apply every target, then plan again: nothing to do."""
        for target in self.targets:
            self.rollout.apply(target)
            with self.progress.step(
                f"{target}: Earth Engine predicts {self.earth_engine.tile_size}px tiles; plans are empty"
            ):
                deployed = self.rollout.deployed_id(target, self.first.sha256)
                check(
                    self.served(target, {deployed: self.want_first}) == {deployed},
                    f"{target}: not served by the deployed artifact",
                )
                self.plans_empty(target)
        self.report.facts["first_apply_calls"] = self.emulators.calls()

    def label_edit(self) -> None:
        """2. A label edited in the config: an update in place, and it reaches Vertex AI."""
        edited = copy.deepcopy(self.data)
        edited["targets"][0].setdefault("labels", {})["owner"] = "rehearsal-edit"
        self.rollout.synth(edited)
        with self.progress.step(f"{self.head}: label edit plans an in-place update and reaches the emulator"):
            plan = self.rollout.plan(self.head, "model")
            check(
                list(plan.changes.values()) == [["update"]] and list(plan.updated.values()) == [["labels"]],
                f"label edit: {plan.describe()}",
            )
            check(self.rollout.plan(self.head, "deployment").empty, "label edit touched the deployment stack")
            start = len(self.emulators.journal())
            self.rollout.apply_stack(self.head, "model")
            calls = [c["method"] for c in journal_since(self.emulators, start)]
            check(calls == ["updateModel"], f"label edit called {calls}")
            version = next(v for v in self.rollout.model_versions(self.head) if self.first.sha256 in v["artifactUri"])
            check(
                version.get("labels", {}).get("owner") == "rehearsal-edit",
                f"labels in Vertex AI: {version.get('labels')}",
            )
            self.plans_empty(self.head)
        self.report.facts["label_edit_calls"] = calls
        self.data = edited

    def undeployed_by_hand(self) -> str:
        """3. Undeployed by hand: the plan creates the deployment again. Returns its ID."""
        deployed_id = self.rollout.deployed_id(self.head, self.first.sha256)
        self.rollout.vertex.call(
            "POST", f"{self.rollout.endpoint(self.head)}:undeployModel", {"deployedModelId": deployed_id}
        )
        with self.progress.step(f"{self.head}: manual undeploy plans a create; apply restores serving"):
            check(
                self.rollout.deployed(self.head) == {}, f"the manual undeploy left {self.rollout.deployed(self.head)}"
            )
            plan = self.rollout.plan(self.head, "deployment")
            creates = [a for a, acts in plan.changes.items() if acts == ["create"]]
            check(
                len(creates) == 1 and creates[0].startswith("eevertex_deployment."),
                f"after undeploy: {plan.describe()}",
            )
            self.rollout.apply_stack(self.head, "deployment")
            check(
                self.rollout.deployed(self.head) == {deployed_id: 100},
                f"after re-apply: {self.rollout.deployed(self.head)}",
            )
            check(
                self.served(self.head, {deployed_id: self.want_first}) == {deployed_id}, "not served after the re-apply"
            )
            self.plans_empty(self.head)
        self.report.facts["undeploy_plan"] = plan.changes
        return deployed_id

    def replicas_by_hand(self, deployed_id: str) -> None:
        """4. Replicas changed by hand: an in-place update back to the config."""
        config_target = self.rollout.config.targets[0]
        record = self.rollout.deployed_model(self.head, deployed_id)
        resources = record["dedicatedResources"]
        self.rollout.vertex.call(
            "POST",
            f"{self.rollout.endpoint(self.head)}:mutateDeployedModel",
            {
                "deployedModel": {
                    "id": deployed_id,
                    "dedicatedResources": {
                        "machineSpec": resources["machineSpec"],
                        "minReplicaCount": config_target.max_replicas + 1,
                        "maxReplicaCount": config_target.max_replicas + 2,
                    },
                },
                "updateMask": "dedicatedResources.minReplicaCount,dedicatedResources.maxReplicaCount",
            },
        )
        with self.progress.step(f"{self.head}: manual replica change plans an in-place update back to config"):
            plan = self.rollout.plan(self.head, "deployment")
            check(
                list(plan.changes.values()) == [["update"]]
                and set(next(iter(plan.updated.values()))) == {"min_replica_count", "max_replica_count"},
                f"after the replica change: {plan.describe()}",
            )
            start = len(self.emulators.journal())
            self.rollout.apply_stack(self.head, "deployment")
            check(
                [c["method"] for c in journal_since(self.emulators, start)] == ["mutateDeployedModel"],
                f"replica fix called {[c['method'] for c in journal_since(self.emulators, start)]}",
            )
            resources = self.rollout.deployed_model(self.head, deployed_id)["dedicatedResources"]
            check(
                (resources["minReplicaCount"], resources["maxReplicaCount"])
                == (config_target.min_replicas, config_target.max_replicas),
                f"replicas now {resources}",
            )
            self.plans_empty(self.head)
        self.report.facts["replica_plan"] = plan.updated

    def canary_promote_rollback(self, deployed_id: str) -> tuple[dict, Manifest]:
        """6. Canary, promote, roll back, Earth Engine calling all the time.

        Returns the canary's config and manifest."""
        canary = next_version(self.data)
        canary["model"]["previous"] = {"sha256": self.first.sha256}
        canary["targets"][0]["traffic_percent"] = CANARY_PERCENT
        for target in canary["targets"][1:]:
            target["traffic_percent"] = 0  # the other targets stay on the first artifact for now
        second = self.rollout.synth(canary)
        self.next_applied.add(self.head)
        self.report.next_sha256 = second.sha256
        check(second.sha256 != self.first.sha256, "the next version built the same artifact")
        old_id, new_id = deployed_id, self.rollout.deployed_id(self.head, second.sha256)
        expected = {old_id: self.want_first, new_id: self.earth_engine.expected(self.rollout.config)}

        def label(address: str) -> str:
            if address.startswith("eevertex_deployment."):
                return "eevertex_deployment." + (
                    "new" if deployed_id_of(self.rollout, self.head, address) == new_id else "old"
                )
            return address.split(".")[0]

        def step(name: str, percent: int, want_plan: dict[str, list[str]], want_split: dict[str, int], kill_after: str):
            """Plan, then apply with Earth Engine calling: first an apply killed (SIGKILL, Terraform
            and the provider) once `kill_after` has reached Vertex AI, then the apply that converges.
            No request may fail, and no instant may pass without a deployed model taking traffic."""
            step_data = copy.deepcopy(canary)
            step_data["targets"][0]["traffic_percent"] = percent
            self.rollout.synth(step_data)
            self.rollout.provision(self.head)
            with self.progress.step(
                f"{self.head}: {name}: plan, then an apply killed after {kill_after} and the one that "
                "converges, Earth Engine calling"
            ):
                model_plan = self.rollout.plan(self.head, "model")
                plan = self.rollout.plan(self.head, "deployment")
                kinds = {label(address): actions for address, actions in plan.changes.items()}
                check(kinds == want_plan, f"{name}: the plan is {plan.describe()}, expected {want_plan}")
                if model_plan.changes:
                    self.rollout.apply_stack(self.head, "model")
                endpoint = self.rollout.endpoint(self.head)
                watch = self.rollout.watch_serving(self.head)
                with PredictLoop(self.earth_engine, endpoint, expected) as loop:
                    start = len(self.emulators.journal())
                    self.rollout.terraform.apply_killed(
                        self.rollout.stack_dir(f"{self.head}-deployment"), self.emulators, kill_after, endpoint
                    )
                    self.rollout.settle()
                    self.rollout.check_served_throughout(watch)
                    self.rollout.apply_stack(self.head, "deployment")
                self.rollout.check_served_throughout(watch)
                check(
                    not loop.failures,
                    f"{name}: {len(loop.failures)} request(s) failed during the applies: {loop.failures[:3]}",
                )
                check(
                    self.rollout.deployed(self.head) == want_split,
                    f"{name}: split {self.rollout.deployed(self.head)}, plan said {want_split}",
                )
                calls = [c["method"] for c in journal_since(self.emulators, start)]
                check(calls.count("deployModel") <= 1, f"{name}: deployed twice: {calls}")
                self.progress.note(
                    f"{len(loop.served)} Earth Engine requests during the applies, none failed; "
                    f"served by {dict(collections.Counter(loop.served))}; never an empty endpoint"
                )
                self.plans_empty(self.head)
            return loop

        loop = step(
            f"canary {CANARY_PERCENT}%",
            CANARY_PERCENT,
            {"eevertex_deployment.new": ["create"], "eevertex_traffic_split": ["update"]},
            {new_id: CANARY_PERCENT, old_id: 100 - CANARY_PERCENT},
            "deployModel",
        )
        self.report.facts["canary_apply_requests"] = len(loop.served)
        with self.progress.step(f"{self.head}: 20 Earth Engine requests split {CANARY_PERCENT}/{100 - CANARY_PERCENT}"):
            served_ids: list[str] = []
            while len(served_ids) < 20:
                served_ids += self.earth_engine.predict(self.rollout.endpoint(self.head), expected).deployed_model_ids
            counts = collections.Counter(served_ids[:20])
            # The emulator routes by smooth weighted round robin: 2 of 20, give or take the
            # phase the split change found it in.
            check(set(counts) == {new_id, old_id} and 1 <= counts[new_id] <= 3, f"canary traffic: {dict(counts)}")
            self.progress.note(f"served by {dict(counts)}")
        self.report.facts["canary_counts"] = {"next": counts[new_id], "first": counts[old_id]}
        loop = step(
            "promote 100%",
            100,
            {"eevertex_traffic_split": ["update"], "eevertex_deployment.old": ["delete"]},
            {new_id: 100},
            "updateEndpoint",
        )
        self.report.facts["promote_apply_requests"] = len(loop.served)
        loop = step(
            "roll back (0%)",
            0,
            {
                "eevertex_deployment.old": ["create"],
                "eevertex_traffic_split": ["update"],
                "eevertex_deployment.new": ["delete"],
            },
            {old_id: 100},
            "updateEndpoint",
        )
        self.report.facts["rollback_apply_requests"] = len(loop.served)
        check(self.served(self.head, expected) == {old_id}, "after the rollback, not served by the first artifact")
        self.report.facts["rollout_failed_requests"] = 0
        return canary, second

    def interrupted_apply(self, canary: dict, second: Manifest) -> None:
        """7. An apply killed mid-way: the next apply converges, nothing twice."""
        promoted = copy.deepcopy(canary)
        for target in promoted["targets"]:
            target["traffic_percent"] = 100
        self.rollout.synth(promoted)
        self.next_applied.add(self.targets[-1])
        _interrupted(self.rollout, self.emulators, self.targets[-1], second.sha256, self.progress, self.report)

    def destroy(self, second: Manifest) -> None:
        """8. Destroy: nothing left in Vertex AI, the artifacts kept in the bucket."""
        with_seed = [t["name"] for t in self.rollout.data["targets"]]
        start = len(self.emulators.journal())
        for target in with_seed:
            self.rollout.destroy(target)
            with self.progress.step(f"{target}: nothing left in Vertex AI, artifacts kept in the bucket"):
                check(self.rollout.vertex.get(self.rollout.endpoint(target)) is None, f"{target}: endpoint still there")
                left = self.rollout.model_versions(target)
                check(not left, f"{target}: model versions left after destroy: {[v['name'] for v in left]}")
                artifacts = self.rollout.artifacts_in_bucket(target)
                check(any(self.first.sha256 in a for a in artifacts), f"{target}: first artifact gone: {artifacts}")
                if target in self.next_applied:
                    check(any(second.sha256 in a for a in artifacts), f"{target}: next artifact gone: {artifacts}")
        destroy = [c["method"] for c in journal_since(self.emulators, start)]
        check(destroy.count("deleteEndpoint") == len(with_seed), f"destroy: {destroy}")
        self.report.facts["destroy_calls"] = dict(collections.Counter(destroy))


def _interrupted(rollout: Rollout, emulators: Emulators, target: str, sha256: str, progress: Progress, report: Report):
    """Scenario 7: kill Terraform (and the provider) once the upload or the deployment has
    reached Vertex AI; the next apply adopts what it finds instead of making it again."""
    killed = []
    rollout.provision(target)
    for kind, method in (("model", "uploadModel"), ("deployment", "deployModel")):
        plan = rollout.plan(target, kind)
        if not any(acts == ["create"] for acts in plan.changes.values()):
            progress.note(f"{target}-{kind}: nothing to create here, no {method} to interrupt")
            continue
        with progress.step(f"{target}: apply {target}-{kind} killed after {method}; re-apply converges"):
            start = len(emulators.journal())
            resource = (
                rollout.endpoint(target) if kind == "deployment" else f"projects/{rollout.target(target)['project']}/"
            )
            rollout.terraform.apply_killed(rollout.stack_dir(f"{target}-{kind}"), emulators, method, resource)
            rollout.settle()
            rollout.apply_stack(target, kind)
            calls = [c["method"] for c in journal_since(emulators, start)]
            check(calls.count(method) == 1, f"{method} called {calls.count(method)} times: {calls}")
            check(rollout.plan(target, kind).empty, f"{target}-{kind}: plan not empty after the re-apply")
            killed.append(kind)
    with progress.step(f"{target}: after the interrupted applies, served by the next version only"):
        versions = [v for v in rollout.model_versions(target) if sha256 in v["artifactUri"]]
        check(len(versions) == 1, f"{len(versions)} versions of the next artifact")
        check(
            rollout.deployed(target) == {rollout.deployed_id(target, sha256): 100},
            f"{target}: split {rollout.deployed(target)}",
        )
    report.facts["interrupted"] = killed


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m rehearsal", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("configs", nargs="*", type=Path, default=[Path("rollout.toml")])
    parser.add_argument("--workdir", type=Path, default=Path(".rehearsal"))
    parser.add_argument("--max-targets", type=int, default=None)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="the rollout only: apply, Earth Engine calling, canary, promote, roll back, destroy "
        "(no drift by hand, gcloud adoption or interrupted applies)",
    )
    parser.add_argument(
        "--scenario",
        choices=("all", "rollout", "gcloud", "verified"),
        default="all",
        help="the rollout of each config, the gcloud CLI scenario (rehearsal/gcloud.py), the "
        "verified promotion of the first config (a built-in model's), or all",
    )
    args = parser.parse_args(argv)
    failed = 0
    for config in args.configs if args.scenario in ("all", "rollout") else []:
        workdir = args.workdir / config.stem
        print(f"rehearse {config} (details: {workdir / 'rehearsal.log'})")
        if workdir.exists():
            shutil.rmtree(workdir)
        try:
            report = rehearse(config, workdir, max_targets=args.max_targets, quick=args.quick)
        except PrerequisiteMissing as error:
            print(f"NOT STARTED: {error}")
            failed += 1
            continue
        except (RehearsalFailed, RuntimeError, TimeoutError) as error:
            print(f"FAILED: {error}")
            failed += 1
            continue
        print(report.summary)
        seed = "" if args.quick else f" (+ {SEED_TARGET})"
        interrupted = "" if args.quick else f"; interrupted: {report.facts['interrupted']}"
        print(
            f"artifacts {report.first_sha256[:12]} -> {report.next_sha256[:12]} on {', '.join(report.targets)}"
            f"{seed}, {report.tile_size}px tiles: canary calls {report.facts['canary_counts']}, "
            f"no failed request during canary/promote/rollback{interrupted}"
        )
    if args.scenario in ("all", "gcloud"):
        failed += _gcloud(args.configs, args.workdir)
    if args.scenario in ("all", "verified"):
        failed += verified.cli(args.configs[0], args.workdir, asked=args.scenario == "verified")
    return 1 if failed else 0


def _gcloud(configs: list[Path], workdir: Path) -> int:
    """The gcloud scenario on the first config that opens the gRPC port (the seed's upload
    command does); skipped, with the reason printed, where it cannot run."""
    import shutil

    from rehearsal.gcloud import gcloud_missing, rehearse_gcloud

    grpc = [c for c in configs if tomllib.loads(c.read_text())["model"].get("grpc")]
    reason = gcloud_missing() or (
        None
        if grpc
        else "no config with grpc = true (the seed's upload command "
        "opens gRPC port 8500); pass examples/tensorflow.toml"
    )
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
