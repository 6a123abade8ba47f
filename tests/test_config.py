"""Every validation rule of the rollout config, one bad value at a time."""

from __future__ import annotations

import copy

import pytest
from conftest import ROOT, example_data

from config.checks import check_bucket_name
from config.machines import ACCELERATOR_TYPES
from config.rollout import ConfigError, load_config, parse_config


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
    (
        "pytorch",
        "target",
        "min_replicas",
        5,
        "targets.0.min_replicas",
        "5 is greater than the maximum, 2; allowed: 1 <= minimum <= maximum",
    ),
    ("pytorch", "target", "region", "mars-north1", "targets.0.region", "allowed: africa-south1, asia-east1"),
    ("pytorch", "target", "min_replicas", 0, "targets.0.min_replicas", "allowed: a whole number from 1 to 1000"),
    ("pytorch", "target", "max_replicas", 2.5, "targets.0.max_replicas", "allowed: a whole number from 1 to 1000"),
    ("pytorch", "target", "max_replicas", "many", "targets.0.max_replicas", "allowed: a whole number from 1 to 1000"),
    (
        "pytorch",
        "target",
        "accelerator_count",
        17,
        "targets.0.accelerator_count",
        "allowed: a whole number from 0 to 16",
    ),
    ("pytorch", "target", "traffic_percent", 101, "targets.0.traffic_percent", "allowed: a whole number from 0 to 100"),
    ("pytorch", "target", "verify_promotion", "yes", "targets.0.verify_promotion", "allowed: true or false"),
    ("pytorch", "target", "traffic_percent", -1, "targets.0.traffic_percent", "allowed: a whole number from 0 to 100"),
    (
        "pytorch",
        "target",
        "traffic_percent",
        12.5,
        "targets.0.traffic_percent",
        "allowed: a whole number from 0 to 100",
    ),
    (
        "pytorch",
        "target",
        "serving_image",
        "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest",
        "(top level)",
        "targets.0.serving_image 'us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest' is not a "
        "Vertex AI prebuilt pytorch image",
    ),
    (
        "pytorch",
        "target",
        "accelerator_count",
        2,
        "targets.0.accelerator_count",
        "allowed: accelerator_count = 0, or an accelerator_type (NVIDIA_TESLA_P100",
    ),
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
        "pytorch",
        "target",
        "kms_key",
        "projects/p/locations/europe-west4/keyRings/r/cryptoKeys/k",
        "targets.0",
        "same region",
    ),
    ("pytorch", "target", "predict_members", ["alice@example.com"], "targets.0.predict_members", "'user:<email>'"),
    ("pytorch", "target", "predict_scope", "folder", "targets.0.predict_scope", "'endpoint' or 'project'"),
    ("pytorch", "target", "name", "Dev", "targets.0.name", "a-z, 0-9 and '-'"),
    ("pytorch", "target", "colour", "blue", "targets.0.colour", "unknown field"),
    ("pytorch", "target", "spot", 1, "targets.0.spot", "true or false"),
    ("pytorch", "target", "required_replicas", 3, "targets.0.required_replicas", "allowed: 1 to 1, or unset (all 1)"),
    (
        "pytorch",
        "target",
        "autoscaling",
        {"cpu_utilization": 0},
        "targets.0.autoscaling.cpu_utilization",
        "allowed: a whole number from 1 to 100 (percent; Vertex AI's default 60)",
    ),
    (
        "pytorch",
        "target",
        "autoscaling",
        {"requests_per_minute": 2.5},
        "targets.0.autoscaling.requests_per_minute",
        "allowed: a whole number of requests per minute per replica",
    ),
    (
        "pytorch",
        "target",
        "autoscaling",
        {"accelerator_duty_cycle": 50},
        "targets.0.autoscaling.accelerator_duty_cycle",
        "allowed: unset, or an accelerator_type with accelerator_count >= 1",
    ),
    ("pytorch", "target", "container_logging", "no", "targets.0.container_logging", "true or false"),
    ("pytorch", "target", "access_logging", "yes", "targets.0.access_logging", "true or false"),
    ("pytorch", "target", "env", {"1X": "1"}, "targets.0.env", "not starting with a digit"),
    (
        "pytorch",
        "target",
        "dedicated_endpoint_enabled",
        True,
        "targets.0.dedicated_endpoint_enabled",
        "Endpoint.dedicated_endpoint_enabled; https://cloud.google.com/vertex-ai/docs/predictions/choose-endpoint-type",
    ),
    (
        "pytorch",
        "target",
        "private_service_connect_config",
        {"enable_private_service_connect": True},
        "targets.0.private_service_connect_config",
        "allowed: leave it out (the stacks create a shared public endpoint)",
    ),
    ("pytorch", "target", "network", "projects/1/global/networks/v", "targets.0.network", "Endpoint.network"),
    (
        "pytorch",
        "model",
        "max_payload_bytes",
        1_500_001,
        "model.max_payload_bytes",
        "over the 1.5 MB a shared public Vertex AI endpoint accepts (https://cloud.google.com/vertex-ai/docs/predictions/"
        "choose-endpoint-type",
    ),
    ("pytorch", "model", "payload_format", "GRPC_TF_TENSORS", "model", "allowed: ND_ARRAYS, RAW_JSON"),
    ("pytorch", "model", "payload_format", "SERIALIZED_TF_TENSORS", "model", "allowed: ND_ARRAYS, RAW_JSON"),
    ("pytorch", "model", "payload_format", "PICKLE", "model.payload_format", "'SERIALIZED_TF_TENSORS'"),
    ("pytorch", "model", "framework", "jax", "model.framework", "'tensorflow' or 'pytorch'"),
    ("tensorflow", "model", "grpc", False, "model", "set grpc = true"),
    ("tensorflow", "model", "payload_format", "ND_ARRAYS", "model", "allowed: SERIALIZED_TF_TENSORS"),
    (
        "pytorch",
        "model",
        "serving_image",
        "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest",
        "model",
        "allowed: unset (our own image, built from serving/)",
    ),
    ("pytorch", "model", "serving_image", "nginx:latest", "model", "or any image with custom_image = true"),
    ("pytorch", "model", "predict_route", "/predict", "model", "only with custom_image = true"),
    ("pytorch", "model", "env", {"AIP_HTTP_PORT": "1"}, "model.env", "reserved by Vertex AI"),
    ("pytorch", "model", "env", {"1BAD": "1"}, "model.env", "not starting with a digit"),
    ("pytorch", "model", "name", "LandCover", "model.name", "a-z, 0-9 and '-'"),
    ("pytorch", "model", "source", "not a module", "model.source", "'builtin:<example>'"),
    ("pytorch", "model", "artifact_dir", _DELETE, "model.artifact_dir", "Field required"),
    ("pytorch", "model", "tile_size", 0, "model.tile_size", "allowed: a whole number from 1 to 2048"),
    ("pytorch", "model", "tile_size", 4096, "model.tile_size", "allowed: a whole number from 1 to 2048"),
    ("pytorch", "model", "version_label", "next version", "model.version_label", "allowed: 1-63 of A-Z"),
    ("pytorch", "model", "projection", "WGS84", "model.projection", "allowed: an EPSG code 'EPSG:<number>'"),
    ("pytorch", "model", "projection", "epsg:4326", "model.projection", "allowed: an EPSG code 'EPSG:<number>'"),
    ("pytorch", "model", "projection", 4326, "model.projection", "allowed: a string"),
    ("pytorch", "model", "scale", 0, "model.scale", "allowed: metres per pixel, a number above 0"),
    ("pytorch", "model", "scale", -10.0, "model.scale", "allowed: metres per pixel, a number above 0"),
    ("pytorch", "model", "scale", "30", "model.scale", "allowed: metres per pixel, a number above 0"),
    ("pytorch", "model", "scale", True, "model.scale", "allowed: metres per pixel, a number above 0"),
    ("pytorch", "model", "scale", float("inf"), "model.scale", "allowed: metres per pixel, a number above 0"),
    ("pytorch", "model", "scale", _DELETE, "model.scale", "projection and scale go together"),
    ("pytorch", "model", "projection", _DELETE, "model.projection", "allowed: both, e.g. projection = 'EPSG:32610'"),
]


