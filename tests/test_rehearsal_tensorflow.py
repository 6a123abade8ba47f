"""The rehearsal of the TensorFlow example (`--quick`): see tests/test_rehearsal.py."""

from __future__ import annotations

import pytest
from conftest import ROOT
from rehearsal_support import embedded_terraform, needs_provider  # noqa: F401 - an autouse fixture

from rehearsal.scenario import rehearse


@pytest.mark.slow
@needs_provider
def test_tensorflow_rollout_on_one_target(tmp_path):
    """The rollout through TensorFlow Serving (its REST and Earth Engine's gRPC formats); the
    drills by hand, the adoption and the interrupted applies are the PyTorch rehearsal's above,
    the provider's whatever the model."""
    report = rehearse(ROOT / "examples/tensorflow.toml", tmp_path, max_targets=1, quick=True, out=lambda *_: None)
    assert report.targets == ["staging"]
    assert report.first_sha256 != report.next_sha256
    assert 1 <= report.facts["canary_counts"]["next"] <= 3
    assert min(report.facts[f"{s}_apply_requests"] for s in ("canary", "promote", "rollback")) > 0
    assert report.facts["rollout_failed_requests"] == 0
    assert report.facts["destroy_calls"]["deleteEndpoint"] == 1
    assert "interrupted" not in report.facts and "adopted_endpoint_id" not in report.facts
