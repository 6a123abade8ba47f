"""Every validation rule of the rollout config, one bad value at a time."""

from __future__ import annotations

import copy

import pytest

from conftest import ROOT, example_data
from config.rollout import ACCELERATOR_TYPES, ConfigError, check_bucket_name, load_config, parse_config


def with_change(example: str, section: str, key: str, value, index: int = 0) -> dict:
    data = copy.deepcopy(example_data(example))
    place = data["model"] if section == "model" else data["targets"][index]
    if value is _DELETE:
        del place[key]
    else:
        place[key] = value
    return data


_DELETE = object()


def error_for(data: dict) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    return str(caught.value)


def test_checked_in_examples_are_valid():
    torch = load_config(ROOT / "rollout.toml")
    tf = load_config(ROOT / "examples/tensorflow.toml")
    assert [t.name for t in torch.targets] == ["dev", "prod"]
    assert tf.model.grpc_ports == [8500]
    assert torch.model.grpc_ports == []


BAD_VALUES = [
    # (example, section, key, value, fragment of the location, fragment of the allowed values)
    ("pytorch", "target", "region", "us_central", "targets.0.region", "'us-central1'"),
    ("pytorch", "target", "region", "uscentral1", "targets.0.region", "'<area>-<direction><n>'"),
    ("pytorch", "target", "min_replicas", 5, "targets.0", "1 <= min_replicas <= max_replicas"),
    ("pytorch", "target", "min_replicas", 0, "targets.0.min_replicas", "greater than or equal to 1"),
    ("pytorch", "target", "traffic_percent", 101, "targets.0.traffic_percent", "less than or equal to 100"),
    ("pytorch", "target", "traffic_percent", -1, "targets.0.traffic_percent", "greater than or equal to 0"),
    ("pytorch", "target", "accelerator_count", 2, "targets.0", "allowed accelerator_type: NVIDIA_TESLA_P100"),
    ("pytorch", "target", "accelerator_type", "NVIDIA_GTX_1080", "targets.0.accelerator_type", "NVIDIA_TESLA_T4"),
    ("pytorch", "target", "bucket", "My_Bucket", "targets.0.bucket", "3-63 characters of a-z"),
    ("pytorch", "target", "bucket", "ab", "targets.0.bucket", "3-63 characters"),
    ("pytorch", "target", "bucket", "google-models", "targets.0.bucket", "contains 'google'"),
    ("pytorch", "target", "bucket", "goog-models", "targets.0.bucket", "starts with 'goog'"),
    ("pytorch", "target", "bucket", "192.168.1.1", "targets.0.bucket", "IP address"),
    ("pytorch", "target", "bucket", "a" * 64, "targets.0.bucket", "3-63 characters"),
    ("pytorch", "target", "bucket", "models..v1", "targets.0.bucket", "'..'"),
    ("pytorch", "target", "project", "Acme", "targets.0.project", "6-30 characters"),
    ("pytorch", "target", "machine_type", "big-machine", "targets.0.machine_type", "'n1-standard-4'"),
    ("pytorch", "target", "service_account", "me@gmail.com", "targets.0.service_account", "iam.gserviceaccount.com"),
    ("pytorch", "target", "labels", {"Env": "dev"}, "targets.0.labels", "starting with a letter"),
    ("pytorch", "target", "labels", {"env": "Dev!"}, "targets.0.labels", "a-z, 0-9, '_', '-'"),
    ("pytorch", "target", "kms_key", "my-key", "targets.0.kms_key", "projects/<p>/locations/<region>"),
    (
        "pytorch", "target", "kms_key",
        "projects/p/locations/europe-west4/keyRings/r/cryptoKeys/k", "targets.0", "same region",
    ),
    ("pytorch", "target", "predict_members", ["alice@example.com"], "targets.0.predict_members", "'user:<email>'"),
    ("pytorch", "target", "predict_scope", "folder", "targets.0.predict_scope", "'endpoint' or 'project'"),
    ("pytorch", "target", "name", "Dev", "targets.0.name", "a-z, 0-9 and '-'"),
    ("pytorch", "target", "colour", "blue", "targets.0.colour", "unknown field"),
    ("pytorch", "model", "payload_format", "GRPC_TF_TENSORS", "model", "allowed: ND_ARRAYS, RAW_JSON"),
    ("pytorch", "model", "payload_format", "SERIALIZED_TF_TENSORS", "model", "allowed: ND_ARRAYS, RAW_JSON"),
    ("pytorch", "model", "payload_format", "PICKLE", "model.payload_format", "'SERIALIZED_TF_TENSORS'"),
    ("pytorch", "model", "framework", "jax", "model.framework", "'tensorflow' or 'pytorch'"),
    ("tensorflow", "model", "grpc", False, "model", "set grpc = true"),
    ("tensorflow", "model", "payload_format", "ND_ARRAYS", "model", "allowed: SERIALIZED_TF_TENSORS"),
    ("pytorch", "model", "serving_image", "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest",
     "model", "pytorch-<cpu|gpu>"),
    ("pytorch", "model", "serving_image", "nginx:latest", "model", "or set custom_image = true"),
    ("pytorch", "model", "predict_route", "/predict", "model", "only with custom_image = true"),
    ("pytorch", "model", "env", {"AIP_HTTP_PORT": "1"}, "model.env", "reserved by Vertex AI"),
    ("pytorch", "model", "env", {"1BAD": "1"}, "model.env", "not starting with a digit"),
    ("pytorch", "model", "name", "LandCover", "model.name", "a-z, 0-9 and '-'"),
    ("pytorch", "model", "source", "not a module", "model.source", "'builtin:<example>'"),
    ("pytorch", "model", "artifact_dir", _DELETE, "model.artifact_dir", "Field required"),
    ("pytorch", "model", "tile_size", 0, "model.tile_size", "greater than or equal to 1"),
]