@pytest.mark.parametrize(
    "example,section,key,value,where,allowed",
    BAD_VALUES,
    ids=[f"{s}.{k}={'(deleted)' if v is _DELETE else str(v)[:24]}" for _, s, k, v, _, _ in BAD_VALUES],
)
def test_bad_value_names_field_and_allowed_values(example, section, key, value, where, allowed):
    message = error_for(with_change(example, section, key, value))
    assert f"  {where}" in message
    assert allowed in message


def test_projection_and_scale_are_optional_with_a_warning():
    assert load_config(ROOT / "rollout.toml").warnings == []
    data = with_change("pytorch", "model", "projection", _DELETE)
    del data["model"]["scale"]
    config = parse_config(data)
    assert config.model.projection is None and config.model.scale is None
    (warning,) = config.warnings
    assert warning.startswith(
        "model.projection and model.scale are unset: Earth Engine then feeds the model at "
        "the first input band's default projection"
    )
    assert "WGS84 at 1 degree" in warning and "ImageCollection.median()" in warning
    config = parse_config(with_change("pytorch", "model", "scale", 10))
    assert config.model.scale == 10.0 and config.warnings == []


GPU_TORCH = "us-docker.pkg.dev/vertex-ai/prediction/pytorch-gpu.2-4:latest"
CPU_TORCH = "us-docker.pkg.dev/vertex-ai/prediction/pytorch-cpu.2-4:latest"


