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

`rehearse_verified_canary` (issue 17, verified promotion), on the first target: a canary whose
artifact in the bucket holds wrong weights under the same bands is stopped at the canary step
(the golden tile the build stored is not what it answers), serving goes back to the old
version with no failed Earth Engine request; a correct canary passes and is promoted.
"""

from __future__ import annotations

import collections
import copy
import json
import re
import shutil
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from config.rollout import ConfigError, parse_config
from rehearsal.emulators import Emulators
from rehearsal.gcloud import GCLOUD_MACHINE_TYPE
from rehearsal.rollout import (
    EarthEngine,
    PredictLoop,
    Progress,
    RehearsalFailed,
    Rollout,
    check,
    missing_prerequisites,
)

CANARY_PERCENT = 10
NEXT_VERSION_LABEL = "rehearsal-next"
FIXED_VERSION_LABEL = "rehearsal-fixed"
# The built-in models' other weights: the same bands and layers, another seed.
WRONG_WEIGHTS = """from build_hooks import examples


def model():
    return examples.{factory}(seed=7)
"""
SEED_TARGET = "seed"
# Display names a user gives gcloud (required by its commands), not the stacks' own.
SEED_ENDPOINT_NAME = "landcover endpoint (made by hand)"
SEED_MODEL_NAME = "landcover-v1-by-hand"


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


def rehearse(config_path: Path, workdir: Path, *, max_targets: int | None = None, out=print) -> Report:
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
            _run(data, targets, config_path, workdir, emulators, progress, report)
    finally:
        report.summary = progress.summary()
    return report


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
        raise PrerequisiteMissing(f"model.source {config.model.source}: the broken canary takes a built-in model's "
                                  "other weights; allowed: a builtin: source")
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


def _verified_canary(data: dict, config_path: Path, workdir: Path, emulators: Emulators, progress: Progress,
                     report: Report) -> None:
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
        if f.path != "golden.json" and (wrong_root / f.path).read_bytes() != (
                rollout.config.artifact_dir / broken.artifact_root / f.path).read_bytes():
            gcs.blob(f"{naming_prefix(rollout, broken)}/{f.path}").upload_from_filename(str(wrong_root / f.path))
            swapped.append(f.path)
    check(bool(swapped), "the other weights changed no file of the artifact")
    with progress.step(f"{head}: canary {CANARY_PERCENT}% with wrong weights ({', '.join(swapped)}) under the same "
                       "bands: refused at the canary step, Earth Engine calling"):
        rollout.apply_stack(head, "model")
        expected = {old_id: want_first, broken_id: want_wrong}
        watch = rollout.watch_serving(head)
        with PredictLoop(earth_engine, endpoint, expected) as loop:
            result = rollout.terraform.run(rollout.stack_dir(f"{head}-deployment"), "apply", "-input=false",
                                           "-no-color", "-auto-approve", ok=False)
        rollout.check_served_throughout(watch)
        said = " ".join((result.stderr + result.stdout).split())
        check(not result.ok, "the apply of the broken canary succeeded")
        check(f"Verification failed: deployed model {broken_id}" in said and f"on {endpoint}" in said
              and "differs by up to" in said, f"the refused apply said: {said[-1500:]}")
        check(not loop.failures, f"{len(loop.failures)} Earth Engine request(s) failed: {loop.failures[:3]}")
        split = rollout.serving(head)
        check(split == {old_id: 100}, f"after the refused canary the split is {split}")
        check(set(earth_engine.predict(endpoint, expected).deployed_model_ids) == {old_id},
              "after the refused canary not served by the old version")
        wrong_answers = loop.served.count(broken_id)
        progress.note(f"{len(loop.served)} Earth Engine requests during the apply, none failed; {wrong_answers} "
                      "answered by the broken canary while it was checked, before the split went back")
    summary = re.search(r"Verification failed: .*? does not answer its golden tile", said).group(0)
    difference = re.search(r"band '.*?not promoted\.", said).group(0)
    report.facts.update(broken_canary_error=summary, broken_canary_difference=difference,
                        broken_canary_split=split, broken_canary_requests=len(loop.served),
                        broken_canary_answers=wrong_answers, broken_canary_failed_requests=len(loop.failures))

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
    with progress.step(f"{head}: the correct canary {CANARY_PERCENT}% answers its golden tile and takes traffic, "
                       "then 100%"):
        rollout.provision(head)
        rollout.apply_stack(head, "model")
        with PredictLoop(earth_engine, endpoint, expected) as loop:
            rollout.apply_stack(head, "deployment")
            check(rollout.serving(head) == {old_id: 100 - CANARY_PERCENT, fixed_id: CANARY_PERCENT},
                  f"after the correct canary the split is {rollout.serving(head)}")
            state = json.loads(rollout.terraform.run(rollout.stack_dir(f"{head}-deployment"), "show", "-json").stdout)
            traffic = next(r for r in state["values"]["root_module"]["resources"]
                           if r["type"] == "eevertex_traffic_split")
            check(traffic["values"]["verified"].get(fixed_id) == fixed.golden_sha256,
                  f"verified: {traffic['values']['verified']}")
            promoted = canary(FIXED_VERSION_LABEL)
            promoted["targets"][0]["traffic_percent"] = 100
            rollout.synth(promoted)
            rollout.apply_stack(head, "deployment")
        check(not loop.failures, f"{len(loop.failures)} Earth Engine request(s) failed: {loop.failures[:3]}")
        check(broken_id not in loop.served, "the broken canary answered again")
        check(rollout.serving(head) == {fixed_id: 100}, f"after the promotion the split is {rollout.serving(head)}")
    report.facts.update(fixed_canary_verified=traffic["values"]["verified"], promoted_split=rollout.serving(head),
                        fixed_canary_failed_requests=len(loop.failures))


def naming_prefix(rollout: Rollout, manifest) -> str:
    from stacks import naming

    return naming.artifact_prefix(rollout.config.model.name, manifest.sha256)


def _journal_since(emulators: Emulators, start: int) -> list[dict]:
    return emulators.journal()[start:]


def _run(data: dict, targets: list[str], config_path: Path, workdir: Path, emulators: Emulators,
         progress: Progress, report: Report):
    rollout = Rollout(data, workdir, emulators, progress, config_path=config_path)
    head = targets[0]

    # Prerequisite: the user's artifact builds (the stacks read only its manifest).
    first = rollout.synth(data)
    report.first_sha256 = first.sha256
    earth_engine = EarthEngine(emulators.vertex_url, rollout.config, first)
    report.tile_size = earth_engine.tile_size
    want_first = earth_engine.expected(rollout.config)

    def served(target: str, expected: dict[str, dict]) -> set[str]:
        return set(earth_engine.predict(rollout.endpoint(target), expected).deployed_model_ids)

    def plans_empty(target: str) -> None:
        for kind in ("model", "deployment"):
            plan = rollout.plan(target, kind)
            check(plan.empty, f"{target}-{kind}: the plan after apply is not empty: {plan.describe()}")

    # 1. apply every target, then plan again: nothing to do
    for target in targets:
        rollout.apply(target)
        with progress.step(f"{target}: Earth Engine predicts {earth_engine.tile_size}px tiles; plans are empty"):
            deployed = rollout.deployed_id(target, first.sha256)
            check(served(target, {deployed: want_first}) == {deployed}, f"{target}: not served by the deployed artifact")
            plans_empty(target)
    report.facts["first_apply_calls"] = emulators.calls()

    # 2. a label edited in the config -> update in place, and it reaches Vertex AI
    edited = copy.deepcopy(data)
    edited["targets"][0].setdefault("labels", {})["owner"] = "rehearsal-edit"
    rollout.synth(edited)
    with progress.step(f"{head}: label edit plans an in-place update and reaches the emulator"):
        plan = rollout.plan(head, "model")
        check(list(plan.changes.values()) == [["update"]] and list(plan.updated.values()) == [["labels"]],
              f"label edit: {plan.describe()}")
        check(rollout.plan(head, "deployment").empty, "label edit touched the deployment stack")
        start = len(emulators.journal())
        rollout.apply_stack(head, "model")
        calls = [c["method"] for c in _journal_since(emulators, start)]
        check(calls == ["updateModel"], f"label edit called {calls}")
        version = next(v for v in rollout.model_versions(head) if first.sha256 in v["artifactUri"])
        check(version.get("labels", {}).get("owner") == "rehearsal-edit", f"labels in Vertex AI: {version.get('labels')}")
        plans_empty(head)
    report.facts["label_edit_calls"] = calls
    data = edited

    # 3. undeployed by hand -> the plan creates the deployment again
    deployed_id = rollout.deployed_id(head, first.sha256)
    rollout.vertex.call("POST", f"{rollout.endpoint(head)}:undeployModel", {"deployedModelId": deployed_id})
    with progress.step(f"{head}: manual undeploy plans a create; apply restores serving"):
        check(rollout.deployed(head) == {}, f"the manual undeploy left {rollout.deployed(head)}")
        plan = rollout.plan(head, "deployment")
        creates = [a for a, acts in plan.changes.items() if acts == ["create"]]
        check(len(creates) == 1 and creates[0].startswith("eevertex_deployment."), f"after undeploy: {plan.describe()}")
        rollout.apply_stack(head, "deployment")
        check(rollout.deployed(head) == {deployed_id: 100}, f"after re-apply: {rollout.deployed(head)}")
        check(served(head, {deployed_id: want_first}) == {deployed_id}, "not served after the re-apply")
        plans_empty(head)
    report.facts["undeploy_plan"] = plan.changes

    # 4. replicas changed by hand -> in-place update back to config
    config_target = rollout.config.targets[0]
    record = rollout.deployed_model(head, deployed_id)
    resources = record["dedicatedResources"]
    rollout.vertex.call("POST", f"{rollout.endpoint(head)}:mutateDeployedModel", {
        "deployedModel": {"id": deployed_id, "dedicatedResources": {
            "machineSpec": resources["machineSpec"],
            "minReplicaCount": config_target.max_replicas + 1, "maxReplicaCount": config_target.max_replicas + 2}},
        "updateMask": "dedicatedResources.minReplicaCount,dedicatedResources.maxReplicaCount",
    })
    with progress.step(f"{head}: manual replica change plans an in-place update back to config"):
        plan = rollout.plan(head, "deployment")
        check(list(plan.changes.values()) == [["update"]]
              and set(next(iter(plan.updated.values()))) == {"min_replica_count", "max_replica_count"},
              f"after the replica change: {plan.describe()}")
        start = len(emulators.journal())
        rollout.apply_stack(head, "deployment")
        check([c["method"] for c in _journal_since(emulators, start)] == ["mutateDeployedModel"],
              f"replica fix called {[c['method'] for c in _journal_since(emulators, start)]}")
        resources = rollout.deployed_model(head, deployed_id)["dedicatedResources"]
        check((resources["minReplicaCount"], resources["maxReplicaCount"])
              == (config_target.min_replicas, config_target.max_replicas), f"replicas now {resources}")
        plans_empty(head)
    report.facts["replica_plan"] = plan.updated

    # 5. gcloud first (the seed's commands, gcloud's defaults), then adopt, then a canary on it
    data = _adopt(rollout, data, first, earth_engine, want_first, progress, report)

    # 6. canary -> promote -> roll back, Earth Engine calling all the time
    canary = next_version(data)
    canary["model"]["previous"] = {"sha256": first.sha256}
    canary["targets"][0]["traffic_percent"] = CANARY_PERCENT
    for target in canary["targets"][1:]:
        target["traffic_percent"] = 0  # the other targets stay on the first artifact for now
    second = rollout.synth(canary)
    report.next_sha256 = second.sha256
    check(second.sha256 != first.sha256, "the next version built the same artifact")
    old_id, new_id = deployed_id, rollout.deployed_id(head, second.sha256)
    expected = {old_id: want_first, new_id: earth_engine.expected(rollout.config)}

    def label(address: str) -> str:
        if address.startswith("eevertex_deployment."):
            return "eevertex_deployment." + ("new" if _deployed_id_of(rollout, head, address) == new_id else "old")
        return address.split(".")[0]

    def step(name: str, percent: int, want_plan: dict[str, list[str]], want_split: dict[str, int], kill_after: str):
        """Plan, then apply with Earth Engine calling: first an apply killed (SIGKILL, Terraform
        and the provider) once `kill_after` has reached Vertex AI, then the apply that converges.
        No request may fail, and no instant may pass without a deployed model taking traffic."""
        step_data = copy.deepcopy(canary)
        step_data["targets"][0]["traffic_percent"] = percent
        rollout.synth(step_data)
        rollout.provision(head)
        with progress.step(f"{head}: {name}: plan, then an apply killed after {kill_after} and the one that "
                           "converges, Earth Engine calling"):
            model_plan = rollout.plan(head, "model")
            plan = rollout.plan(head, "deployment")
            kinds = {label(address): actions for address, actions in plan.changes.items()}
            check(kinds == want_plan, f"{name}: the plan is {plan.describe()}, expected {want_plan}")
            if model_plan.changes:
                rollout.apply_stack(head, "model")
            endpoint = rollout.endpoint(head)
            watch = rollout.watch_serving(head)
            with PredictLoop(earth_engine, endpoint, expected) as loop:
                start = len(emulators.journal())
                rollout.terraform.apply_killed(rollout.stack_dir(f"{head}-deployment"), lambda: any(
                    c["method"] == kill_after and c["resource"] == endpoint for c in _journal_since(emulators, start)))
                rollout.settle()
                rollout.check_served_throughout(watch)
                rollout.apply_stack(head, "deployment")
            rollout.check_served_throughout(watch)
            check(not loop.failures, f"{name}: {len(loop.failures)} request(s) failed during the applies: {loop.failures[:3]}")
            check(rollout.deployed(head) == want_split, f"{name}: split {rollout.deployed(head)}, plan said {want_split}")
            calls = [c["method"] for c in _journal_since(emulators, start)]
            check(calls.count("deployModel") <= 1, f"{name}: deployed twice: {calls}")
            progress.note(f"{len(loop.served)} Earth Engine requests during the applies, none failed; "
                          f"served by {dict(collections.Counter(loop.served))}; never an empty endpoint")
            plans_empty(head)
        return loop

    loop = step(f"canary {CANARY_PERCENT}%", CANARY_PERCENT,
                {"eevertex_deployment.new": ["create"], "eevertex_traffic_split": ["update"]},
                {new_id: CANARY_PERCENT, old_id: 100 - CANARY_PERCENT}, "deployModel")
    report.facts["canary_apply_requests"] = len(loop.served)
    with progress.step(f"{head}: 20 Earth Engine requests split {CANARY_PERCENT}/{100 - CANARY_PERCENT}"):
        served_ids: list[str] = []
        while len(served_ids) < 20:
            served_ids += earth_engine.predict(rollout.endpoint(head), expected).deployed_model_ids
        counts = collections.Counter(served_ids[:20])
        # The emulator routes by smooth weighted round robin: 2 of 20, give or take the
        # phase the split change found it in.
        check(set(counts) == {new_id, old_id} and 1 <= counts[new_id] <= 3, f"canary traffic: {dict(counts)}")
        progress.note(f"served by {dict(counts)}")
    report.facts["canary_counts"] = {"next": counts[new_id], "first": counts[old_id]}
    loop = step("promote 100%", 100,
                {"eevertex_traffic_split": ["update"], "eevertex_deployment.old": ["delete"]}, {new_id: 100},
                "updateEndpoint")
    report.facts["promote_apply_requests"] = len(loop.served)
    loop = step("roll back (0%)", 0,
                {"eevertex_deployment.old": ["create"], "eevertex_traffic_split": ["update"],
                 "eevertex_deployment.new": ["delete"]}, {old_id: 100}, "updateEndpoint")
    report.facts["rollback_apply_requests"] = len(loop.served)
    check(served(head, expected) == {old_id}, "after the rollback, not served by the first artifact")
    report.facts["rollout_failed_requests"] = 0

    # 7. apply killed mid-way -> the next apply converges, nothing twice
    promoted = copy.deepcopy(canary)
    for target in promoted["targets"]:
        target["traffic_percent"] = 100
    rollout.synth(promoted)
    _interrupted(rollout, emulators, targets[-1], second.sha256, progress, report)

    # 8. destroy
    with_seed = [t["name"] for t in rollout.data["targets"]]
    start = len(emulators.journal())
    for target in with_seed:
        rollout.destroy(target)
        with progress.step(f"{target}: nothing left in Vertex AI, artifacts kept in the bucket"):
            check(rollout.vertex.get(rollout.endpoint(target)) is None, f"{target}: endpoint still there")
            left = rollout.model_versions(target)
            check(not left, f"{target}: model versions left after destroy: {[v['name'] for v in left]}")
            artifacts = rollout.artifacts_in_bucket(target)
            check(any(first.sha256 in a for a in artifacts), f"{target}: first artifact gone: {artifacts}")
            if target != SEED_TARGET:
                check(any(second.sha256 in a for a in artifacts), f"{target}: next artifact gone: {artifacts}")
    destroy = [c["method"] for c in _journal_since(emulators, start)]
    check(destroy.count("deleteEndpoint") == len(with_seed), f"destroy: {destroy}")
    report.facts["destroy_calls"] = dict(collections.Counter(destroy))


def _deployed_id_of(rollout: Rollout, target: str, address: str) -> str:
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


def _adopt(rollout: Rollout, data: dict, first, earth_engine: EarthEngine, want_first: dict, progress: Progress,
           report: Report) -> dict:
    """Scenario 5, gcloud first, then adopt: the seed's commands with gcloud's own defaults (no
    --endpoint-id: Vertex AI's 19-digit ID; display names of the user's choosing; no machine type or
    replicas: n1-standard-2, 1 replica) make an endpoint, a model and a deployment; a config naming
    them (endpoint_id, [targets.adopt]) imports all three, the plans show only in-place updates, the
    next plans are empty; then a canary of the next version rolls out on them, Earth Engine calling.
    Returns the config with the adopting target added (at 100% of the first artifact)."""
    seed = copy.deepcopy(data["targets"][0])
    for key in ("access_log_bucket", "service_account", "accelerator_type", "accelerator_count", "endpoint_id"):
        seed.pop(key, None)
    seed.update(name=SEED_TARGET, project="acme-geo-seed", bucket="acme-geo-seed-ee-models", labels={"env": "seed"},
                traffic_percent=100, machine_type=GCLOUD_MACHINE_TYPE, min_replicas=1, max_replicas=1)
    data = copy.deepcopy(data)
    data["targets"].append(seed)
    rollout.synth(data)
    # The artifact in the bucket, the image in the registry; the endpoint is gcloud's to make.
    rollout.provision_bucket(SEED_TARGET)
    rollout.push_by_hand(SEED_TARGET)
    model = next(iter(rollout.stack(f"{SEED_TARGET}-model")["resource"]["eevertex_model"].values()))
    from rehearsal.gcloud import gcloud_missing

    missing = gcloud_missing()
    if missing:
        progress.note(f"gcloud: {missing}; the seed's commands run as the REST calls gcloud makes")
        endpoint_id, version, deployed_id = _seed_by_rest(rollout, model, progress)
    else:
        endpoint_id, version, deployed_id = _seed_by_gcloud(rollout, model, progress)
    progress.note(f"made by hand: endpoint {endpoint_id}, {version}, deployed as {deployed_id}")
    check(len(endpoint_id) == 19, f"the endpoint gcloud made has ID {endpoint_id!r}, not the 19 digits Vertex AI generates")
    data["targets"][-1].update(endpoint_id=endpoint_id, adopt={
        "endpoint": True, "model_version": version, "artifact_sha256": first.sha256, "deployed_model_id": deployed_id})
    rollout.synth(data)
    with progress.step(f"{SEED_TARGET}: import blocks adopt endpoint, model and deployment; the plans show only "
                       "in-place updates, then nothing"):
        endpoint_stack = rollout.stack(f"{SEED_TARGET}-endpoint")
        check(endpoint_stack.get("import") == [{"id": rollout.endpoint(SEED_TARGET),
                                                "to": "google_vertex_ai_endpoint.endpoint"}],
              f"the endpoint stack does not import {endpoint_id}: {endpoint_stack.get('import')}")
        model_plan = rollout.plan(SEED_TARGET, "model")
        # The image was pushed by hand: its eevertex_image is created over it (the registry holds
        # every blob and the manifest already, so the push sends nothing); the model is imported.
        check(len(model_plan.imports) == 1 and all(
            acts == (["create"] if address.startswith("eevertex_image.") else ["update"])
            for address, acts in model_plan.changes.items()), f"adopting the model: {model_plan.describe()}")
        deployment_plan = rollout.plan(SEED_TARGET, "deployment")
        check(len(deployment_plan.imports) == 2 and not deployment_plan.changes,
              f"adopting the deployment (its display name and gcloud's defaults kept): {deployment_plan.describe()}")
        rollout.apply_stack(SEED_TARGET, "model")
        rollout.apply_stack(SEED_TARGET, "deployment")
        plans = [rollout.plan(SEED_TARGET, kind) for kind in ("model", "deployment")]
        check(all(p.empty or (not p.changes and p.imports) for p in plans),
              f"after adopting: {[p.describe() for p in plans]}")
        check(rollout.deployed(SEED_TARGET) == {deployed_id: 100}, f"seed split: {rollout.deployed(SEED_TARGET)}")
        check(len(rollout.model_versions(SEED_TARGET)) == 1, "adopting uploaded another version")
    report.facts["adopt_plans"] = {"model": model_plan.updated, "deployment": deployment_plan.updated}
    report.facts["adopted_endpoint_id"] = endpoint_id

    # The canary of the next version, on what was adopted: a new version of gcloud's model.
    canary = next_version(data)
    canary["model"]["previous"] = {"sha256": first.sha256}
    for target in canary["targets"]:
        target["traffic_percent"] = CANARY_PERCENT if target["name"] == SEED_TARGET else 100
    second = rollout.synth(canary)
    rollout.provision(SEED_TARGET)
    new_id = rollout.deployed_id(SEED_TARGET, second.sha256)
    expected = {deployed_id: want_first, new_id: earth_engine.expected(rollout.config)}
    with progress.step(f"{SEED_TARGET}: canary {CANARY_PERCENT}% of the next version on the adopted endpoint, "
                       "Earth Engine calling"):
        model_plan = rollout.plan(SEED_TARGET, "model")
        check(list(model_plan.changes.values()) == [["create"]], f"canary on the adopted model: {model_plan.describe()}")
        rollout.apply_stack(SEED_TARGET, "model")
        check({v["name"].rsplit("/", 1)[1].split("@")[0] for v in rollout.model_versions(SEED_TARGET)} ==
              {version.rsplit("/", 1)[1].split("@")[0]}, "the next version is not a version of gcloud's model")
        with PredictLoop(earth_engine, rollout.endpoint(SEED_TARGET), expected) as loop:
            rollout.apply_stack(SEED_TARGET, "deployment")
        check(not loop.failures, f"canary on the adopted endpoint: {len(loop.failures)} request(s) failed: "
                                 f"{loop.failures[:3]}")
        check(rollout.deployed(SEED_TARGET) == {deployed_id: 100 - CANARY_PERCENT, new_id: CANARY_PERCENT},
              f"seed split after the canary: {rollout.deployed(SEED_TARGET)}")
        progress.note(f"{len(loop.served)} Earth Engine requests during the apply, none failed")
    report.facts["adopted_canary_requests"] = len(loop.served)
    rollout.configure(data)
    return data


def _seed_by_gcloud(rollout: Rollout, model: dict, progress: Progress) -> tuple[str, str, str]:
    """The seed's commands, run by Google's gcloud CLI against the emulator (configured as
    rehearsal/gcloud.py does), each with gcloud's own defaults: `endpoints create` without
    --endpoint-id, `models upload` without a model ID, `deploy-model` without machine type or
    replicas, with the whole traffic; display names as a user picks them."""
    import re

    from rehearsal.gcloud import Gcloud, GcloudReport

    region = model["region"]
    config_dir, log, report = rollout.workdir / "seed-gcloud-config", rollout.workdir / "seed-gcloud.log", GcloudReport("seed")
    gcloud = Gcloud(config_dir, log, report, progress)
    quiet = Gcloud(config_dir, log, report, Progress(out=lambda *_: None))
    for key, value in (("api_endpoint_overrides/aiplatform", f"{rollout.emulators.vertex_url}/"),
                       ("auth/disable_credentials", "true"), ("core/project", model["project"]),
                       ("core/disable_prompts", "true"), ("component_manager/disable_update_check", "true")):
        quiet("config", "set", key, value)
    created = gcloud("ai", "endpoints", "create", f"--region={region}", f"--display-name={SEED_ENDPOINT_NAME}",
                     step=f"{SEED_TARGET}: gcloud ai endpoints create")
    match = re.search(rf"Created Vertex AI endpoint: projects/[^/]+/locations/{region}/endpoints/([0-9]+)\.",
                      created.stderr)
    check(match, f"gcloud ai endpoints create printed {created.stderr!r}")
    endpoint_id = match.group(1)
    upload = ["ai", "models", "upload", f"--region={region}", f"--display-name={SEED_MODEL_NAME}",
              f"--container-image-uri={model['container_image_uri']}", f"--artifact-uri={model['artifact_uri']}"]
    if model.get("container_env"):
        upload.append("--container-env-vars=" + ",".join(f"{k}={v}" for k, v in sorted(model["container_env"].items())))
    if model.get("container_grpc_ports"):
        upload.append("--container-grpc-ports=" + ",".join(str(p) for p in model["container_grpc_ports"]))
    for flag in ("predict_route", "health_route"):
        if model.get(f"container_{flag}"):
            upload.append(f"--container-{flag.replace('_', '-')}={model[f'container_{flag}']}")
    gcloud(*upload, step=f"{SEED_TARGET}: gcloud ai models upload")
    model_id = gcloud("ai", "models", "list", f"--region={region}", f"--filter=display_name={SEED_MODEL_NAME}",
                      "--format=value(name)", step=f"{SEED_TARGET}: gcloud ai models list").stdout.strip()
    check(re.fullmatch(r"[0-9]+", model_id), f"gcloud ai models list: one generated model ID expected, got {model_id!r}")
    deployed = gcloud("ai", "endpoints", "deploy-model", endpoint_id, f"--region={region}", f"--model={model_id}",
                      f"--display-name={SEED_MODEL_NAME}", "--traffic-split=0=100",
                      step=f"{SEED_TARGET}: gcloud ai endpoints deploy-model")
    match = re.search(r"Id of the deployed model: ([0-9]+)", deployed.stderr)
    check(match, f"gcloud ai endpoints deploy-model printed {deployed.stderr!r}")
    parent = f"projects/{model['project']}/locations/{region}"
    return endpoint_id, f"{parent}/models/{model_id}@1", match.group(1)


def _seed_by_rest(rollout: Rollout, model: dict, progress: Progress) -> tuple[str, str, str]:
    """The REST calls the seed's gcloud commands make, with gcloud's defaults, where gcloud is not installed."""
    parent = f"projects/{model['project']}/locations/{model['region']}"
    with progress.step(f"{SEED_TARGET}: the seed's endpoints create, upload and deploy-model, as REST calls"):
        endpoint = rollout.vertex.call("POST", f"{parent}/endpoints", {"displayName": SEED_ENDPOINT_NAME})["name"]
        container = {"imageUri": model["container_image_uri"],
                     "env": [{"name": k, "value": v} for k, v in sorted(model.get("container_env", {}).items())]}
        if model.get("container_grpc_ports"):
            container["grpcPorts"] = [{"containerPort": p} for p in model["container_grpc_ports"]]
        for flag, key in (("predict_route", "predictRoute"), ("health_route", "healthRoute")):
            if model.get(f"container_{flag}"):
                container[key] = model[f"container_{flag}"]
        uploaded = rollout.vertex.call("POST", f"{parent}/models:upload", {"model": {
            "displayName": SEED_MODEL_NAME, "artifactUri": model["artifact_uri"], "containerSpec": container}})
        deployed = rollout.vertex.call("POST", f"{endpoint}:deployModel", {
            "deployedModel": {"model": uploaded["model"], "displayName": SEED_MODEL_NAME,
                              "dedicatedResources": {"minReplicaCount": 1}},
            "trafficSplit": {"0": 100}})
    return (endpoint.rsplit("/", 1)[1], f"{uploaded['model']}@{uploaded.get('modelVersionId') or '1'}",
            deployed["deployedModel"]["id"])


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
            resource = rollout.endpoint(target) if kind == "deployment" else f"projects/{rollout.target(target)['project']}/"
            rollout.terraform.apply_killed(
                rollout.stack_dir(f"{target}-{kind}"),
                lambda: any(c["method"] == method and resource in c["resource"] for c in _journal_since(emulators, start)))
            rollout.settle()
            rollout.apply_stack(target, kind)
            calls = [c["method"] for c in _journal_since(emulators, start)]
            check(calls.count(method) == 1, f"{method} called {calls.count(method)} times: {calls}")
            check(rollout.plan(target, kind).empty, f"{target}-{kind}: plan not empty after the re-apply")
            killed.append(kind)
    with progress.step(f"{target}: after the interrupted applies, served by the next version only"):
        versions = [v for v in rollout.model_versions(target) if sha256 in v["artifactUri"]]
        check(len(versions) == 1, f"{len(versions)} versions of the next artifact")
        check(rollout.deployed(target) == {rollout.deployed_id(target, sha256): 100},
              f"{target}: split {rollout.deployed(target)}")
    report.facts["interrupted"] = killed


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m rehearsal", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="*", type=Path, default=[Path("rollout.toml")])
    parser.add_argument("--workdir", type=Path, default=Path(".rehearsal"))
    parser.add_argument("--max-targets", type=int, default=None)
    parser.add_argument("--scenario", choices=("all", "rollout", "gcloud", "verified"), default="all",
                        help="the rollout of each config, the gcloud CLI scenario (rehearsal/gcloud.py), the "
                             "verified promotion of the first config (a built-in model's), or all")
    args = parser.parse_args(argv)
    failed = 0
    for config in args.configs if args.scenario in ("all", "rollout") else []:
        workdir = args.workdir / config.stem
        print(f"rehearse {config} (details: {workdir / 'rehearsal.log'})")
        if workdir.exists():
            shutil.rmtree(workdir)
        try:
            report = rehearse(config, workdir, max_targets=args.max_targets)
        except PrerequisiteMissing as error:
            print(f"NOT STARTED: {error}")
            failed += 1
            continue
        except (RehearsalFailed, RuntimeError, TimeoutError) as error:
            print(f"FAILED: {error}")
            failed += 1
            continue
        print(report.summary)
        print(f"artifacts {report.first_sha256[:12]} -> {report.next_sha256[:12]} on {', '.join(report.targets)} "
              f"(+ {SEED_TARGET}), {report.tile_size}px tiles: canary calls {report.facts['canary_counts']}, "
              f"no failed request during canary/promote/rollback; interrupted: {report.facts['interrupted']}")
    if args.scenario in ("all", "gcloud"):
        failed += _gcloud(args.configs, args.workdir)
    if args.scenario in ("all", "verified"):
        failed += _verified(args.configs[0], args.workdir, asked=args.scenario == "verified")
    return 1 if failed else 0


def _verified(config: Path, workdir: Path, *, asked: bool) -> int:
    """The verified-promotion scenario; skipped (said so) within `all` for a config whose model is
    not a built-in one (its other weights are a built-in model's)."""
    source = tomllib.loads(config.read_text())["model"].get("source", "")
    if not asked and not source.startswith("builtin:"):
        print(f"SKIPPED verified promotion: {config} serves {source}, not a built-in model (--scenario verified "
              "with rollout.toml rehearses it)")
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
    print(f"broken canary refused: {report.facts['broken_canary_difference']}; "
          f"{report.facts['broken_canary_requests']} Earth Engine requests during it, none failed; "
          f"then promoted: {report.facts['promoted_split']}")
    return 0


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
