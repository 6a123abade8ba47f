"""Endpoint IDs valid by Vertex AI's rule (CreateEndpointRequest.endpoint_id): derived ones
and pinned ones (`targets.endpoint_id`)."""

from __future__ import annotations

import copy
import json
import re

import pytest
from conftest import ROOT, config_in, example_data, synth

from config.rollout import ConfigError, parse_config
from config.rules import NEW_ENDPOINT_ID
from stacks import naming
from stacks.environment import StackLayout
from stacks.wiring import target_stacks

# The API's rule, written out again here rather than imported, so a wrong regex in the
# code cannot pass its own test.
NUMERIC = re.compile(r"[1-9][0-9]{0,8}")
NAMED = re.compile(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?")
CONFIGS = [ROOT / "rollout.toml", *sorted((ROOT / "examples").glob("*.toml"))]


def valid(endpoint_id: str) -> bool:
    return bool(NUMERIC.fullmatch(endpoint_id) or NAMED.fullmatch(endpoint_id))


def test_derived_endpoint_ids_have_at_most_9_digits():
    for index in range(2000):
        endpoint_id = naming.endpoint_id(f"project-{index}", "us-central1", f"model-{index % 7}")
        assert valid(endpoint_id) and len(endpoint_id) == 9, endpoint_id
    assert naming.endpoint_id("acme-geo-dev", "us-central1", "m") == naming.endpoint_id(
        "acme-geo-dev", "us-central1", "m"
    )


@pytest.mark.parametrize("config_path", CONFIGS, ids=lambda p: p.name)
def test_every_synthesized_endpoint_id_is_valid(config_path, tmp_path):
    """Every endpoint name anywhere in the synthesized stacks of the checked-in configs."""
    import tomllib

    from build_hooks.build import build

    config = config_in(tmp_path, tomllib.loads(config_path.read_text()))
    outdir = synth(config, build(config, log=lambda *_: None), tmp_path / "cdktf.out", tmp_path / "state")
    text = "\n".join(p.read_text() for p in sorted((outdir / "stacks").glob("*/cdk.tf.json")))
    found = set(re.findall(r"/endpoints/([^/\"'@:\\]+)", text))
    for stack in (outdir / "stacks").glob("*-endpoint/cdk.tf.json"):
        for resource in json.loads(stack.read_text())["resource"].get("google_vertex_ai_endpoint", {}).values():
            found.add(resource["name"])
    assert len(found) == len(config.targets), found
    assert all(valid(e) for e in found), found


def _pinned(endpoint_id) -> dict:
    data = copy.deepcopy(example_data("pytorch"))
    data["targets"][0]["endpoint_id"] = endpoint_id
    return data


@pytest.mark.parametrize("bad", ["1234567890", "0123", "My-endpoint", "ends-with-", "-a", "a" * 64, "12a", "", "a_b"])
def test_pinned_endpoint_id_refused_unless_valid(bad):
    with pytest.raises(ConfigError) as caught:
        parse_config(_pinned(bad))
    message = str(caught.value)
    assert "targets.0.endpoint_id" in message and "allowed: a number of at most 9 digits" in message
    if bad == "1234567890":
        assert "over 9 digits" in message


@pytest.mark.parametrize("good", ["123456789", "1", "existing-endpoint", "a" * 63])
def test_pinned_endpoint_id_accepted(good):
    assert parse_config(_pinned(good)).targets[0].endpoint_id == good
    assert NEW_ENDPOINT_ID.fullmatch(good) and valid(good)


def test_an_existing_endpoints_generated_id_is_adopted():
    """`gcloud ai endpoints create` (no --endpoint-id) prints a 19-digit ID: accepted for an
    endpoint that exists (adopt.endpoint), with one error line naming the way otherwise."""
    generated = "4506198451624263680"
    with pytest.raises(ConfigError) as caught:
        parse_config(_pinned(generated))
    lines = str(caught.value).splitlines()[1:]
    assert len(lines) == 1 and lines[0].startswith("  targets.0.endpoint_id: '4506198451624263680'")
    assert "adopt it with [targets.adopt] endpoint = true" in lines[0]
    data = _pinned(generated)
    data["targets"][0]["adopt"] = {"endpoint": True}
    assert parse_config(data).targets[0].endpoint_id == generated
    data["targets"][0]["endpoint_id"] = "12345678901234567890"  # 20 digits: no ID Vertex AI gives
    assert "targets.0.endpoint_id: '12345678901234567890' is not a Vertex AI endpoint ID" in str(
        pytest.raises(ConfigError, parse_config, data).value
    )


def test_pinned_endpoint_id_wired_into_the_stacks(torch_build, tmp_path):
    _, manifest = torch_build
    config = config_in(tmp_path, _pinned("987654321"))
    layout = StackLayout(outdir=tmp_path / "out", state_dir=tmp_path / "state")
    dev, prod = (target_stacks(config, manifest, t, layout) for t in config.targets)
    assert dev.endpoint.endpoint_id == "987654321"
    assert all(d.endpoint_id == "987654321" for d in dev.deployment.deployments)
    assert dev.deployment.endpoint_id == "987654321"
    # The other target keeps its derived ID.
    assert prod.endpoint.endpoint_id == naming.endpoint_id("acme-geo-prod", "europe-west4", "landcover-torch")


def test_a_single_bad_target_gives_one_line():
    """pydantic also reports the targets list as too short once its only target failed; that
    line said nothing the target's own error does not."""
    data = _pinned("4506198451624263680")
    data["targets"] = data["targets"][:1]
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert "Tuple should have at least 1 item" not in str(caught.value)
    assert len(str(caught.value).splitlines()) == 2
