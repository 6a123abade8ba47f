"""The rehearsal of verified promotion (`--scenario verified`): a broken canary refused."""

from __future__ import annotations

import pytest
from conftest import ROOT
from rehearsal_support import embedded_terraform, needs_provider  # noqa: F401 - an autouse fixture

from rehearsal.verified import rehearse_verified_canary


@pytest.mark.slow
@needs_provider
def test_broken_canary_is_refused_at_the_canary_step_and_a_correct_one_promoted(tmp_path):
    """Issue 17: wrong weights under the same bands in the bucket; the golden tile catches it."""
    report = rehearse_verified_canary(ROOT / "rollout.toml", tmp_path, out=lambda *_: None)
    facts = report.facts
    assert facts["broken_canary_error"].startswith("Verification failed: deployed model ")
    assert " on projects/acme-geo-dev/locations/us-central1/endpoints/" in facts["broken_canary_error"]
    assert facts["broken_canary_difference"].startswith("band 'probabilities' differs by up to ")
    assert "the traffic split is back to" in facts["broken_canary_difference"]
    assert len(facts["broken_canary_split"]) == 1 and list(facts["broken_canary_split"].values()) == [100]
    assert facts["broken_canary_requests"] > 0 and facts["broken_canary_failed_requests"] == 0
    assert facts["fixed_canary_failed_requests"] == 0
    assert list(facts["promoted_split"].values()) == [100]
    assert set(facts["promoted_split"]) <= set(facts["fixed_canary_verified"])
    assert "FAILED" not in report.summary
