"""Broken rollout configs, as a user writes them: each stops `main.py` (what `nox -s synth` and
`cdktf synth` run) before anything is synthesized, with exit 2, the field, the allowed values and
no traceback. Among them the four that Vertex AI refuses but the loader once accepted
(e2-standard-4 + T4, n1-standard-8 + A100, 3 x T4, `user:alice`), strings and booleans where a
number belongs, our own labels, and their neighbours.
"""

from __future__ import annotations

import copy
import json
import tomllib

import pytest
from conftest import ROOT

import main

BASE = tomllib.loads((ROOT / "rollout.toml").read_text())


def toml(data: dict) -> str:
    """A TOML writer for what configs hold (tables, arrays of tables, scalars, lists, inline tables)."""

    def value(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return "{" + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + "}"

    def table(header: str, body: dict) -> list[str]:
        lines = [header] if header else []
        lines += [
            f"{json.dumps(k)} = {value(v)}"
            for k, v in body.items()
            if not isinstance(v, dict) or k in ("env", "labels", "input_shapes")
        ]
        for k, v in body.items():
            if isinstance(v, dict) and k not in ("env", "labels", "input_shapes"):
                lines += table(f"[{header.strip('[]')}.{k}]", v)
        return lines

    lines = table("[model]", data["model"])
    for target in data["targets"]:
        lines += ["[[targets]]"] + table(
            "", {k: v for k, v in target.items() if not (isinstance(v, dict) and k not in ("labels",))}
        )
        for k, v in target.items():
            if isinstance(v, dict) and k != "labels":
                lines += [f"[targets.{k}]"] + [f"{json.dumps(a)} = {value(b)}" for a, b in v.items()]
    return "\n".join(lines) + "\n"


def target(**changes) -> dict:
    data = copy.deepcopy(BASE)
    data["targets"][0].update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del data["targets"][0][key]
    return data


def model(**changes) -> dict:
    data = copy.deepcopy(BASE)
    data["model"].update(changes)
    return data


SHA = "ab" * 32
VERSION = "projects/acme-geo-dev/locations/us-central1/models/123@1"
GENERATED = "4506198451624263680"

# (id, config, where the error is, a fragment of what it says is allowed)
BROKEN = [
    # machines and accelerators: [compute]
    (
        "e2+T4",
        target(machine_type="e2-standard-4", accelerator_type="NVIDIA_TESLA_T4", accelerator_count=1),
        "targets.0.accelerator_type",
        "E2 machine types take no accelerator",
    ),
    (
        "n1-8+A100",
        target(machine_type="n1-standard-8", accelerator_type="NVIDIA_TESLA_A100", accelerator_count=1),
        "targets.0.accelerator_type",
        "a2-highgpu-1g",
    ),
    (
        "3xT4",
        target(accelerator_type="NVIDIA_TESLA_T4", accelerator_count=3),
        "targets.0.accelerator_count",
        "accelerator_count 1, 2, 4 of NVIDIA_TESLA_T4",
    ),
    (
        "3xV100",
        target(accelerator_type="NVIDIA_TESLA_V100", accelerator_count=3),
        "targets.0.accelerator_count",
        "1, 2, 4, 8",
    ),
    (
        "n1-32+1xV100",
        target(machine_type="n1-standard-32", accelerator_type="NVIDIA_TESLA_V100", accelerator_count=1),
        "targets.0.accelerator_count",
        "at most 12 vCPUs",
    ),
    ("n1+L4", target(accelerator_type="NVIDIA_L4", accelerator_count=1), "targets.0.accelerator_type", "g2-standard-4"),
    (
        "g2 without L4",
        target(machine_type="g2-standard-8"),
        "targets.0.accelerator_type",
        "accelerator_type = 'NVIDIA_L4'",
    ),
    (
        "g2-24+1xL4",
        target(machine_type="g2-standard-24", accelerator_type="NVIDIA_L4", accelerator_count=1),
        "targets.0.accelerator_count",
        "accelerator_count = 2",
    ),
    (
        "a2+T4",
        target(machine_type="a2-highgpu-1g", accelerator_type="NVIDIA_TESLA_T4", accelerator_count=1),
        "targets.0.accelerator_type",
        "accelerator_type = 'NVIDIA_TESLA_A100'",
    ),
    (
        "a2-2g+1xA100",
        target(machine_type="a2-highgpu-2g", accelerator_type="NVIDIA_TESLA_A100", accelerator_count=1),
        "targets.0.accelerator_count",
        "accelerator_count = 2",
    ),
    (
        "T4 x0",
        target(accelerator_type="NVIDIA_TESLA_T4", accelerator_count=0),
        "targets.0.accelerator_count",
        "1, 2, 4",
    ),
    ("count without type", target(accelerator_count=2), "targets.0.accelerator_count", "accelerator_count = 0"),
    ("empty machine", target(machine_type=""), "targets.0.machine_type", "'n1-standard-4'"),
    ("n1-standard-3", target(machine_type="n1-standard-3"), "targets.0.machine_type", "n1-standard-2|4|8|16|32"),
    ("e2-standard-64", target(machine_type="e2-standard-64"), "targets.0.machine_type", "e2-standard-2|4|8|16|32"),
    ("n1-highcpu-2", target(machine_type="n1-highcpu-2"), "targets.0.machine_type", "n1-highcpu-4|8|16|32"),
    ("big-machine", target(machine_type="big-machine"), "targets.0.machine_type", "a2-highgpu-1g"),
    (
        "GTX 1080",
        target(accelerator_type="NVIDIA_GTX_1080", accelerator_count=1),
        "targets.0.accelerator_type",
        "NVIDIA_TESLA_T4",
    ),
    (
        "count '1'",
        target(accelerator_type="NVIDIA_TESLA_T4", accelerator_count="1"),
        "targets.0.accelerator_count",
        "a whole number from 0 to 16",
    ),
    (
        "count true",
        target(accelerator_type="NVIDIA_TESLA_T4", accelerator_count=True),
        "targets.0.accelerator_count",
        "a whole number from 0 to 16",
    ),
    ("count 17", target(accelerator_count=17), "targets.0.accelerator_count", "a whole number from 0 to 16"),
    (
        "n1+TPU_V2",
        target(accelerator_type="TPU_V2", accelerator_count=8),
        "targets.0.accelerator_type",
        "none for prediction",
    ),
    (
        "ct5lp-4t+1",
        target(machine_type="ct5lp-hightpu-4t", accelerator_type="TPU_V5_LITEPOD", accelerator_count=1),
        "targets.0.accelerator_count",
        "accelerator_count = 4",
    ),
    # strict types: no string or bool where a number belongs
    ("tile '128'", model(tile_size="128"), "model.tile_size", "a whole number from 1 to 2048"),
    ("tile true", model(tile_size=True), "model.tile_size", "a whole number from 1 to 2048"),
    ("tile 120.0", model(tile_size=120.0), "model.tile_size", "a whole number from 1 to 2048"),
    ("min '1'", target(min_replicas="1"), "targets.0.min_replicas", "a whole number from 1 to 1000"),
    ("max true", target(max_replicas=True), "targets.0.max_replicas", "a whole number from 1 to 1000"),
    ("traffic '100'", target(traffic_percent="100"), "targets.0.traffic_percent", "a whole number from 0 to 100"),
    ("overlap '0'", model(input_overlap="0"), "model.input_overlap", "a whole number from 0 to 1024"),
    ("payload '1500000'", model(max_payload_bytes="1500000"), "model.max_payload_bytes", "a whole number from 1 to"),
    ("output tile '120'", model(output_tile_size="120"), "model.output_tile_size", "a whole number from 1 to 4096"),
    ("grpc 'false'", model(grpc="false"), "model.grpc", "true or false"),
    ("grpc 1", model(grpc=1), "model.grpc", "true or false"),
    ("custom_image 'yes'", model(custom_image="yes"), "model.custom_image", "true or false"),
    ("allow_unlisted_region 1", target(allow_unlisted_region=1), "targets.0.allow_unlisted_region", "true or false"),
    ("input_shapes '3'", model(input_shapes={"B2": "3"}), "model.input_shapes.B2", "a whole number from 1 to 4096"),
    # replicas: [types] DedicatedResources
    ("min > max", target(min_replicas=5), "targets.0.min_replicas", "1 <= minimum <= maximum"),
    ("min 0", target(min_replicas=0), "targets.0.min_replicas", "a whole number from 1 to 1000"),
    ("max 1001", target(max_replicas=1001), "targets.0.max_replicas", "a whole number from 1 to 1000"),
    # labels: [labels]; our own keys are ours
    (
        "label managed-by",
        target(labels={"managed-by": "me"}),
        "targets.0.labels",
        "key 'managed-by' is set by this tool",
    ),
    ("label ee-model", target(labels={"ee-model": "x"}), "targets.0.labels", "allowed: any other key"),
    ("label rollout-target", target(labels={"rollout-target": "x"}), "targets.0.labels", "allowed: any other key"),
    ("label Env", target(labels={"Env": "dev"}), "targets.0.labels", "starting with a letter"),
    ("label value Dev!", target(labels={"env": "Dev!"}), "targets.0.labels", "0-63 of a-z, 0-9, '_', '-'"),
    ("label key 64", target(labels={"k" * 64: "v"}), "targets.0.labels", "1-63 of a-z"),
    ("62 labels", target(labels={f"l{i}": "v" for i in range(62)}), "targets.0.labels", "at most 61"),
    ("label value 1", target(labels={"env": 1}), "targets.0.labels.env", "a string"),
    # members: [gcloud] iam_util AddMemberFlag
    ("user:alice", target(predict_members=["user:alice"]), "targets.0.predict_members", "is not an email address"),
    ("group:geo-ml", target(predict_members=["group:geo-ml"]), "targets.0.predict_members", "'group:<email>'"),
    (
        "serviceAccount:runner",
        target(predict_members=["serviceAccount:runner"]),
        "targets.0.predict_members",
        "'serviceAccount:<email>'",
    ),
    ("no prefix", target(predict_members=["alice@example.com"]), "targets.0.predict_members", "'user:<email>'"),
    ("allUsers", target(predict_members=["allUsers"]), "targets.0.predict_members", "'domain:<domain>'"),
    ("domain:example", target(predict_members=["domain:example"]), "targets.0.predict_members", "'domain:<domain>'"),
    ("members string", target(predict_members="user:a@example.com"), "targets.0.predict_members", "a list"),
    # regions: [gcloud] SUPPORTED_OP_REGIONS
    ("region us_central", target(region="us_central"), "targets.0.region", "'us-central1'"),
    ("region mars", target(region="mars-north1"), "targets.0.region", "africa-south1"),
    ("region unlisted", target(region="europe-west15"), "targets.0.region", "allow_unlisted_region = true"),
    ("region empty", target(region=""), "targets.0.region", "'<area>-<direction><n>'"),
    ("project Acme", target(project="Acme"), "targets.0.project", "6-30 characters"),
    ("project short", target(project="acme"), "targets.0.project", "6-30 characters"),
    # endpoint IDs: [types] CreateEndpointRequest.endpoint_id
    ("endpoint 10 digits", target(endpoint_id="1234567890"), "targets.0.endpoint_id", "at most 9 digits"),
    ("endpoint 19 digits", target(endpoint_id=GENERATED), "targets.0.endpoint_id", "[targets.adopt] endpoint = true"),
    ("endpoint capitals", target(endpoint_id="My-endpoint"), "targets.0.endpoint_id", "at most 9 digits"),
    ("adopt endpoint, no id", target(adopt={"endpoint": True}), "targets.0.adopt", "set endpoint_id"),
    # adoption
    ("adopt version alone", target(adopt={"model_version": VERSION}), "targets.0.adopt.artifact_sha256", "both"),
    (
        "adopt deployment alone",
        target(adopt={"endpoint": True, "deployed_model_id": "1"}, endpoint_id=GENERATED),
        "targets.0.adopt.model_version",
        "set model_version",
    ),
    (
        "adopt no version",
        target(adopt={"model_version": VERSION.removesuffix("@1"), "artifact_sha256": SHA}),
        "targets.0.adopt.model_version",
        "<version ID or alias>",
    ),
    (
        "adopt deployed abc",
        target(adopt={"model_version": VERSION, "artifact_sha256": SHA, "deployed_model_id": "abc"}),
        "targets.0.adopt.deployed_model_id",
        "numeric ID",
    ),
    (
        "adopt other region",
        target(adopt={"model_version": VERSION.replace("us-central1", "europe-west4"), "artifact_sha256": SHA}),
        "targets.0.adopt",
        "target's project and region",
    ),
    ("adopt nothing", target(adopt={}), "targets.0.adopt", "endpoint = true"),
    (
        "adopt endpoint 'yes'",
        target(adopt={"endpoint": "yes"}, endpoint_id=GENERATED),
        "targets.0.adopt.endpoint",
        "true or false",
    ),
    # display names: [types] Model/Endpoint.display_name
    ("display name empty", model(display_name=""), "model.display_name", "1-128 characters"),
    (
        "endpoint display 129",
        target(endpoint_display_name="x" * 129),
        "targets.0.endpoint_display_name",
        "1-128 characters",
    ),
    # and the neighbours that were refused already
    ("service account", target(service_account="me@gmail.com"), "targets.0.service_account", "iam.gserviceaccount.com"),
    (
        "kms region",
        target(kms_key="projects/p/locations/europe-west4/keyRings/r/cryptoKeys/k"),
        "targets.0",
        "same region",
    ),
    ("canary without previous", target(traffic_percent=50), "(top level)", "set [model.previous]"),
    ("bucket ab", target(bucket="ab"), "targets.0.bucket", "3-63 characters"),
    ("env value 1", model(env={"X": 1}), "model.env.X", "a string"),
    # request-response logging: [types] PredictRequestResponseLoggingConfig; [bigquery] DatasetReference
    (
        "sampling 0",
        target(request_logging={"sampling_rate": 0}),
        "targets.0.request_logging.sampling_rate",
        "greater than 0 and at most 1",
    ),
    (
        "sampling 1.5",
        target(request_logging={"sampling_rate": 1.5}),
        "targets.0.request_logging.sampling_rate",
        "greater than 0 and at most 1",
    ),
    (
        "sampling '0.1'",
        target(request_logging={"sampling_rate": "0.1"}),
        "targets.0.request_logging.sampling_rate",
        "a fraction",
    ),
    (
        "dataset ee-logs",
        target(request_logging={"sampling_rate": 0.1, "dataset": "ee-logs"}),
        "targets.0.request_logging.dataset",
        "A-Z, a-z, 0-9 and '_'",
    ),
    (
        "table a.b",
        target(request_logging={"sampling_rate": 0.1, "table": "a.b"}),
        "targets.0.request_logging.table",
        "1-1024 of A-Z",
    ),
    # monitoring: [mon] MetricThreshold, AlertPolicy.notificationChannels
    (
        "error_rate 0",
        target(monitoring={"enabled": True, "error_rate": 0}),
        "targets.0.monitoring.error_rate",
        "a fraction greater than 0",
    ),
    (
        "p99 0 ms",
        target(monitoring={"enabled": True, "p99_latency_ms": 0}),
        "targets.0.monitoring.p99_latency_ms",
        "a whole number from 1 to 3600000",
    ),
    (
        "window 90 s",
        target(monitoring={"enabled": True, "window_seconds": 90}),
        "targets.0.monitoring.window_seconds",
        "a multiple of 60",
    ),
    (
        "channel email",
        target(monitoring={"enabled": True, "notification_channels": ["email:me@example.com"]}),
        "targets.0.monitoring.notification_channels",
        "'projects/<project>/notificationChannels/<id>'",
    ),
    (
        "channel elsewhere",
        target(
            monitoring={"enabled": True, "notification_channels": ["projects/acme-geo-prod/notificationChannels/1"]}
        ),
        "targets.0.monitoring",
        "channels of the target's project",
    ),
    ("monitoring 'yes'", target(monitoring={"enabled": "yes"}), "targets.0.monitoring.enabled", "true or false"),
    # co-hosting: [types] deployment_resource_pool_service.py; model co-hosting doc
    ("pool Pool", target(resource_pool={"id": "Pool"}), "targets.0.resource_pool.id", "1-63 of a-z, 0-9 and '-'"),
    (
        "pool on our image",
        target(resource_pool={"id": "ee-pool"}),
        "(top level)",
        "custom containers are not supported",
    ),
    (
        "pool on a custom image",
        model(custom_image=True, serving_image="example.com/me/server@sha256:" + "a" * 64)
        | {"targets": target(resource_pool={"id": "ee-pool"})["targets"]},
        "(top level)",
        "a prebuilt serving_image",
    ),
    (
        "pool with kms",
        target(
            resource_pool={"id": "ee-pool"},
            kms_key="projects/acme-geo-dev/locations/us-central1/keyRings/r/cryptoKeys/k",
        ),
        "targets.0.resource_pool",
        "no kms_key",
    ),
    # deploy options: [types] DedicatedResources, AutoscalingMetricSpec, DeployedModel
    ("spot 'true'", target(spot="true"), "targets.0.spot", "true or false"),
    (
        "required 0",
        target(required_replicas=0),
        "targets.0.required_replicas",
        "a whole number from 1 to the minimum replica count",
    ),
    ("required > min", target(required_replicas=2), "targets.0.required_replicas", "allowed: 1 to 1, or unset"),
    (
        "cpu target 101",
        target(autoscaling={"cpu_utilization": 101}),
        "targets.0.autoscaling.cpu_utilization",
        "a whole number from 1 to 100 (percent",
    ),
    (
        "cpu target '70'",
        target(autoscaling={"cpu_utilization": "70"}),
        "targets.0.autoscaling.cpu_utilization",
        "a whole number from 1 to 100",
    ),
    (
        "duty cycle on CPU",
        target(autoscaling={"accelerator_duty_cycle": 70}),
        "targets.0.autoscaling.accelerator_duty_cycle",
        "an accelerator_type with accelerator_count >= 1",
    ),
    (
        "duty cycle 0",
        target(autoscaling={"accelerator_duty_cycle": 0}),
        "targets.0.autoscaling.accelerator_duty_cycle",
        "a whole number from 1 to 100",
    ),
    (
        "requests 0",
        target(autoscaling={"requests_per_minute": 0}),
        "targets.0.autoscaling.requests_per_minute",
        "requests per minute per replica, from 1",
    ),
    ("container_logging 'off'", target(container_logging="off"), "targets.0.container_logging", "true or false"),
    ("access_logging 1", target(access_logging=1), "targets.0.access_logging", "true or false"),
    ("target env AIP_", target(env={"AIP_MODE": "x"}), "targets.0.env", "reserved by Vertex AI"),
    # what Earth Engine cannot call: [endpoints], [ee]
    (
        "dedicated endpoint",
        target(dedicated_endpoint_enabled=True),
        "targets.0.dedicated_endpoint_enabled",
        "choose-endpoint-type",
    ),
    (
        "private service connect",
        target(private_service_connect_config={"enable_private_service_connect": True}),
        "targets.0.private_service_connect_config",
        "leave it out",
    ),
    ("private network", target(network="projects/1/global/networks/vpc"), "targets.0.network", "leave it out"),
    (
        "payload 10 MB",
        model(max_payload_bytes=10_000_000),
        "model.max_payload_bytes",
        "a whole number from 1 to 1500000",
    ),
]


@pytest.mark.parametrize("config,where,allowed", [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN])
def test_a_broken_config_stops_synth_with_field_and_allowed_values(
    config, where, allowed, tmp_path, monkeypatch, capsys
):
    path = tmp_path / "rollout.toml"
    path.write_text(toml(config))
    assert tomllib.loads(path.read_text()) == config
    monkeypatch.setenv("ROLLOUT_CONFIG", str(path))
    monkeypatch.setenv("CDKTF_OUTDIR", str(tmp_path / "cdktf.out"))
    assert main.main() == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert lines[0] == f"error: invalid rollout config {path.resolve()}:"
    assert len(lines) == 2, err  # one error, one line
    assert lines[1].startswith(f"  {where}: "), err
    assert "allowed" in lines[1] and allowed in lines[1], err
    assert not (tmp_path / "cdktf.out").exists()


def test_there_are_79_or_more():
    assert len(BROKEN) >= 79
    assert len({b[0] for b in BROKEN}) == len(BROKEN)
