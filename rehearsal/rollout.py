"""A rollout against the emulators: the same stacks, provider and Terraform as in the cloud.

- The model and deployment stacks run on real Terraform (embedded, `plan.terraform`) with
  our `eevertex` provider, installed as a user installs it (`python -m provider.install`
  into a filesystem mirror, `TF_CLI_CONFIG_FILE` assigned), its `api_endpoint` pointed at
  the Vertex AI emulator through the provider block (`VertexProviderConfig`).
- The bucket and endpoint stacks need the google provider, which cannot be installed
  offline: `provision()` creates what they declare (bucket, artifact objects, endpoint)
  with the real google-cloud-storage client and the Vertex AI REST API, read from their
  synthesized JSON; `release_endpoint()` deletes the endpoint as their destroy would.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from build_hooks.build import build
from build_hooks.manifest import Manifest
from config.rollout import RolloutConfig, parse_config
from rehearsal.emulators import Emulators
from rehearsal.progress import Progress, check
from rehearsal.terraform_runner import Plan, Terraform
from rehearsal.vertex_rest import Vertex


def push_layout(layout: Path, image: dict, host: str) -> str:
    """An `eevertex_image`'s layout pushed to the loopback registry by hand."""
    from serving.image import push

    repository = image["repository"].split("/", 1)[1]
    return push(layout, f"{host}/{repository}/{image['name']}", image["tag"], image["digest"], tls_verify=False)


def _unprojected(name: str) -> str:
    """A resource name without its project (ID or number: Vertex AI names carry the number)."""
    return name.split("/", 2)[2] if name.startswith("projects/") else name


