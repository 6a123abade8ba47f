"""The seed's gcloud commands, run by Google's own gcloud CLI against the emulators, then the
parity check: what gcloud created equals, field by field, what our stacks create for the
same settings.

1. build the config's model and copy the artifact into the (emulated) bucket, where the
   bucket stack puts it;
2. configure gcloud as a new user would (`gcloud config set
   api_endpoint_overrides/aiplatform http://127.0.0.1:PORT/`, `auth/disable_credentials
   true`, in a configuration of its own) and run the seed's commands unchanged: `ai models
   upload ... --container-grpc-ports=8500`, `ai endpoints create --display-name`, `ai
   endpoints deploy-model ID --model --traffic-split=0=100 --display-name
   --min-replica-count --max-replica-count`, `ai endpoints predict --json-request`; each
   must exit 0 and print what it prints against Google;
3. parity: the same settings rolled out by our stacks on fresh emulators; `parity()`
   compares the two emulator states (container spec with grpcPorts, artifact URI,
   dedicatedResources, service account, traffic split); both states are kept as
   `<workdir>/gcloud-state.json` and `<workdir>/stacks-state.json`;
4. `ai endpoints undeploy-model`, `ai endpoints delete`, `ai models delete`: the emulator
   is left with nothing.

The emulator runs with `--project-numbers` here: gcloud gets resource names as Vertex AI
returns them (`projects/<number>/...`).
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from build_hooks import earth_engine as ee
from build_hooks.build import build
from config.rollout import parse_config
from rehearsal.emulators import Emulators
from rehearsal.progress import Progress
from rehearsal.rollout import Rollout
from stacks import naming
from stacks.versions import serving_image_uri

# The seed's deploy-model passes no --machine-type: Vertex AI deploys on its default
# (MachineSpec.machine_type: "For DeployedModel ... the default value is n1-standard-2").
GCLOUD_MACHINE_TYPE = "n1-standard-2"


class GcloudFailed(AssertionError):
    pass


def gcloud_missing() -> str | None:
    """Why the gcloud scenario cannot run here, or None."""
    if shutil.which("gcloud") is None:
        return "the gcloud CLI is not on PATH (install the Google Cloud SDK to run this scenario)"
    return None


# -- parity --------------------------------------------------------------------------------


def deployments(state: dict) -> list[dict]:
    """Every deployed model of a Vertex AI emulator state (`/emulator/state`), reduced to
    the settings both gcloud and our stacks choose, in a stable order."""
    found = []
    for endpoint in sorted(state["endpoints"].values(), key=lambda e: e["name"]):
        for deployed in endpoint.get("deployedModels", []):
            versions = state["models"][deployed["model"]]["versions"]
            version = next(v for v in versions if v["versionId"] == deployed["modelVersionId"])
            found.append(
                {
                    "model.artifactUri": version.get("artifactUri", "").rstrip("/") + "/",
                    "model.containerSpec": _without_empty(version.get("containerSpec", {})),
                    "deployedModel.dedicatedResources": _without_empty(
                        _without_default_targets(deployed.get("dedicatedResources", {}))
                    ),
                    "deployedModel.serviceAccount": deployed.get("serviceAccount", ""),
                    "endpoint.trafficSplit": endpoint.get("trafficSplit", {}).get(deployed["id"], 0),
                }
            )
    return sorted(found, key=lambda d: json.dumps(d, sort_keys=True))


def parity(gcloud_state: dict, stacks_state: dict) -> list[str]:
    """Field-by-field differences between the deployments of two emulator states; empty
    when they agree. Names, IDs, display names, labels and times are not compared: they
    are ours to choose. Call it with two `Emulators.state()` snapshots, e.g. one taken
    after the gcloud commands and one after `Rollout.apply()` of the same settings."""
    ours, theirs = deployments(stacks_state), deployments(gcloud_state)
    if len(ours) != len(theirs):
        return [f"gcloud made {len(theirs)} deployment(s), the stacks {len(ours)}"]
    differences = []
    for index, (g, s) in enumerate(zip(theirs, ours, strict=True)):
        flat_g, flat_s = _flatten(g), _flatten(s)
        for key in sorted(set(flat_g) | set(flat_s)):
            if flat_g.get(key) != flat_s.get(key):
                differences.append(f"deployment {index}: {key}: gcloud {flat_g.get(key)!r}, stacks {flat_s.get(key)!r}")
    return differences


def _without_default_targets(resources: dict) -> dict:
    """The stacks state the CPU (and duty cycle) target even at Vertex AI's default, 60, which
    gcloud leaves out; the two mean the same (machine_resources.py DedicatedResources
    .autoscaling_metric_specs: "The default target value is 60 for both metrics")."""
    from config import rules

    specs = [
        spec
        for spec in resources.get("autoscalingMetricSpecs") or []
        if not (
            spec.get("metricName") in rules.PERCENT_METRICS
            and spec.get("target", rules.DEFAULT_AUTOSCALING_TARGET) == rules.DEFAULT_AUTOSCALING_TARGET
        )
    ]
    return {**resources, "autoscalingMetricSpecs": specs}


def _without_empty(value):
    if isinstance(value, dict):
        cleaned = {k: _without_empty(v) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if v not in ("", [], {}, None, 0, "ACCELERATOR_TYPE_UNSPECIFIED")}
    if isinstance(value, list):
        return [_without_empty(v) for v in value]
    return value


def _flatten(value, prefix: str = "") -> dict:
    if isinstance(value, dict) and value:
        flat = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else key))
        return flat
    return {prefix: value}


# -- the scenario ----------------------------------------------------------------------------


@dataclass
class GcloudReport:
    config: str
    commands: list[tuple[str, int, float]] = field(default_factory=list)
    """(command, exit status, seconds) for each gcloud command run."""
    compared: list[dict] = field(default_factory=list)
    """What gcloud deployed, as parity() compares it."""
    differences: list[str] = field(default_factory=list)
    summary: str = ""


class Gcloud:
    """The gcloud CLI with a configuration of its own (CLOUDSDK_CONFIG), output logged."""

    def __init__(self, config_dir: Path, log: Path, report: GcloudReport, progress: Progress):
        self.env = {**os.environ, "CLOUDSDK_CONFIG": str(config_dir)}
        for name in list(self.env):
            if name.startswith("CLOUDSDK_") and name != "CLOUDSDK_CONFIG":
                del self.env[name]
        self.log = log
        self.report = report
        self.progress = progress

    def __call__(self, *args: str, step: str | None = None) -> subprocess.CompletedProcess:
        command = ["gcloud", *args]
        shown = " ".join(command)
        with self.progress.step(step or shown[:110]):
            started = time.monotonic()
            result = subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=600)
            seconds = time.monotonic() - started
            with self.log.open("a") as log:
                log.write(f"$ {shown}\n[exit {result.returncode}, {seconds:.1f}s]\n{result.stdout}{result.stderr}\n")
            self.report.commands.append((shown, result.returncode, seconds))
            if result.returncode != 0:
                raise GcloudFailed(f"`{shown}` exited {result.returncode}: {result.stderr.strip()[-800:]}")
        return result


def rehearse_gcloud(config_path: Path, workdir: Path, *, out=print) -> GcloudReport:
    """Run the scenario for the first target of `config_path` (its model must open the gRPC
    port); raises GcloudFailed at the first command or field that is not as it must be."""
    workdir = workdir.resolve()
    data = tomllib.loads(config_path.read_text())
    data["model"]["artifact_dir"] = str(workdir / "artifact")
    target = data["targets"][0]
    target.update(machine_type=GCLOUD_MACHINE_TYPE, traffic_percent=100, accelerator_type=None, accelerator_count=0)
    target = {k: v for k, v in target.items() if v is not None}
    data["targets"] = [target]
    data["model"].pop("previous", None)
    report = GcloudReport(config=str(config_path))
    progress = Progress(out=out)
    try:
        config = parse_config(copy.deepcopy(data), config_path.resolve())
        if not config.model.grpc:
            raise GcloudFailed(
                f"{config_path}: model.grpc is false, but the seed's upload opens gRPC port 8500 "
                "(--container-grpc-ports=8500); use a config with grpc = true"
            )
        with progress.step(f"build {config.model.source}"):
            manifest = build(config, log=lambda *_: None)
        with Emulators(workdir / "gcloud-emulators", project_numbers=True) as emulators:
            gcloud_state = _gcloud_commands(config, manifest, workdir, emulators, report, progress)
        with Emulators(workdir / "stacks-emulators") as emulators:
            (workdir / "stacks").mkdir(parents=True, exist_ok=True)
            rollout = Rollout(data, workdir / "stacks", emulators, progress, config_path=config_path)
            rollout.synth()
            rollout.apply(config.targets[0].name)
            stacks_state = emulators.state()
            rollout.destroy(config.targets[0].name)
        for name, state in (("gcloud", gcloud_state), ("stacks", stacks_state)):
            (workdir / f"{name}-state.json").write_text(json.dumps(state, indent=1, sort_keys=True))
        report.compared = deployments(gcloud_state)
        report.differences = parity(gcloud_state, stacks_state)
        with progress.step("parity: gcloud's deployment equals the stacks' for the same settings"):
            if report.differences:
                raise GcloudFailed("parity: " + "; ".join(report.differences))
    finally:
        report.summary = progress.summary()
    return report


def _gcloud_commands(
    config, manifest, workdir: Path, emulators: Emulators, report: GcloudReport, progress: Progress
) -> dict:
    target = config.targets[0]
    region, model = target.region, config.model
    uri = f"gs://{target.bucket}/{naming.artifact_prefix(model.name, manifest.sha256)}/"
    with progress.step(f"copy artifact {manifest.sha256[:12]} into gs://{target.bucket}"):
        _upload_artifact(emulators, target, config.artifact_dir / manifest.artifact_root, manifest, uri)

    gcloud = Gcloud(workdir / "gcloud-config", workdir / "gcloud.log", report, progress)
    gcloud("config", "set", "api_endpoint_overrides/aiplatform", f"{emulators.vertex_url}/")
    gcloud("config", "set", "auth/disable_credentials", "true")
    gcloud("config", "set", "core/project", target.project)
    gcloud("config", "set", "core/disable_prompts", "true")
    gcloud("config", "set", "core/disable_usage_reporting", "true")
    gcloud("config", "set", "component_manager/disable_update_check", "true")

    image = serving_image_uri(config, manifest, target)
    own = config.own_image(target)
    routes = []
    if own is not None:
        built = manifest.serving_image(own.name)
        with progress.step(f"push {own.name} by hand (skopeo copy, by digest)"):
            from serving.image import ROOT, push

            repository = f"{emulators.registry_host}/{target.project}/{target.image_repository}/{built.name}"
            progress.note(f"pushed {push(ROOT / built.layout, repository, built.tag, built.digest, tls_verify=False)}")
        routes = [f"--container-predict-route={own.predict_route}", f"--container-health-route={own.health_route}"]
    gcloud(
        "ai",
        "models",
        "upload",
        f"--region={region}",
        f"--display-name={model.name}",
        f"--container-image-uri={image}",
        f"--artifact-uri={uri}",
        *routes,
        "--container-grpc-ports=8500",
    )
    model_id = gcloud(
        "ai", "models", "list", f"--region={region}", f"--filter=display_name={model.name}", "--format=value(name)"
    ).stdout.strip()
    _check(re.fullmatch(r"[0-9]{19}", model_id), f"models list: one generated model ID expected, got {model_id!r}")

    created = gcloud("ai", "endpoints", "create", f"--region={region}", f"--display-name={model.name}-gcloud")
    match = _search(
        rf"Created Vertex AI endpoint: projects/([0-9]+)/locations/{region}/endpoints/([0-9]+)\.",
        created.stderr,
        f"endpoints create printed {created.stderr!r}",
    )
    endpoint_id = match.group(2)

    deployed = gcloud(
        "ai",
        "endpoints",
        "deploy-model",
        endpoint_id,
        f"--region={region}",
        f"--model={model_id}",
        "--traffic-split=0=100",
        f"--display-name={model.name}-gcloud",
        f"--min-replica-count={target.min_replicas}",
        f"--max-replica-count={target.max_replicas}",
    )
    match = _search(
        rf"Deployed a model to the endpoint {endpoint_id}\. Id of the deployed model: ([0-9]+)\.",
        deployed.stderr,
        f"deploy-model printed {deployed.stderr!r}",
    )
    deployed_id = match.group(1)

    request = workdir / "predict-request.json"
    contract = ee.Contract.from_config(model, manifest)
    (batch,) = contract.requests(contract.example_tiles(count=1, seed=7))
    request.write_bytes(batch.rest_body())
    predicted = gcloud("ai", "endpoints", "predict", endpoint_id, f"--region={region}", f"--json-request={request}")
    _check(predicted.stdout.strip(), "endpoints predict printed no predictions")
    state = emulators.state()

    gcloud("ai", "endpoints", "undeploy-model", endpoint_id, f"--region={region}", f"--deployed-model-id={deployed_id}")
    gcloud("ai", "endpoints", "delete", endpoint_id, f"--region={region}")
    gcloud("ai", "models", "delete", model_id, f"--region={region}")
    left = emulators.state()
    _check(
        not left["models"] and not left["endpoints"], f"gcloud left {list(left['models'])} {list(left['endpoints'])}"
    )
    return state


def _upload_artifact(emulators: Emulators, target, root: Path, manifest, uri: str) -> None:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(
        project=target.project, credentials=AnonymousCredentials(), client_options={"api_endpoint": emulators.gcs_url}
    )
    bucket = client.lookup_bucket(target.bucket) or client.create_bucket(target.bucket, location=target.region)
    prefix = uri.removeprefix(f"gs://{target.bucket}/")
    for item in manifest.files:
        bucket.blob(prefix + item.path).upload_from_filename(str(root / item.path))


def _check(condition, message: str) -> None:
    if not condition:
        raise GcloudFailed(message)


def _search(pattern: str, text: str, message: str) -> re.Match[str]:
    """The first match of the pattern in the text, or GcloudFailed with the message."""
    match = re.search(pattern, text)
    if match is None:
        raise GcloudFailed(message)
    return match
