"""checkov on synthesized stacks: the built-in example passes; a weakened stack fails, named.

checkov has its own virtualenv (its pins clash with TensorFlow's): `nox -s tests` creates it
and sets $CHECKOV; without it these tests are skipped, saying so."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from plan.scan import scan

pytestmark = pytest.mark.skipif(
    not os.environ.get("CHECKOV"),
    reason="checkov lives in its own virtualenv: set $CHECKOV to its executable (`nox -s tests` does)",
)


@pytest.fixture
def outdir(torch_synth, tmp_path) -> Path:
    copy = tmp_path / "cdktf.out"
    shutil.copytree(torch_synth, copy)
    return copy


def edit(outdir: Path, stack: str, change) -> None:
    path = outdir / "stacks" / stack / "cdk.tf.json"
    config = json.loads(path.read_text())
    change(config["resource"])
    path.write_text(json.dumps(config))


def failed(result) -> set[tuple[str, str]]:
    return {(c["check_id"], Path(c["file_path"]).parent.name) for c in result["failed"]}


def test_built_in_example_has_no_failed_checks(outdir):
    result = scan(outdir)
    assert result["failed"] == [] and result["parsing_errors"] == []
    passed = {(c["check_id"], Path(c["file_path"]).parent.name) for c in result["passed"]}
    for bucket_check in ("CKV_GCP_29", "CKV_GCP_114", "CKV_GCP_78", "CKV_GCP_62"):
        assert (bucket_check, "dev-bucket") in passed
    # CMEK is checked where a key is configured (prod), and said not to apply elsewhere.
    assert ("CKV2_GCP_24", "prod-endpoint") in passed and ("CKV_GCP_84", "prod-registry") in passed
    for check, stack in (("CKV2_GCP_24", "dev-endpoint"), ("CKV_GCP_84", "dev-registry")):
        assert {"check_id": check, "stack": stack, "reason": "no kms_key configured for this target"} in result[
            "not_run"
        ]


def test_weakened_bucket_and_endpoint_fail(outdir):
    def weaken_bucket(resources):
        bucket = resources["google_storage_bucket"]["artifacts"]
        bucket.update(
            uniform_bucket_level_access=False, public_access_prevention="inherited", versioning={"enabled": False}
        )
        del bucket["logging"]

    edit(outdir, "dev-bucket", weaken_bucket)
    edit(outdir, "prod-endpoint", lambda r: r["google_vertex_ai_endpoint"]["endpoint"].pop("encryption_spec"))
    assert failed(scan(outdir)) == {
        ("CKV_GCP_29", "dev-bucket"),
        ("CKV_GCP_114", "dev-bucket"),
        ("CKV_GCP_78", "dev-bucket"),
        ("CKV_GCP_62", "dev-bucket"),
        ("CKV2_GCP_24", "prod-endpoint"),
    }


def test_a_finding_fails_the_command_and_is_named(outdir):
    edit(outdir, "dev-bucket", lambda r: r["google_storage_bucket"]["artifacts"].update(versioning={"enabled": False}))
    done = subprocess.run([sys.executable, "-m", "plan.scan", str(outdir)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 1
    assert "FAILED  CKV_GCP_78   dev-bucket" in done.stdout
    assert done.stderr.strip() == "error: checkov found CKV_GCP_78 on dev-bucket/google_storage_bucket.artifacts"


def test_only_the_stacks_of_the_manifest_are_scanned(outdir):
    stale = outdir / "stacks" / "old-bucket"
    shutil.copytree(outdir / "stacks" / "dev-bucket", stale)
    edit(outdir, "old-bucket", lambda r: r["google_storage_bucket"]["artifacts"].update(versioning={"enabled": False}))
    result = scan(outdir)
    assert result["failed"] == []
    assert "old-bucket" not in {Path(c["file_path"]).parent.name for c in result["passed"]}
