"""The rehearsal of a user's own model outside this repository (`--quick`)."""

from __future__ import annotations

import pytest
from rehearsal_support import embedded_terraform, needs_provider  # noqa: F401 - an autouse fixture

from rehearsal.scenario import rehearse


@pytest.mark.slow
@needs_provider
def test_a_users_own_model_outside_the_repository(tmp_path):
    """A model module beside its config in a folder of its own (no PYTHONPATH), rehearsed as
    `nox -s rehearse -- --quick ../my-unet/rollout.toml` runs it: its next version is the same model
    with `model.version_label`, its tiles the config's own size."""
    from test_own_model import write_project

    config = write_project(tmp_path / "my-unet")
    report = rehearse(config, tmp_path / "work", max_targets=1, quick=True, out=lambda *_: None)
    assert report.targets == ["dev"]
    assert report.tile_size == 32
    assert report.first_sha256 != report.next_sha256
    assert report.facts["rollout_failed_requests"] == 0
    assert "FAILED" not in report.summary