class Rollout:
    """One rollout config, synthesized and applied target by target against the emulators."""

    def __init__(self, data: dict, workdir: Path, emulators: Emulators, progress: Progress, *, config_path: Path):
        """`config_path`: where the user's config lives; its folder is where `model.source`
        is looked up, as for `nox -s build` (data's artifact_dir is absolute)."""
        self.config_path = config_path.resolve()
        self.workdir = workdir
        self.emulators = emulators
        self.progress = progress
        self.outdir = workdir / "cdktf.out"
        self.state_dir = workdir / "state"
        self.data = data
        self._config: RolloutConfig | None = None
        self.manifest: Manifest | None = None
        self.vertex = Vertex(emulators.vertex_url)
        self.terraform = Terraform(workdir, progress)

    @property
    def config(self) -> RolloutConfig:
        """The config of the last synth (or configure)."""
        if self._config is None:
            raise RuntimeError("the rollout has no config yet: synth (or configure) first")
        return self._config

    def configure(self, data: dict) -> RolloutConfig:
        self.data = json.loads(json.dumps(data))
        self._config = parse_config(json.loads(json.dumps(self.data)), self.config_path)
        return self._config

    def synth(self, data: dict | None = None) -> Manifest:
        """Build the config's artifact (a no-op when it is built already) and synthesize
        every target's stacks, the provider block pointed at the emulator."""
        from stacks.app import build_app
        from stacks.environment import VertexProviderConfig

        config = self.configure(data if data is not None else self.data)
        label = getattr(config.model, "version_label", None)
        emulator = VertexProviderConfig(
            api_endpoint=self.emulators.vertex_url,
            credentials="none",
            registry_endpoint=f"http://{self.emulators.registry_host}",
            storage_endpoint=self.emulators.gcs_url,
        )
        with self.progress.step(
            f"build and synth {config.model.source}{f' ({label})' if label else ''}, {len(config.targets)} target(s)"
        ):
            self.manifest = build(config, log=self.progress.detail)
            build_app(
                config, self.manifest, outdir=self.outdir, state_dir=self.state_dir, vertex_provider=emulator
            ).synth()
            self.progress.note(f"artifact sha256 {self.manifest.sha256[:12]}")
        return self.manifest

    def stack_dir(self, name: str) -> Path:
        return self.outdir / "stacks" / name

    def stack(self, name: str) -> dict:
        return json.loads((self.stack_dir(name) / "cdk.tf.json").read_text())

    def target(self, name: str) -> dict:
        return next(t for t in self.data["targets"] if t["name"] == name)

    def endpoint(self, target: str) -> str:
        endpoint = self.stack(f"{target}-endpoint")["resource"]["google_vertex_ai_endpoint"]["endpoint"]
        return f"projects/{endpoint['project']}/locations/{endpoint['location']}/endpoints/{endpoint['name']}"

    # the stacks the google provider would apply

    def provision(self, target: str) -> None:
        """Create what the bucket and endpoint stacks declare (idempotent, like Terraform); the
        registry stack needs nothing here (the loopback registry takes any repository), and the
        model stack pushes our images itself (`eevertex_image`)."""
        self.provision_bucket(target)
        self.create_endpoint(target)

    def provision_bucket(self, target: str) -> None:
        """The bucket stack: the bucket and the artifact objects."""
        bucket_stack = self.stack(f"{target}-bucket")["resource"]
        spec = bucket_stack["google_storage_bucket"]["artifacts"]
        gcs = self._gcs(spec["project"])
        bucket = gcs.lookup_bucket(spec["name"])
        if bucket is None:
            bucket = gcs.bucket(spec["name"])
            bucket.versioning_enabled = spec["versioning"]["enabled"]
            bucket.iam_configuration.uniform_bucket_level_access_enabled = spec["uniform_bucket_level_access"]
            bucket.labels = spec.get("labels", {})
            bucket = gcs.create_bucket(bucket, location=spec["location"])
        for obj in bucket_stack["google_storage_bucket_object"].values():
            blob = bucket.blob(obj["name"])
            if not blob.exists():
                blob.upload_from_filename(str(self.stack_dir(f"{target}-bucket") / obj["source"]))

    def push_by_hand(self, target: str) -> None:
        """Our images of the target's model stack pushed as a person pushes them by hand
        (skopeo, by digest), for what gcloud uploads outside the stacks."""
        for image in self.stack(f"{target}-model")["resource"].get("eevertex_image", {}).values():
            push_layout(self.stack_dir(f"{target}-model") / image["source"], image, self.emulators.registry_host)

    def create_endpoint(self, target: str, *, endpoint_id: str | None = None) -> str:
        spec = self.stack(f"{target}-endpoint")["resource"]["google_vertex_ai_endpoint"]["endpoint"]
        parent = f"projects/{spec['project']}/locations/{spec['location']}"
        name = f"{parent}/endpoints/{endpoint_id or spec['name']}"
        if self.vertex.get(name) is None:
            body = {"displayName": spec["display_name"], "labels": spec.get("labels", {})}
            if spec.get("encryption_spec"):
                body["encryptionSpec"] = {"kmsKeyName": spec["encryption_spec"]["kms_key_name"]}
            self.vertex.call("POST", f"{parent}/endpoints?endpointId={endpoint_id or spec['name']}", body)
        return name

    def release_endpoint(self, target: str) -> None:
        """What destroying the endpoint stack does: delete the endpoint (after the
        deployment stack has undeployed everything)."""
        if self.vertex.get(self.endpoint(target)) is not None:
            self.vertex.call("DELETE", self.endpoint(target))

    def _gcs(self, project: str):
        """The real google-cloud-storage client, pointed at the GCS emulator."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project=project, credentials=AnonymousCredentials(), client_options={"api_endpoint": self.emulators.gcs_url}
        )

    def artifacts_in_bucket(self, target: str) -> list[str]:
        spec = self.stack(f"{target}-bucket")["resource"]["google_storage_bucket"]["artifacts"]
        return sorted(b.name for b in self._gcs(spec["project"]).list_blobs(spec["name"]))

    # our stacks, on Terraform

    def plan(self, target: str, kind: str) -> Plan:
        plan = self.terraform.plan(self.stack_dir(f"{target}-{kind}"))
        self.progress.note(f"plan {target}-{kind}: {plan.describe()}")
        return plan

    def apply_stack(self, target: str, kind: str, *, destroy: bool = False) -> str:
        watch = self.watch_serving(target) if kind == "deployment" and not destroy else None
        result = self.terraform.apply(self.stack_dir(f"{target}-{kind}"), destroy=destroy)
        self.progress.note(f"{'destroy' if destroy else 'apply'} {target}-{kind}: {result}")
        if watch:
            self.check_served_throughout(watch)
        return result

    # the invariant: an endpoint that served before an apply serves throughout it and after it

    def watch_serving(self, target: str) -> dict:
        """Where the emulator's traffic log stands, and whether the endpoint serves now."""
        return {
            "target": target,
            "endpoint": _unprojected(self.endpoint(target)),
            "start": len(self.emulators.traffic()),
            "served": bool(self.serving(target)),
        }

    def check_served_throughout(self, watch: dict) -> None:
        """No instant since `watch` without a deployed model taking traffic, if it served then."""
        if not watch["served"]:
            return
        changes = [
            e for e in self.emulators.traffic()[watch["start"] :] if _unprojected(e["endpoint"]) == watch["endpoint"]
        ]
        empty = [e["at"] for e in changes if not e["serving"]]
        check(
            not empty,
            f"{watch['target']}: no deployed model took the endpoint's traffic at {empty[0] if empty else ''} "
            f"({len(empty)} such instant(s) among {len(changes)} changes)",
        )
        check(bool(self.serving(watch["target"])), f"{watch['target']}: the endpoint serves nothing after the apply")

    def serving(self, target: str) -> dict[str, int]:
        """Deployed models with a share of the endpoint's traffic."""
        return {k: v for k, v in self.deployed(target).items() if v}

    def apply(self, target: str, kinds: tuple[str, ...] = ("model", "deployment")) -> list[str]:
        with self.progress.step(f"{target}: apply {', '.join(f'{target}-{k}' for k in kinds)}"):
            self.provision(target)
            return [self.apply_stack(target, kind) for kind in kinds]

    def destroy(self, target: str) -> None:
        with self.progress.step(f"{target}: destroy {target}-deployment, the endpoint, {target}-model"):
            self.apply_stack(target, "deployment", destroy=True)
            self.release_endpoint(target)
            self.apply_stack(target, "model", destroy=True)

    # what the emulator holds

    def state(self) -> dict:
        return self.emulators.state()

    def settle(self, timeout: float = 300) -> None:
        """Wait until every long-running operation the emulator started is done (as a
        person re-running an apply after a crash finds them)."""
        deadline = time.monotonic() + timeout
        while any(not op.get("done") for op in self.state().get("operations", {}).values()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"operations still running after {timeout:.0f}s")
            time.sleep(0.2)

    def deployed(self, target: str) -> dict[str, int]:
        """The endpoint's traffic split as the emulator has it (deployed ID -> percent)."""
        endpoint = self.vertex.get(self.endpoint(target))
        if endpoint is None:
            return {}
        split = endpoint.get("trafficSplit", {})
        return {d["id"]: split.get(d["id"], 0) for d in endpoint.get("deployedModels", [])}

    def deployed_model(self, target: str, deployed_id: str) -> dict:
        endpoint = self.vertex.get(self.endpoint(target)) or {}
        return next(d for d in endpoint.get("deployedModels", []) if d["id"] == deployed_id)

    def model_versions(self, target: str) -> list[dict]:
        """Every version of every model in the target's project and region."""
        t = self.target(target)
        parent = f"projects/{t['project']}/locations/{t['region']}"
        models = self.vertex.call("GET", f"{parent}/models").get("models", [])
        versions = []
        for model in models:
            versions += self.vertex.call("GET", f"{model['name']}:listVersions").get("models", [])
        return versions

    def deployment(self, target: str, sha256: str) -> dict:
        """The synthesized deployment of the artifact `sha256` on the target."""
        for spec in self.stack(f"{target}-deployment")["resource"].get("eevertex_deployment", {}).values():
            model = self._model_of(target, spec["model"])
            if model is not None and sha256 in model["artifact_uri"]:
                return spec
        raise KeyError(f"no deployment of {sha256[:12]} declared for {target}")

    def deployed_id(self, target: str, sha256: str) -> str:
        return self.deployment(target, sha256)["deployed_model_id"]

    def _model_of(self, target: str, version_name: str) -> dict | None:
        for model in self.stack(f"{target}-model")["resource"]["eevertex_model"].values():
            if version_name.endswith(f"/models/{model['model_id']}@{model['version_alias']}"):
                return model
        return None
