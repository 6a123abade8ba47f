"""Import and adoption through real Terraform against the Vertex AI emulator (names carry the
project number, as Vertex AI's do), on an endpoint whose ID Vertex AI generated (19 digits).

The resources are shaped as the stacks make them: the deployment names its model version by
alias (the model lives in another stack there), the split names the deployment. Re-importing
them by any name gcloud prints, or the short forms, plans nothing and changes nothing: the
endpoint keeps serving (the old plan replaced the deployment, and the apply undeployed it).
"""

from __future__ import annotations

import json
import re

import pytest
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

from rehearsal.vertex_emulator import project_number
from serving.local import http_json

pytestmark = pytest.mark.slow

ALIAS = "a0123abcd5e6f-1a2b3c4d"
PARENT = f"projects/{PROJECT}/locations/{REGION}"
NUMBERED = f"projects/{project_number(PROJECT)}/locations/{REGION}"
DEPLOYED = "1234567890"


def call(emulators, method: str, name: str, body: dict | None = None) -> dict:
    status, answer = http_json(f"{emulators.vertex_url}/v1/{name}", body, method=method)
    assert status == 200, answer
    while "/operations/" in answer.get("name", "") and not answer.get("done"):
        status, answer = http_json(f"{emulators.vertex_url}/v1/{answer['name']}")
    return answer.get("response", answer)


@pytest.fixture(scope="module")
def endpoint_id(emulators) -> str:
    """An endpoint made as `gcloud ai endpoints create` makes it: no ID given, Vertex AI's 19 digits."""
    put_artifact(emulators, ARTIFACT)
    created = call(emulators, "POST", f"{PARENT}/endpoints", {"displayName": "made-by-gcloud"})
    endpoint_id = created["name"].rsplit("/", 1)[1]
    assert len(endpoint_id) == 19
    return endpoint_id


def resources(endpoint_id: str, **deployment) -> dict:
    model = model_config(version_alias=ALIAS)
    return {
        "eevertex_model": {"m": {**model, "lifecycle": {"create_before_destroy": True}}},
        "eevertex_deployment": {
            "d": {
                "project": PROJECT,
                "region": REGION,
                "endpoint_id": endpoint_id,
                "model": f"{PARENT}/models/landcover@{ALIAS}",
                "deployed_model_id": DEPLOYED,
                "display_name": "landcover",
                "machine_type": "n1-standard-4",
                "min_replica_count": 1,
                "max_replica_count": 2,
                "lifecycle": {"create_before_destroy": True},
                "depends_on": ["eevertex_model.m"],
                **deployment,
            }
        },
        "eevertex_traffic_split": {
            "t": {
                "project": PROJECT,
                "region": REGION,
                "endpoint_id": endpoint_id,
                "split": {DEPLOYED: 100},
                "depends_on": ["eevertex_deployment.d"],
            }
        },
    }


@pytest.fixture(scope="module")
def workspace(emulators, endpoint_id, provider_cli_config, tmp_path_factory):
    ws = Workspace(tmp_path_factory.mktemp("import"), provider_cli_config, emulators.vertex_url)
    ws.write(resources(endpoint_id))
    ws.init()
    ws.apply()
    assert changes(ws.plan()) == {}
    return ws


def serving(emulators, endpoint_id: str) -> dict:
    endpoint = call(emulators, "GET", f"{PARENT}/endpoints/{endpoint_id}")
    return {d["id"]: endpoint.get("trafficSplit", {}).get(d["id"], 0) for d in endpoint.get("deployedModels", [])}


def forms(endpoint_id: str) -> dict[str, list[str]]:
    """Import IDs for model, deployment and split, as gcloud prints names and the short forms."""
    endpoint = f"endpoints/{endpoint_id}"
    return {
        "documented": [
            f"{PARENT}/models/landcover@1",
            f"{PARENT}/{endpoint}/deployedModels/{DEPLOYED}",
            f"{PARENT}/{endpoint}",
        ],
        "project number": [
            f"{NUMBERED}/models/landcover@1",
            f"{NUMBERED}/{endpoint}/deployedModels/{DEPLOYED}",
            f"{NUMBERED}/{endpoint}",
        ],
        "alias": [
            f"{PARENT}/models/landcover@{ALIAS}",
            f"{PARENT}/{endpoint}/deployedModels/{DEPLOYED}",
            f"{PARENT}/{endpoint}",
        ],
        "short": [
            f"{PROJECT}/{REGION}/landcover@1",
            f"{PROJECT}/{REGION}/{endpoint_id}/{DEPLOYED}",
            f"{PROJECT}/{REGION}/{endpoint_id}",
        ],
    }


ADDRESSES = ["eevertex_model.m", "eevertex_deployment.d", "eevertex_traffic_split.t"]


@pytest.mark.parametrize("form", ["documented", "project number", "alias", "short"])
def test_reimport_by_any_id_form_plans_nothing_and_keeps_serving(workspace, emulators, endpoint_id, form):
    workspace.forget()
    ids = forms(endpoint_id)[form]
    workspace.write(resources(endpoint_id), imports=[{"to": a, "id": i} for a, i in zip(ADDRESSES, ids, strict=True)])
    plan = workspace.plan()
    raw = plan["_raw"]["resource_changes"]
    assert changes(plan) == {}, {rc["address"]: rc["change"] for rc in raw if rc["change"]["actions"] != ["no-op"]}
    assert sorted(rc["address"] for rc in raw if rc["change"].get("importing")) == sorted(ADDRESSES)
    before = len(emulators.journal())
    workspace.apply()
    assert [c["method"] for c in emulators.journal()[before:]] == []  # nothing deployed, undeployed or changed
    assert serving(emulators, endpoint_id) == {DEPLOYED: 100}
    workspace.write(resources(endpoint_id))
    assert changes(workspace.plan()) == {}


