"""Scenario 5, gcloud first, then adopt: what the seed's gcloud commands make (gcloud's own
defaults, Vertex AI's 19-digit IDs, display names of the user's choosing) is imported into the
stacks without an outage, and a canary of the next version rolls out on it."""

from __future__ import annotations

import copy

from rehearsal.earth_engine_client import EarthEngine, PredictLoop
from rehearsal.gcloud import GCLOUD_MACHINE_TYPE
from rehearsal.progress import Progress, check, found
from rehearsal.rollout import Rollout
from rehearsal.steps import CANARY_PERCENT, SEED_TARGET, Report, next_version

# Display names a user gives gcloud (required by its commands), not the stacks' own.
SEED_ENDPOINT_NAME = "landcover endpoint (made by hand)"
SEED_MODEL_NAME = "landcover-v1-by-hand"


def adopt(
    rollout: Rollout, data: dict, first, earth_engine: EarthEngine, want_first: dict, progress: Progress, report: Report
) -> dict:
    """Scenario 5, gcloud first, then adopt: the seed's commands with gcloud's own defaults (no
    --endpoint-id: Vertex AI's 19-digit ID; display names of the user's choosing; no machine type or
    replicas: n1-standard-2, 1 replica) make an endpoint, a model and a deployment; a config naming
    them (endpoint_id, [targets.adopt]) imports all three, the plans show only in-place updates, the
    next plans are empty; then a canary of the next version rolls out on them, Earth Engine calling.
    Returns the config with the adopting target added (at 100% of the first artifact)."""
    seed = copy.deepcopy(data["targets"][0])
    for key in ("access_log_bucket", "service_account", "accelerator_type", "accelerator_count", "endpoint_id"):
        seed.pop(key, None)
    seed.update(
        name=SEED_TARGET,
        project="acme-geo-seed",
        bucket="acme-geo-seed-ee-models",
        labels={"env": "seed"},
        traffic_percent=100,
        machine_type=GCLOUD_MACHINE_TYPE,
        min_replicas=1,
        max_replicas=1,
    )
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
    check(
        len(endpoint_id) == 19,
        f"the endpoint gcloud made has ID {endpoint_id!r}, not the 19 digits Vertex AI generates",
    )
    data["targets"][-1].update(
        endpoint_id=endpoint_id,
        adopt={
            "endpoint": True,
            "model_version": version,
            "artifact_sha256": first.sha256,
            "deployed_model_id": deployed_id,
        },
    )
    rollout.synth(data)
    with progress.step(
        f"{SEED_TARGET}: import blocks adopt endpoint, model and deployment; the plans show only "
        "in-place updates, then nothing"
    ):
        endpoint_stack = rollout.stack(f"{SEED_TARGET}-endpoint")
        check(
            endpoint_stack.get("import")
            == [{"id": rollout.endpoint(SEED_TARGET), "to": "google_vertex_ai_endpoint.endpoint"}],
            f"the endpoint stack does not import {endpoint_id}: {endpoint_stack.get('import')}",
        )
        model_plan = rollout.plan(SEED_TARGET, "model")
        # The image was pushed by hand: its eevertex_image is created over it (the registry holds
        # every blob and the manifest already, so the push sends nothing); the model is imported.
        check(
            len(model_plan.imports) == 1
            and all(
                acts == (["create"] if address.startswith("eevertex_image.") else ["update"])
                for address, acts in model_plan.changes.items()
            ),
            f"adopting the model: {model_plan.describe()}",
        )
        deployment_plan = rollout.plan(SEED_TARGET, "deployment")
        check(
            len(deployment_plan.imports) == 2 and not deployment_plan.changes,
            f"adopting the deployment (its display name and gcloud's defaults kept): {deployment_plan.describe()}",
        )
        rollout.apply_stack(SEED_TARGET, "model")
        rollout.apply_stack(SEED_TARGET, "deployment")
        plans = [rollout.plan(SEED_TARGET, kind) for kind in ("model", "deployment")]
        check(
            all(p.empty or (not p.changes and p.imports) for p in plans),
            f"after adopting: {[p.describe() for p in plans]}",
        )
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
    with progress.step(
        f"{SEED_TARGET}: canary {CANARY_PERCENT}% of the next version on the adopted endpoint, Earth Engine calling"
    ):
        model_plan = rollout.plan(SEED_TARGET, "model")
        check(
            list(model_plan.changes.values()) == [["create"]], f"canary on the adopted model: {model_plan.describe()}"
        )
        rollout.apply_stack(SEED_TARGET, "model")
        check(
            {v["name"].rsplit("/", 1)[1].split("@")[0] for v in rollout.model_versions(SEED_TARGET)}
            == {version.rsplit("/", 1)[1].split("@")[0]},
            "the next version is not a version of gcloud's model",
        )
        with PredictLoop(earth_engine, rollout.endpoint(SEED_TARGET), expected) as loop:
            rollout.apply_stack(SEED_TARGET, "deployment")
        check(
            not loop.failures,
            f"canary on the adopted endpoint: {len(loop.failures)} request(s) failed: {loop.failures[:3]}",
        )
        check(
            rollout.deployed(SEED_TARGET) == {deployed_id: 100 - CANARY_PERCENT, new_id: CANARY_PERCENT},
            f"seed split after the canary: {rollout.deployed(SEED_TARGET)}",
        )
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
    config_dir, log, report = (
        rollout.workdir / "seed-gcloud-config",
        rollout.workdir / "seed-gcloud.log",
        GcloudReport("seed"),
    )
    gcloud = Gcloud(config_dir, log, report, progress)
    quiet = Gcloud(config_dir, log, report, Progress(out=lambda *_: None))
    for key, value in (
        ("api_endpoint_overrides/aiplatform", f"{rollout.emulators.vertex_url}/"),
        ("auth/disable_credentials", "true"),
        ("core/project", model["project"]),
        ("core/disable_prompts", "true"),
        ("component_manager/disable_update_check", "true"),
    ):
        quiet("config", "set", key, value)
    created = gcloud(
        "ai",
        "endpoints",
        "create",
        f"--region={region}",
        f"--display-name={SEED_ENDPOINT_NAME}",
        step=f"{SEED_TARGET}: gcloud ai endpoints create",
    )
    match = found(
        rf"Created Vertex AI endpoint: projects/[^/]+/locations/{region}/endpoints/([0-9]+)\.",
        created.stderr,
        f"gcloud ai endpoints create printed {created.stderr!r}",
    )
    endpoint_id = match.group(1)
    upload = [
        "ai",
        "models",
        "upload",
        f"--region={region}",
        f"--display-name={SEED_MODEL_NAME}",
        f"--container-image-uri={model['container_image_uri']}",
        f"--artifact-uri={model['artifact_uri']}",
    ]
    if model.get("container_env"):
        upload.append("--container-env-vars=" + ",".join(f"{k}={v}" for k, v in sorted(model["container_env"].items())))
    if model.get("container_grpc_ports"):
        upload.append("--container-grpc-ports=" + ",".join(str(p) for p in model["container_grpc_ports"]))
    for flag in ("predict_route", "health_route"):
        if model.get(f"container_{flag}"):
            upload.append(f"--container-{flag.replace('_', '-')}={model[f'container_{flag}']}")
    gcloud(*upload, step=f"{SEED_TARGET}: gcloud ai models upload")
    model_id = gcloud(
        "ai",
        "models",
        "list",
        f"--region={region}",
        f"--filter=display_name={SEED_MODEL_NAME}",
        "--format=value(name)",
        step=f"{SEED_TARGET}: gcloud ai models list",
    ).stdout.strip()
    check(
        re.fullmatch(r"[0-9]+", model_id) is not None,
        f"gcloud ai models list: one generated model ID expected, got {model_id!r}",
    )
    deployed = gcloud(
        "ai",
        "endpoints",
        "deploy-model",
        endpoint_id,
        f"--region={region}",
        f"--model={model_id}",
        f"--display-name={SEED_MODEL_NAME}",
        "--traffic-split=0=100",
        step=f"{SEED_TARGET}: gcloud ai endpoints deploy-model",
    )
    match = found(
        r"Id of the deployed model: ([0-9]+)",
        deployed.stderr,
        f"gcloud ai endpoints deploy-model printed {deployed.stderr!r}",
    )
    parent = f"projects/{model['project']}/locations/{region}"
    return endpoint_id, f"{parent}/models/{model_id}@1", match.group(1)


