"""A rollout against the emulators: the same stacks, hooks and Terraform as in the cloud.

The bucket and endpoint stacks need the google provider, which cannot be installed here;
`provision()` creates what they declare (bucket, artifact objects, endpoint) with the real
google-cloud-storage and google-cloud-aiplatform clients, reading their synthesized JSON.
The model and deployment stacks are applied and destroyed by real Terraform, whose
provisioners run our hooks against the Vertex AI emulator.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from build_hooks import earth_engine as ee
from build_hooks.build import build
from build_hooks.manifest import Manifest
from build_hooks.serving import http_json
from rehearsal.emulators import Emulators
from plan import terraform
from config.rollout import RolloutConfig, parse_config


@dataclass
class Progress:
    """Prints each long step as it starts and ends, and keeps a summary."""

    rows: list[tuple[str, str, float]] = field(default_factory=list)
    out: object = print

    @contextmanager
    def step(self, name: str):
        self.out(f"  .. {name}")
        started = time.monotonic()
        try:
            yield
        except BaseException as error:
            self.rows.append((name, f"FAILED: {str(error).splitlines()[0][:120]}", time.monotonic() - started))
            self.out(f"  !! {name} failed after {time.monotonic() - started:.1f}s")
            raise
        seconds = time.monotonic() - started
        self.rows.append((name, "ok", seconds))
        self.out(f"  ok {name} ({seconds:.1f}s)")

    def expected_failure(self, label: str) -> None:
        """Relabel the last step, which failed as the scenario meant it to."""
        name, result, seconds = self.rows[-1]
        assert result.startswith("FAILED"), self.rows[-1]
        self.rows[-1] = (name, label, seconds)
        self.out(f"  ok {name}: {label}")

    def summary(self) -> str:
        width = max((len(r[0]) for r in self.rows), default=10)
        result_width = max((len(r[1]) for r in self.rows), default=6)
        lines = [f"{'step':{width}}  {'result':{result_width}}  seconds"]
        lines += [f"{name:{width}}  {result:{result_width}}  {seconds:7.1f}" for name, result, seconds in self.rows]
        total = sum(r[2] for r in self.rows)
        lines.append(f"{'total':{width}}  {'':{result_width}}  {total:7.1f}")
        return "\n".join(lines)


@dataclass
class Prediction:
    deployed_model_ids: list[str]
    """The deployed model that answered each request of the call."""
    bands: dict[str, np.ndarray]

    @property
    def deployed_model_id(self) -> str:
        ids = set(self.deployed_model_ids)
        if len(ids) != 1:
            raise AssertionError(f"the call's requests were answered by several deployed models: {sorted(ids)}")
        return self.deployed_model_ids[0]


class EarthEngine:
    """Sends the requests Earth Engine sends for image tiles (split at maxPayloadBytes) and
    reads the answers back as Earth Engine does (`build_hooks.earth_engine.Contract`)."""

    def __init__(self, vertex_url: str, contract: ee.Contract):
        self.vertex_url = vertex_url
        self.contract = contract

    def predict(self, endpoint: str, tiles: dict[str, np.ndarray]) -> Prediction:
        ids, got = [], {}
        for batch in self.contract.requests(tiles):
            # The emulator predicts over REST: gRPC formats travel as TensorFlow Serving's REST
            # rendering of the same tensors (the signature is the same one).
            status, body = http_json(f"{self.vertex_url}/v1/{endpoint}:predict", batch.rest_body())
            if status != 200:
                raise RuntimeError(f"predict on {endpoint}: HTTP {status}: {body}")
            ids.append(body["deployedModelId"])
            for band, values in self.contract.read_predictions(batch, body["predictions"]).items():
                got.setdefault(band, []).append(values)
        return Prediction(ids, {band: np.concatenate(parts) for band, parts in got.items()})


class Rollout:
    """One rollout config, synthesized and applied target by target against the emulators."""

    def __init__(self, data: dict, workdir: Path, emulators: Emulators, progress: Progress):
        self.workdir = workdir
        self.emulators = emulators
        self.progress = progress
        self.outdir = workdir / "cdktf.out"
        self.state_dir = workdir / "state"
        self.data = data
        self.config: RolloutConfig | None = None
        self.manifest: Manifest | None = None

    def synth(self, data: dict | None = None) -> Manifest:
        from stacks.app import build_app

        if data is not None:
            self.data = data
        self.config = parse_config(json.loads(json.dumps(self.data)), self.workdir / "rollout.toml")
        with self.progress.step(f"build {self.config.model.source}"):
            self.manifest = build(self.config, log=lambda *_: None)
        with self.progress.step(f"synth {len(self.config.targets)} target(s), artifact {self.manifest.sha256[:12]}"):
            build_app(self.config, self.manifest, outdir=self.outdir, state_dir=self.state_dir).synth()
        return self.manifest

    def stack(self, name: str) -> dict:
        return json.loads((self.outdir / "stacks" / name / "cdk.tf.json").read_text())

    def endpoint(self, target: str) -> str:
        config = self.stack(f"{target}-endpoint")
        endpoint = config["resource"]["google_vertex_ai_endpoint"]["endpoint"]
        return f"projects/{endpoint['project']}/locations/{endpoint['location']}/endpoints/{endpoint['name']}"

    def provision(self, target: str) -> None:
        """Create what the bucket and endpoint stacks declare (idempotent, like Terraform)."""
        from google.api_core import exceptions
        from google.cloud.aiplatform_v1 import types

        from stacks.hooks.vertex import clients

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
                blob.upload_from_filename(str(self.outdir / "stacks" / f"{target}-bucket" / obj["source"]))

        endpoint = self.stack(f"{target}-endpoint")["resource"]["google_vertex_ai_endpoint"]["endpoint"]
        c = clients(endpoint["region"], self.emulators.vertex_url)
        parent = f"projects/{endpoint['project']}/locations/{endpoint['location']}"
        try:
            c.endpoints.get_endpoint(name=f"{parent}/endpoints/{endpoint['name']}")
        except exceptions.NotFound:
            c.endpoints.create_endpoint(
                parent=parent,
                endpoint_id=endpoint["name"],
                endpoint=types.Endpoint(
                    display_name=endpoint["display_name"],
                    labels=endpoint.get("labels", {}),
                    encryption_spec=endpoint.get("encryption_spec"),
                ),
            ).result()

    def _gcs(self, project: str):
        """The real google-cloud-storage client, pointed at the GCS emulator."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(project=project, credentials=AnonymousCredentials(),
                              client_options={"api_endpoint": self.emulators.gcs_url})

    def artifacts_in_bucket(self, target: str) -> list[str]:
        spec = self.stack(f"{target}-bucket")["resource"]["google_storage_bucket"]["artifacts"]
        return sorted(b.name for b in self._gcs(spec["project"]).list_blobs(spec["name"]))

    def terraform(self, stack: str, *, destroy: bool = False) -> str:
        stack_dir = self.outdir / "stacks" / stack
        return terraform.apply_stack(stack_dir, destroy=destroy, env=self.emulators.env())

    def apply(self, target: str) -> list[str]:
        with self.progress.step(f"{target}: provision bucket, artifact and endpoint"):
            self.provision(target)
        results = []
        for kind in ("model", "deployment"):
            with self.progress.step(f"{target}: terraform apply {target}-{kind}"):
                results.append(self.terraform(f"{target}-{kind}"))
                self.progress.out(f"     {results[-1]}")
        return results

    def destroy(self, target: str) -> list[str]:
        results = []
        for kind in ("deployment", "model"):
            with self.progress.step(f"{target}: terraform destroy {target}-{kind}"):
                results.append(self.terraform(f"{target}-{kind}", destroy=True))
                self.progress.out(f"     {results[-1]}")
        return results

    def deployed(self, target: str) -> dict[str, int]:
        """The endpoint's traffic split as the emulator has it (deployed ID -> percent)."""
        state = http_json(f"{self.emulators.vertex_url}/emulator/state")[1]
        endpoint = state["endpoints"].get(self.endpoint(target))
        return {d["id"]: endpoint["trafficSplit"].get(d["id"], 0) for d in endpoint["deployedModels"]} if endpoint else {}

    def models(self) -> list[str]:
        state = http_json(f"{self.emulators.vertex_url}/emulator/state")[1]
        return sorted(state["models"])

    def deployed_id(self, target: str, sha256: str) -> str:
        for name, res in self.stack(f"{target}-deployment")["resource"]["terraform_data"].items():
            if name.startswith("deployment_") and res["input"]["artifact_sha256"] == sha256:
                return res["input"]["deployed_model_id"]
        raise KeyError(f"no deployment of {sha256[:12]} declared for {target}")
