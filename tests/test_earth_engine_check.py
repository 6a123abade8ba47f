"""`nox -s earth-engine-check -- TARGET` (plan/earth_engine.py): the endpoint stack's call run
with earthengine-api; here, without a real project, it says SKIPPED and why, or FAILED with
what Earth Engine's client said."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import ROOT, stack_json


def _check(outdir, *args, home, extra_env=None, without_ee=False):
    """`python -m plan.earth_engine` with no Google credentials but those put in `home`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GOOGLE_", "CLOUDSDK_"))}
    env.update(HOME=str(home), NO_GCE_CHECK="True", **(extra_env or {}))
    argv = ["-m", "plan.earth_engine", *args, "--outdir", str(outdir)]
    if without_ee:
        # earthengine-api not importable: the module is run as `python -m` would, `ee` blocked.
        argv = [
            "-c",
            "import runpy, sys; sys.modules['ee'] = None; "
            f"sys.argv = ['plan.earth_engine', *{argv[2:]!r}]; "
            "runpy.run_module('plan.earth_engine', run_name='__main__', alter_sys=True)",
        ]
    return subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, env=env, timeout=120)


def test_without_credentials_it_prints_the_call_and_skips(torch_synth, tmp_path):
    done = _check(torch_synth, "dev", home=tmp_path)
    assert done.returncode == 0, done.stderr
    snippet = stack_json(torch_synth, "dev-endpoint")["output"]["earth_engine_snippet"]["value"]
    assert done.stdout.splitlines() == [
        f"dev: {snippet}",
        "SKIPPED: no Earth Engine credentials: Please authorize access to your Earth Engine account by running "
        "earthengine authenticate in your command line, or ee.Authenticate() in Python, and then retry.",
    ]


def test_without_earthengine_api_it_skips(torch_synth, tmp_path):
    done = _check(torch_synth, "prod", home=tmp_path, without_ee=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == (
        "SKIPPED: earthengine-api is not installed here (`nox -s earth-engine-check -- TARGET` installs the "
        "version pyproject.toml pins)"
    )


def test_an_unknown_target_is_an_error_even_when_skipping(torch_synth, tmp_path):
    done = _check(torch_synth, "qa", home=tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == (f"error: target 'qa' is not in the last synth ({torch_synth}); allowed: dev, prod")


def test_without_a_synth_it_still_skips_with_the_reason(tmp_path):
    done = _check(tmp_path / "cdktf.out", "dev", home=tmp_path)
    assert done.returncode == 0
    assert done.stdout.startswith("SKIPPED: no Earth Engine credentials: ")


def test_credentials_earth_engine_cannot_use_fail_naming_the_target(torch_synth, tmp_path):
    """A credentials file as `earthengine authenticate` writes it, with a refresh token Google
    never issued (and no network here): the check runs the call and reports the failure."""
    credentials = tmp_path / ".config" / "earthengine" / "credentials"
    credentials.parent.mkdir(parents=True)
    credentials.write_text(
        json.dumps(
            {"refresh_token": "not-a-real-token", "client_id": "c", "client_secret": "s", "project": "acme-geo-dev"}
        )
    )
    done = _check(torch_synth, "dev", home=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    endpoint = stack_json(torch_synth, "dev-endpoint")["output"]["endpoint_name"]["value"]
    assert done.stdout.splitlines()[-1].startswith(f"FAILED: dev: {endpoint} at (-122.3, 37.8): ")
    assert "Traceback" not in done.stdout + done.stderr
