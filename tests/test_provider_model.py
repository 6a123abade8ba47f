"""eevertex_model against the Vertex AI emulator, through real Terraform.

One workspace walks the model's life: create, empty plan, in-place update, import, a new
serving image on the same artifact (new version, `default` moved before the old one goes),
rollback, interrupted create adopted, destroy with several versions; bucket objects stay.
"""

from __future__ import annotations

import pytest
from provider_support import (
    ARTIFACT,
    PROJECT,
    REGION,
    Workspace,
    artifact_objects,
    changes,  # noqa: F401
    emulators,  # noqa: F401
    model_config,
    planned_after,
    put_artifact,
)

from serving.local import http_json

pytestmark = pytest.mark.slow

MODEL = f"projects/{PROJECT}/locations/{REGION}/models/landcover"
# One label added, one dropped (the first upload also set them at the model level).
LABELS_2 = {"team": "geo", "stage": "canary"}
IMAGE_2 = "us-docker.pkg.dev/vertex-ai/prediction/pytorch-cpu.2-5:latest"


def get(emulators, name: str) -> dict:
    status, body = http_json(f"{emulators.vertex_url}/v1/{name}")
    assert status == 200, body
    return body


def uploads(emulators) -> list[dict]:
    return [c for c in emulators.journal() if c["method"] == "uploadModel"]


@pytest.fixture(scope="module")
def workspace(emulators, provider_cli_config, tmp_path_factory):
    put_artifact(emulators, ARTIFACT)
    ws = Workspace(tmp_path_factory.mktemp("model"), provider_cli_config, emulators.vertex_url)
    ws.write({"eevertex_model": {"m": model_config()}})
    ws.init()
    return ws


def test_create_then_plan_is_empty(workspace, emulators):
    plan = workspace.plan()
    assert changes(plan) == {"eevertex_model.m": ["create"]}
    after = planned_after(plan, "eevertex_model.m")
    assert after["labels"] == {"team": "geo", "artifact": "sha256-0123abcd"}
    workspace.apply()
    assert changes(workspace.plan()) == {}
    state = workspace.state("eevertex_model.m")
    assert state["id"] == f"{MODEL}@1"
    assert state["version_id"] == "1"
    assert state["container_ports"] == [8080]  # Vertex AI's default, known once created
    assert state["version_aliases"] == ["a-0123abcd-c-5e6f", "default"]
    version = get(emulators, f"{MODEL}@1")
    assert version["containerSpec"]["grpcPorts"] == [{"containerPort": 8500}]


def test_in_place_update_reaches_vertex(workspace, emulators):
    workspace.write(
        {
            "eevertex_model": {
                "m": model_config(labels=LABELS_2, description="Land cover, 9 classes", display_name="Land cover")
            }
        }
    )
    assert changes(workspace.plan()) == {"eevertex_model.m": ["update"]}
    workspace.apply()
    version = get(emulators, f"{MODEL}@1")
    assert version["labels"] == LABELS_2
    assert version["description"] == "Land cover, 9 classes"
    assert version["displayName"] == "Land cover"
    assert len(uploads(emulators)) == 1
    assert changes(workspace.plan()) == {}


def test_import_then_plan_is_empty(workspace):
    workspace.forget()
    workspace.write(
        {
            "eevertex_model": {
                "m": model_config(labels=LABELS_2, description="Land cover, 9 classes", display_name="Land cover")
            }
        },
        imports=[{"to": "eevertex_model.m", "id": f"{MODEL}@1"}],
    )
    plan = workspace.plan()
    assert changes(plan) == {}  # an import with nothing to change
    assert [rc["address"] for rc in plan["_raw"]["resource_changes"] if rc["change"].get("importing")] == [
        "eevertex_model.m"
    ]
    workspace.apply()
    assert changes(workspace.plan()) == {}


def test_import_by_alias(workspace, tmp_path, provider_cli_config, emulators):
    ws = Workspace(tmp_path / "alias", provider_cli_config, emulators.vertex_url)
    ws.write(
        {
            "eevertex_model": {
                "m": model_config(labels=LABELS_2, description="Land cover, 9 classes", display_name="Land cover")
            }
        },
        imports=[{"to": "eevertex_model.m", "id": f"{MODEL}@a-0123abcd-c-5e6f"}],
    )
    ws.init()
    assert changes(ws.plan()) == {}


