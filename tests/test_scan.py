"""checkov on synthesized stacks: the examples pass; a weakened bucket fails.

checkov lives in its own virtualenv (its pins clash with TensorFlow's), so these tests run
in `nox -s scan`, which sets $CHECKOV and $EEV_SCAN_OUTDIR (the synthesized examples)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from plan.scan import scan

pytestmark = pytest.mark.skipif(
    not os.environ.get("CHECKOV") or not os.environ.get("EEV_SCAN_OUTDIR"),
    reason="checkov has its own virtualenv: run in `nox -s scan`",
)


@pytest.fixture
def outdir(tmp_path) -> Path:
    copy = tmp_path / "cdktf.out"
    shutil.copytree(os.environ["EEV_SCAN_OUTDIR"], copy)
    return copy


def edit(outdir: Path, stack: str, change) -> None:
    path = outdir / "stacks" / stack / "cdk.tf.json"
    config = json.loads(path.read_text())
    change(config["resource"])
    path.write_text(json.dumps(config))


def failed(result) -> set[tuple[str, str]]:
    return {(c["check_id"], Path(c["file_path"]).parent.name) for c in result["failed"]}


def test_synthesized_examples_have_no_failed_checks(outdir):
    result = scan(outdir)
    assert result["failed"] == [] and result["parsing_errors"] == []
    passed = {(c["check_id"], Path(c["file_path"]).parent.name) for c in result["passed"]}
    for bucket_check in ("CKV_GCP_29", "CKV_GCP_114", "CKV_GCP_78", "CKV_GCP_62"):
        assert (bucket_check, "dev-bucket") in passed
    # CMEK is checked where a key is configured (prod), and said not to apply elsewhere.
    assert ("CKV2_GCP_24", "prod-endpoint") in passed
    assert {"check_id": "CKV2_GCP_24", "stack": "dev-endpoint",
            "reason": "no kms_key configured for this target"} in result["not_run"]


def test_weakened_bucket_and_endpoint_fail(outdir):
    def weaken_bucket(resources):
        bucket = resources["google_storage_bucket"]["artifacts"]
        bucket.update(uniform_bucket_level_access=False, public_access_prevention="inherited",
                      versioning={"enabled": False})
        del bucket["logging"]

    edit(outdir, "dev-bucket", weaken_bucket)
    edit(outdir, "prod-endpoint", lambda r: r["google_vertex_ai_endpoint"]["endpoint"].pop("encryption_spec"))
    assert failed(scan(outdir)) == {
        ("CKV_GCP_29", "dev-bucket"), ("CKV_GCP_114", "dev-bucket"), ("CKV_GCP_78", "dev-bucket"),
        ("CKV_GCP_62", "dev-bucket"), ("CKV2_GCP_24", "prod-endpoint"),
    }