def _seed_by_rest(rollout: Rollout, model: dict, progress: Progress) -> tuple[str, str, str]:
    """The REST calls the seed's gcloud commands make, with gcloud's defaults, where gcloud is not installed."""
    parent = f"projects/{model['project']}/locations/{model['region']}"
    with progress.step(f"{SEED_TARGET}: the seed's endpoints create, upload and deploy-model, as REST calls"):
        endpoint = rollout.vertex.call("POST", f"{parent}/endpoints", {"displayName": SEED_ENDPOINT_NAME})["name"]
        container = {
            "imageUri": model["container_image_uri"],
            "env": [{"name": k, "value": v} for k, v in sorted(model.get("container_env", {}).items())],
        }
        if model.get("container_grpc_ports"):
            container["grpcPorts"] = [{"containerPort": p} for p in model["container_grpc_ports"]]
        for flag, key in (("predict_route", "predictRoute"), ("health_route", "healthRoute")):
            if model.get(f"container_{flag}"):
                container[key] = model[f"container_{flag}"]
        uploaded = rollout.vertex.call(
            "POST",
            f"{parent}/models:upload",
            {
                "model": {
                    "displayName": SEED_MODEL_NAME,
                    "artifactUri": model["artifact_uri"],
                    "containerSpec": container,
                }
            },
        )
        deployed = rollout.vertex.call(
            "POST",
            f"{endpoint}:deployModel",
            {
                "deployedModel": {
                    "model": uploaded["model"],
                    "displayName": SEED_MODEL_NAME,
                    "dedicatedResources": {"minReplicaCount": 1},
                },
                "trafficSplit": {"0": 100},
            },
        )
    return (
        endpoint.rsplit("/", 1)[1],
        f"{uploaded['model']}@{uploaded.get('modelVersionId') or '1'}",
        deployed["deployedModel"]["id"],
    )
