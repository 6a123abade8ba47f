"""The provider's plan-time validation (the rollout config's rule table, the same messages), its
timeouts blocks, its settings from the environment, and its data sources; real Terraform and the
Vertex AI emulator."""

from __future__ import annotations

import json

import pytest
from conftest import example_data
from provider_support import (
    ARTIFACT,
    PROJECT,
    REGION,
    Workspace,
    changes,
    emulators,  # noqa: F401
    model_config,
    put_artifact,
)

from config import machines
from config.rollout import ConfigError, parse_config
from serving.local import http_json

pytestmark = pytest.mark.slow

ENDPOINT_ID = "512345678"
PARENT = f"projects/{PROJECT}/locations/{REGION}"


@pytest.fixture(scope="module")
def endpoint(emulators) -> str:
    put_artifact(emulators, ARTIFACT)
    status, op = http_json(
        f"{emulators.vertex_url}/v1/{PARENT}/endpoints?endpointId={ENDPOINT_ID}", {"displayName": "settings"}
    )
    assert status == 200, op
    return f"{PARENT}/endpoints/{ENDPOINT_ID}"


def deployment(model: str, deployed_id: str, **overrides) -> dict:
    return {
        "project": PROJECT,
        "region": REGION,
        "endpoint_id": ENDPOINT_ID,
        "model": model,
        "deployed_model_id": deployed_id,
        "machine_type": "n1-standard-4",
        "min_replica_count": 1,
        "max_replica_count": 1,
        **overrides,
    }


# (what is wrong, the deployment's attributes, the attribute, the target's config fields, its config field)
BAD = [
    ("empty machine type", {"machine_type": ""}, "machine_type", {"machine_type": ""}, "machine_type"),
    (
        "e2 + T4",
        {"machine_type": "e2-standard-4", "accelerator_type": "NVIDIA_TESLA_T4", "accelerator_count": 1},
        "accelerator_type",
        {"machine_type": "e2-standard-4", "accelerator_type": "NVIDIA_TESLA_T4", "accelerator_count": 1},
        "accelerator_type",
    ),
    (
        "n1-8 + A100",
        {"machine_type": "n1-standard-8", "accelerator_type": "NVIDIA_TESLA_A100", "accelerator_count": 1},
        "accelerator_type",
        {"machine_type": "n1-standard-8", "accelerator_type": "NVIDIA_TESLA_A100", "accelerator_count": 1},
        "accelerator_type",
    ),
    (
        "3 x T4",
        {"accelerator_type": "NVIDIA_TESLA_T4", "accelerator_count": 3},
        "accelerator_count",
        {"accelerator_type": "NVIDIA_TESLA_T4", "accelerator_count": 3},
        "accelerator_count",
    ),
    ("bad region", {"region": "mars-north1"}, "region", {"region": "mars-north1"}, "region"),
    ("region form", {"region": "us_central"}, "region", {"region": "us_central"}, "region"),
    (
        "min > max",
        {"min_replica_count": 3, "max_replica_count": 2},
        "min_replica_count",
        {"min_replicas": 3, "max_replicas": 2},
        "min_replicas",
    ),
    (
        "endpoint path",
        {"endpoint_id": f"{PARENT}/endpoints/{ENDPOINT_ID}"},
        "endpoint_id",
        {"endpoint_id": f"{PARENT}/endpoints/{ENDPOINT_ID}", "adopt": {"endpoint": True}},
        "endpoint_id",
    ),
]


def _rule_message(target_fields: dict, field: str) -> str:
    data = example_data("pytorch")
    data["targets"] = [{**data["targets"][0], **target_fields}]
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    (line,) = [line for line in str(caught.value).splitlines() if line.startswith(f"  targets.0.{field}: ")]
    return line.split(": ", 1)[1]


def test_bad_values_are_refused_at_plan_with_the_configs_messages(emulators, endpoint, provider_cli_config, tmp_path):
    """One plan, one deployment per broken value: each is refused before anything reaches Vertex AI,
    once, with the message the rollout config gives for the same value (config/rules.py, config/machines.py)."""
    ws = Workspace(tmp_path / "ws", provider_cli_config, emulators.vertex_url)
    model = f"{PARENT}/models/landcover@1"
    ws.write(
        {
            "eevertex_deployment": {
                f"bad_{i}": deployment(model, str(100 + i), **attrs) for i, (_, attrs, _, _, _) in enumerate(BAD)
            }
        }
    )
    ws.init()
    before = len(emulators.journal())
    output = " ".join(ws.plan_error().split())
    assert len(emulators.journal()) == before
    for name, _, attribute, target_fields, field in BAD:
        message = _rule_message(target_fields, field)
        assert output.count(f"Error: {attribute}: {' '.join(message.split())}") == 1, (name, message)
    assert "Provider produced inconsistent result" not in output


def test_an_empty_machine_type_never_reaches_vertex_ai(emulators, endpoint, provider_cli_config, tmp_path):
    """The finding: `machine_type = ""` passed plan, Vertex AI deployed n1-standard-2, and the apply
    ended in "Provider produced inconsistent result"; now the plan stops and nothing is deployed."""
    ws = Workspace(tmp_path / "ws", provider_cli_config, emulators.vertex_url)
    ws.write(
        {
            "eevertex_model": {"m": model_config(model_id="empty-machine")},
            "eevertex_deployment": {"d": deployment("${eevertex_model.m.id}", "301", machine_type="")},
        }
    )
    ws.init()
    result = ws.tf("apply", "-input=false", "-no-color", "-auto-approve", ok=False)
    assert not result.ok
    assert f"machine_type: {machines.machine_type('')}".split(";")[0] in " ".join(result.stderr.split())
    status, body = http_json(f"{emulators.vertex_url}/v1/{endpoint}")
    assert "301" not in {d["id"] for d in body.get("deployedModels", [])}