def gpu_prod(**model) -> dict:
    """The PyTorch example with prod on n1-standard-8 + one T4."""
    data = with_change("pytorch", "target", "accelerator_type", "NVIDIA_TESLA_T4", index=1)
    data["targets"][1].update(accelerator_count=1, machine_type="n1-standard-8")
    data["model"].pop("serving_image", None)
    data["model"].update(model)
    return data


@pytest.fixture
def before_the_prebuilt_images_end(monkeypatch):
    monkeypatch.setenv("EEV_TODAY", "2026-12-01")


def test_images_default_to_ours_for_framework_and_accelerator():
    config = parse_config(gpu_prod())
    assert [config.image_kind(t) for t in config.targets] == ["own", "own"]
    assert [config.own_image(t).name for t in config.targets] == ["ee-serving-pytorch-cpu", "ee-serving-pytorch-gpu"]
    assert [config.serving_image(t) for t in config.targets] == [None, None]
    config = parse_config(gpu_prod(framework="tensorflow", payload_format="SERIALIZED_TF_TENSORS"))
    assert [config.own_image(t).name for t in config.targets] == [
        "ee-serving-tensorflow-cpu",
        "ee-serving-tensorflow-gpu",
    ]


def test_a_target_overrides_the_image(before_the_prebuilt_images_end):
    data = gpu_prod()
    data["targets"][1]["serving_image"] = "europe-docker.pkg.dev/vertex-ai/prediction/pytorch-gpu.2-3:latest"
    config = parse_config(data)
    assert config.serving_image(config.targets[1]).startswith("europe-docker.pkg.dev")
    assert [config.image_kind(t) for t in config.targets] == ["own", "prebuilt"]


def test_gpu_target_with_a_cpu_image_is_an_error(before_the_prebuilt_images_end):
    message = error_for(gpu_prod(serving_image=CPU_TORCH))
    assert (
        "model.serving_image: '" + CPU_TORCH + "' is a CPU image but targets.1 has accelerator_type NVIDIA_TESLA_T4"
        in message
    )
    assert "allowed: a 'pytorch-gpu.' prebuilt image, or leave serving_image unset for our own GPU image" in message
    data = gpu_prod()
    data["targets"][1]["serving_image"] = CPU_TORCH
    assert "targets.1.serving_image: '" + CPU_TORCH + "' is a CPU image" in error_for(data)


def test_cpu_target_with_a_gpu_image_is_an_error(before_the_prebuilt_images_end):
    data = gpu_prod()
    data["targets"][0]["serving_image"] = GPU_TORCH
    message = error_for(data)
    assert f"targets.0.serving_image: '{GPU_TORCH}' is a GPU image but targets.0 has no accelerator" in message
    assert "allowed: a 'pytorch-cpu.' prebuilt image, or leave serving_image unset for our own CPU image" in message


def test_previous_image_must_fit_the_canary_target(before_the_prebuilt_images_end):
    data = gpu_prod(previous={"sha256": "ab" * 32, "serving_image": CPU_TORCH})
    data["targets"][1]["traffic_percent"] = 10
    assert "model.previous.serving_image: '" + CPU_TORCH + "' is a CPU image but targets.1" in error_for(data)