def test_new_image_is_a_new_version_and_default_moves_first(workspace, emulators):
    """Same artifact, another serving image: a new version of the same model; the old one
    (holding `default`) is deleted after `default` moved to the new one."""
    config = model_config(
        container_image_uri=IMAGE_2,
        version_alias="a-0123abcd-c-7a8b",
        labels=LABELS_2,
        description="Land cover, 9 classes",
        display_name="Land cover",
    )
    workspace.write({"eevertex_model": {"m": {**config, "lifecycle": {"create_before_destroy": True}}}})
    assert changes(workspace.plan()) == {"eevertex_model.m": ["create", "delete"]}
    before = len(emulators.journal())
    workspace.apply()
    calls = [c["method"] for c in emulators.journal()[before:]]
    assert calls == ["uploadModel", "mergeVersionAliases", "deleteModelVersion"]
    state = workspace.state("eevertex_model.m")
    assert state["id"] == f"{MODEL}@2"
    assert "default" in get(emulators, f"{MODEL}@2")["versionAliases"]
    status, _ = http_json(f"{emulators.vertex_url}/v1/{MODEL}@1")
    assert status == 404
    assert changes(workspace.plan()) == {}


def test_rollback_and_destroy_with_several_versions(workspace, emulators):
    """Back to the previous image while keeping the current one declared (as a canary
    rollback does); then destroy: every version and the model go, the artifact stays."""
    previous = model_config(description="Land cover, 9 classes", display_name="Land cover", labels=LABELS_2)
    current = {**previous, "container_image_uri": IMAGE_2, "version_alias": "a-0123abcd-c-7a8b"}
    workspace.write(
        {"eevertex_model": {"m": {**current, "lifecycle": {"create_before_destroy": True}}, "previous": previous}}
    )
    assert changes(workspace.plan()) == {"eevertex_model.previous": ["create"]}
    workspace.apply()
    assert workspace.state("eevertex_model.previous")["id"] == f"{MODEL}@3"
    assert changes(workspace.plan()) == {}
    objects = artifact_objects(emulators, ARTIFACT)
    workspace.destroy()
    status, _ = http_json(f"{emulators.vertex_url}/v1/{MODEL}")
    assert status == 404
    assert artifact_objects(emulators, ARTIFACT) == objects != []


def test_interrupted_create_is_adopted(workspace, emulators):
    """An upload that finished after Terraform lost track of it (interrupted apply): the next
    apply finds the version by its alias and adopts it, uploading nothing."""
    status, body = http_json(
        f"{emulators.vertex_url}/v1/projects/{PROJECT}/locations/{REGION}/models:upload",
        {
            "modelId": "landcover",
            "model": {
                "displayName": "landcover",
                "description": "Land cover segmentation",
                "labels": {"team": "geo", "artifact": "sha256-0123abcd"},
                "artifactUri": ARTIFACT,
                "versionAliases": ["a-0123abcd-c-5e6f"],
                "containerSpec": {
                    "imageUri": model_config()["container_image_uri"],
                    "grpcPorts": [{"containerPort": 8500}],
                    "predictRoute": "/predictions/model",
                    "healthRoute": "/ping",
                },
            },
        },
    )
    assert status == 200, body
    workspace.forget()
    workspace.write({"eevertex_model": {"m": model_config()}})
    before = len(uploads(emulators))
    workspace.apply()
    assert len(uploads(emulators)) == before
    assert changes(workspace.plan()) == {}
    workspace.destroy()


def test_imported_seed_version_takes_our_alias_in_place(workspace, emulators):
    """A version uploaded by the seed's gcloud commands holds only `default`: imported, it gets
    our alias in place (mergeVersionAliases), no new upload."""
    status, body = http_json(
        f"{emulators.vertex_url}/v1/projects/{PROJECT}/locations/{REGION}/models:upload",
        {
            "modelId": "landcover",
            "model": {
                "displayName": "landcover",
                "description": "Land cover segmentation",
                "labels": {"team": "geo", "artifact": "sha256-0123abcd"},
                "artifactUri": ARTIFACT,
                "containerSpec": {
                    "imageUri": model_config()["container_image_uri"],
                    "grpcPorts": [{"containerPort": 8500}],
                    "predictRoute": "/predictions/model",
                    "healthRoute": "/ping",
                },
            },
        },
    )
    assert status == 200, body
    workspace.forget()
    # Empty lists and maps written out in the config: the same as the imported version's
    # absent fields (no replacement).
    config = model_config(container_command=[], container_env={})
    workspace.write({"eevertex_model": {"m": config}}, imports=[{"to": "eevertex_model.m", "id": MODEL}])
    plan = workspace.plan()
    assert changes(plan) == {"eevertex_model.m": ["update"]}
    assert planned_after(plan, "eevertex_model.m")["version_alias"] == "a-0123abcd-c-5e6f"
    before = len(uploads(emulators))
    workspace.apply()
    assert len(uploads(emulators)) == before
    assert sorted(get(emulators, f"{MODEL}@1")["versionAliases"]) == ["a-0123abcd-c-5e6f", "default"]
    assert changes(workspace.plan()) == {}
    workspace.destroy()


def test_bad_config_is_a_plan_error(workspace):
    workspace.write({"eevertex_model": {"m": model_config(model_id="9landcover", version_alias="Default")}})
    error = workspace.plan_error()
    assert "model_id: '9landcover' is not a valid Vertex AI model ID" in error
    assert "version_alias = 'Default'" in error