@pytest.mark.parametrize(
    "example,section,key,value,where,allowed",
    BAD_VALUES,
    ids=[f"{s}.{k}={str(v)[:24]}" for _, s, k, v, _, _ in BAD_VALUES],
)
def test_bad_value_names_field_and_allowed_values(example, section, key, value, where, allowed):
    message = error_for(with_change(example, section, key, value))
    assert f"  {where}" in message
    assert allowed in message


def test_gpu_accelerator_needs_gpu_image():
    data = with_change("pytorch", "target", "accelerator_type", "NVIDIA_TESLA_T4", index=1)
    data["targets"][1]["accelerator_count"] = 1
    message = error_for(data)
    assert "targets.1.accelerator_type" in message and "'-gpu.' prebuilt image" in message
    data["model"]["serving_image"] = "us-docker.pkg.dev/vertex-ai/prediction/pytorch-gpu.2-4:latest"
    assert parse_config(data).targets[1].accelerator_count == 1


def test_target_names_and_buckets_are_unique():
    data = example_data("pytorch")
    data["targets"][1]["name"] = "dev"
    assert "targets.1.name: 'dev' is used twice" in error_for(data)
    data = example_data("pytorch")
    data["targets"][1]["bucket"] = data["targets"][0]["bucket"]
    assert "targets.1.bucket" in error_for(data)


def test_access_log_bucket_is_another_valid_bucket():
    data = with_change("pytorch", "target", "access_log_bucket", "Logs!")
    assert "targets.0.access_log_bucket" in error_for(data)
    data = with_change("pytorch", "target", "access_log_bucket", data["targets"][0]["bucket"])
    assert "access_log_bucket is the artifact bucket" in error_for(data) and "allowed: another bucket" in error_for(data)


def test_every_error_is_reported_at_once():
    data = with_change("pytorch", "target", "region", "nowhere")
    data["targets"][1]["traffic_percent"] = 500
    message = error_for(data)
    assert "targets.0.region" in message and "targets.1.traffic_percent" in message


def test_no_targets_is_an_error():
    data = example_data("pytorch")
    data["targets"] = []
    assert "targets: Tuple should have at least 1 item" in error_for(data)


def test_custom_image_allows_routes():
    data = with_change("pytorch", "model", "serving_image", "europe-docker.pkg.dev/acme/serving/torch:1.2")
    data["model"].update(custom_image=True, predict_route="/predict", health_route="/health")
    model = parse_config(data).model
    assert (model.predict_route, model.image_device) == ("/predict", None)


def test_accelerator_list_matches_vertex_ai():
    from google.cloud.aiplatform_v1.types import AcceleratorType

    assert set(ACCELERATOR_TYPES) <= {a.name for a in AcceleratorType}


@pytest.mark.parametrize("name", ["models", "acme-geo-dev-ee-models", "a.b-c_d", "x1y"])
def test_valid_bucket_names(name):
    assert check_bucket_name(name) == name


def test_unreadable_config(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[model\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken)