def test_timeouts_blocks(emulators, endpoint, provider_cli_config, tmp_path):
    """`timeouts { create, update, delete }`: validated at plan, kept in state (no diff), and
    bounding the whole call: a create given 1 microsecond fails saying which timeout ran out."""
    ws = Workspace(tmp_path / "ws", provider_cli_config, emulators.vertex_url)
    ws.write({"eevertex_model": {"m": {**model_config(model_id="timeouts"), "timeouts": {"create": "soon"}}}})
    ws.init()
    assert "timeouts.create: 'soon'; allowed: a duration such as '30m', '1h30m' or '90s'" in " ".join(
        ws.plan_error().split()
    )
    ws.write({"eevertex_model": {"m": {**model_config(model_id="timeouts"), "timeouts": {"create": "1us"}}}})
    result = ws.tf("apply", "-input=false", "-no-color", "-auto-approve", ok=False)
    assert "timeouts.create ran out of time" in " ".join(result.stderr.split())
    timeouts = {"create": "30m", "update": "10m", "delete": "1h30m"}
    ws.write(
        {
            "eevertex_model": {"m": {**model_config(model_id="timeouts"), "timeouts": timeouts}},
            "eevertex_deployment": {"d": {**deployment("${eevertex_model.m.id}", "302"), "timeouts": timeouts}},
            "eevertex_traffic_split": {
                "t": {
                    "project": PROJECT,
                    "region": REGION,
                    "endpoint_id": ENDPOINT_ID,
                    "split": {"302": 100},
                    "timeouts": timeouts,
                    "depends_on": ["eevertex_deployment.d"],
                }
            },
        }
    )
    ws.apply()
    assert changes(ws.plan()) == {}
    assert ws.state("eevertex_deployment.d")["timeouts"] == timeouts
    ws.destroy()


def test_settings_from_the_environment(emulators, endpoint, provider_cli_config, tmp_path):
    """An empty provider block, as the synthesized stacks have it: EEVERTEX_API_ENDPOINT and
    EEVERTEX_CREDENTIALS point it at the emulator; a bad value is named by its variable."""
    ws = Workspace(tmp_path / "ws", provider_cli_config, emulators.vertex_url)
    ws.write({"eevertex_model": {"m": model_config(model_id="from-env")}}, provider={})
    ws.init()
    env = {"EEVERTEX_API_ENDPOINT": emulators.vertex_url, "EEVERTEX_CREDENTIALS": "none"}
    ws.tf("apply", "-input=false", "-no-color", "-auto-approve", env=env)
    status, body = http_json(f"{emulators.vertex_url}/v1/{PARENT}/models/from-env")
    assert status == 200, body
    assert ws.tf("plan", "-input=false", "-no-color", "-detailed-exitcode", env=env).returncode == 0
    bad = ws.tf("plan", "-input=false", "-no-color", env={**env, "EEVERTEX_CREDENTIALS": "/no/such/key.json"}, ok=False)
    assert "$EEVERTEX_CREDENTIALS = '/no/such/key.json' is not allowed" in bad.stderr
    remote = ws.tf(
        "plan", "-input=false", "-no-color", env={**env, "EEVERTEX_API_ENDPOINT": "https://example.com"}, ok=False
    )
    assert '$EEVERTEX_CREDENTIALS = "none" needs a loopback api_endpoint' in remote.stderr
    ws.tf("apply", "-destroy", "-input=false", "-no-color", "-auto-approve", env=env)


def test_data_sources(emulators, endpoint, provider_cli_config, tmp_path):
    """`eevertex_model_version` by alias, `eevertex_traffic_split` of the endpoint as it is now."""
    ws = Workspace(tmp_path / "ws", provider_cli_config, emulators.vertex_url)
    ws.write(
        {
            "eevertex_model": {"m": model_config(model_id="looked-up")},
            "eevertex_deployment": {"d": deployment("${eevertex_model.m.id}", "303")},
        }
    )
    ws.init()
    ws.apply()
    ws.write(
        {
            "eevertex_model": {"m": model_config(model_id="looked-up")},
            "eevertex_deployment": {"d": deployment("${eevertex_model.m.id}", "303")},
        },
        data={
            "eevertex_model_version": {
                "v": {
                    "project": PROJECT,
                    "region": REGION,
                    "model_id": "looked-up",
                    "version": model_config()["version_alias"],
                }
            },
            "eevertex_traffic_split": {"now": {"project": PROJECT, "region": REGION, "endpoint_id": ENDPOINT_ID}},
        },
        outputs={"version": "${data.eevertex_model_version.v}", "split": "${data.eevertex_traffic_split.now}"},
    )
    ws.apply()
    outputs = json.loads(ws.tf("output", "-json").stdout)
    version, split = outputs["version"]["value"], outputs["split"]["value"]
    assert version["id"] == f"{PARENT}/models/looked-up@1" and version["version_id"] == "1"
    assert version["version_aliases"] == [model_config()["version_alias"], "default"]
    assert version["deployed_models"] == [f"{endpoint}/deployedModels/303"]
    assert split["split"]["303"] == 100
    assert split["deployed_models"]["303"] == f"{PARENT}/models/looked-up@1"
    ws.write(
        {
            "eevertex_model": {"m": model_config(model_id="looked-up")},
            "eevertex_deployment": {"d": deployment("${eevertex_model.m.id}", "303")},
        }
    )
    ws.destroy()