def test_a_tpu_target_needs_a_custom_image():
    data = with_change("pytorch", "target", "accelerator_type", "TPU_V5_LITEPOD")
    data["targets"][0]["accelerator_count"] = 1
    data["targets"][0]["machine_type"] = "ct5lp-hightpu-1t"  # the machine TPU v5e comes with
    assert "neither our images nor Vertex AI's prebuilt pytorch images serve on TPU_V5_LITEPOD" in error_for(data)


def test_a_region_newer_than_the_list_needs_the_switch():
    data = with_change("pytorch", "target", "region", "europe-west15")
    assert "targets.0.region: 'europe-west15' is not a Vertex AI prediction region" in error_for(data)
    data["targets"][0]["allow_unlisted_region"] = True
    assert parse_config(data).targets[0].region == "europe-west15"


def test_region_list_is_gclouds():
    """config/regions.py is gcloud's list of online-prediction regions, where gcloud is installed."""
    import shutil
    import subprocess

    from config.regions import PREDICTION_REGIONS

    gcloud = shutil.which("gcloud")
    if not gcloud:
        pytest.skip("gcloud is not installed")
    root = subprocess.run(
        [gcloud, "info", "--format=value(installation.sdk_root)"], capture_output=True, text=True, check=True
    ).stdout.strip()
    constants = (ROOT.__class__(root) / "lib/googlecloudsdk/command_lib/ai/constants.py").read_text()
    listed = constants.split("SUPPORTED_OP_REGIONS = (", 1)[1].split(")", 1)[0]
    assert tuple(r.strip().strip("'\"") for r in listed.split(",") if r.strip()) == PREDICTION_REGIONS


def test_the_prebuilt_releases_are_the_sdks():
    """config/images.py's prebuilt releases are images the SDK lists (in us-, europe- and asia-)."""
    from google.cloud.aiplatform.constants import prediction

    from config.images import PREBUILT

    known = set(prediction.TF_CONTAINER_URIS) | set(prediction.PYTORCH_CONTAINER_URIS)
    for family, version in PREBUILT:
        for region in ("us", "europe", "asia"):
            for device in ("cpu", "gpu"):
                assert f"{region}-docker.pkg.dev/vertex-ai/prediction/{family}-{device}.{version}:latest" in known


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
    assert "access_log_bucket is the artifact bucket" in error_for(data) and "allowed: another bucket" in error_for(
        data
    )


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
    config = parse_config(data)
    assert config.model.predict_route == "/predict"
    assert config.serving_image(config.targets[0]) == "europe-docker.pkg.dev/acme/serving/torch:1.2"


def test_custom_images_per_target():
    data = with_change("pytorch", "model", "custom_image", True)
    data["model"].pop("serving_image", None)
    assert "targets.0.serving_image: custom_image = true needs your container's URI" in error_for(data)
    for index, target in enumerate(data["targets"]):
        target["serving_image"] = f"europe-docker.pkg.dev/acme/serving/torch:{index}"
    config = parse_config(data)
    assert config.serving_image(config.targets[1]) == "europe-docker.pkg.dev/acme/serving/torch:1"


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


def test_deploy_options_default_to_vertex_ais():
    target = load_config(ROOT / "rollout.toml").targets[0]
    assert (target.spot, target.required_replicas, target.container_logging, target.access_logging, target.env) == (
        False,
        None,
        True,
        False,
        {},
    )
    assert target.autoscaling.targets(accelerators=False) == {
        "autoscaling_cpu_utilization_target": 60,
        "autoscaling_accelerator_duty_cycle_target": None,
        "autoscaling_request_count_per_minute_target": None,
    }
    assert target.autoscaling.targets(accelerators=True)["autoscaling_accelerator_duty_cycle_target"] == 60


def test_duty_cycle_target_with_an_accelerator():
    data = gpu_prod()
    data["targets"][1]["autoscaling"] = {
        "accelerator_duty_cycle": 80,
        "cpu_utilization": 70,
        "requests_per_minute": 900,
    }
    autoscaling = parse_config(data).targets[1].autoscaling
    assert autoscaling.targets(accelerators=True) == {
        "autoscaling_cpu_utilization_target": 70,
        "autoscaling_accelerator_duty_cycle_target": 80,
        "autoscaling_request_count_per_minute_target": 900,
    }