def test_terraform_import_command_then_plan_is_empty(workspace, emulators, endpoint_id):
    """`terraform import` (the CLI, as the issue's platform engineer ran it) of the documented IDs."""
    workspace.forget()
    workspace.write(resources(endpoint_id))
    for address, id in zip(ADDRESSES, forms(endpoint_id)["documented"], strict=True):
        workspace.tf("import", "-input=false", "-no-color", address, id)
    assert changes(workspace.plan()) == {}
    assert serving(emulators, endpoint_id) == {DEPLOYED: 100}


def test_show_names_the_deployed_version(workspace):
    state = workspace.state("eevertex_deployment.d")
    assert state["model_version_id"] == "1"
    assert state["model"].endswith("/models/landcover@" + ALIAS) or state["model"].endswith("/models/landcover@1")
    assert re.search(r'\n\s*model_version_id\s+= "1"\n', workspace.tf("show", "-no-color").stdout)


def test_a_replacement_under_the_same_deployed_id_is_refused_at_plan(workspace, emulators, endpoint_id):
    """Another machine type for the deployment that serves, keeping its ID: the apply would adopt
    the deployment and then undeploy it. The plan refuses, and nothing changes."""
    workspace.write(resources(endpoint_id, machine_type="n1-standard-8"))
    error = " ".join(workspace.plan_error().split())
    assert (
        f"deployed model {DEPLOYED} on {PARENT}/endpoints/{endpoint_id} would be replaced under the same ID "
        "(machine_type 'n1-standard-4' -> 'n1-standard-8')" in error
    )
    assert serving(emulators, endpoint_id) == {DEPLOYED: 100}
    # Under a new ID, with create_before_destroy, the same change serves throughout.
    workspace.write(
        resources(endpoint_id, machine_type="n1-standard-8", deployed_model_id="1234567891")
        | {
            "eevertex_traffic_split": {
                "t": {**resources(endpoint_id)["eevertex_traffic_split"]["t"], "split": {"1234567891": 100}}
            }
        }
    )
    assert changes(workspace.plan()) == {
        "eevertex_deployment.d": ["create", "delete"],
        "eevertex_traffic_split.t": ["update"],
    }
    workspace.apply()
    assert serving(emulators, endpoint_id) == {"1234567891": 100}
    workspace.write(resources(endpoint_id))
    workspace.apply()
    assert serving(emulators, endpoint_id) == {DEPLOYED: 100}


def test_after_a_manual_undeploy_the_split_shows_what_vertex_ai_has(workspace, emulators, endpoint_id):
    """Vertex AI's split is empty once nothing is deployed: the plan says `{} -> {D: 100}`, not 0 -> 100."""
    call(emulators, "POST", f"{PARENT}/endpoints/{endpoint_id}:undeployModel", {"deployedModelId": DEPLOYED})
    plan = workspace.plan()
    assert changes(plan)["eevertex_deployment.d"] == ["create"]
    (split,) = [rc["change"] for rc in plan["_raw"]["resource_changes"] if rc["address"] == "eevertex_traffic_split.t"]
    assert split["before"]["split"] == {} and split["after"]["split"] == {DEPLOYED: 100}
    workspace.apply()
    assert serving(emulators, endpoint_id) == {DEPLOYED: 100}
    assert changes(workspace.plan()) == {}


def test_importing_a_gcloud_upload_plans_its_aliases(emulators, provider_cli_config, tmp_path):
    """A version uploaded without an alias (gcloud ai models upload) holds only `default`: the
    import plans our alias in place, and the plan shows exactly the aliases it will hold."""
    uploaded = call(
        emulators,
        "POST",
        f"{PARENT}/models:upload",
        {
            "model": {
                "displayName": "made-by-gcloud",
                "artifactUri": ARTIFACT,
                "containerSpec": {"imageUri": model_config()["container_image_uri"]},
            }
        },
    )
    model_id = uploaded["model"].rsplit("/", 1)[1]
    ws = Workspace(tmp_path / "ws", provider_cli_config, emulators.vertex_url)
    body = {
        k: v
        for k, v in model_config(model_id=model_id, version_alias=ALIAS).items()
        if not k.startswith("container_") or k == "container_image_uri"
    }
    ws.write({"eevertex_model": {"m": body}}, imports=[{"to": "eevertex_model.m", "id": f"{uploaded['model']}@1"}])
    ws.init()
    plan = ws.plan()
    assert changes(plan) == {"eevertex_model.m": ["update"]}
    (change,) = [rc["change"] for rc in plan["_raw"]["resource_changes"]]
    assert change["before"]["version_aliases"] == ["default"]
    assert change["after"]["version_aliases"] == [ALIAS, "default"]
    assert "version_aliases" not in json.dumps(change.get("after_unknown", {}))
    ws.apply()
    ws.write({"eevertex_model": {"m": body}})
    assert changes(ws.plan()) == {}
    ws.destroy()
