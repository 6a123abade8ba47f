"""The Vertex AI emulator's rules, one test per rule of its table (rehearsal/vertex_emulator.py): the
predict payload limit, the error shape, operations, project numbers, and the table itself.

The emulator runs in-process with an in-memory GCS emulator and no model servers, so
these tests take seconds; the rehearsals exercise serving.
"""

from __future__ import annotations

import json

import requests
from vertex_emulator_support import (
    LOC,
    _serve,
    api,  # noqa: F401
    gcs,  # noqa: F401
)


def test_predict_over_1_5_mb_refused(api):
    endpoint = api.endpoint()
    body = json.dumps({"instances": ["x" * 1_600_000]}).encode()
    response = requests.post(f"{api.url}/v1/{endpoint}:predict", data=body, timeout=30)
    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert "payload size exceeds the limit" in response.json()["error"]["message"]
    # Under the limit, the request gets as far as routing.
    api.refused("FAILED_PRECONDITION", "POST", f"{endpoint}:predict", {"instances": ["x" * 1_400_000]})


def test_error_shape(api):
    response = api.call("GET", f"{LOC}/endpoints/404")
    assert response.status_code == 404
    assert response.json() == {
        "error": {"code": 404, "status": "NOT_FOUND", "message": f"Endpoint {LOC}/endpoints/404 is not found."}
    }


def test_operations_v1_and_v1beta1(api):
    op = api.ok("POST", f"{LOC}/endpoints", {"displayName": "e"}, endpointId="7")
    assert op["name"].startswith(f"{LOC}/endpoints/7/operations/")
    assert op["metadata"]["@type"] == "type.googleapis.com/google.cloud.aiplatform.v1.CreateEndpointOperationMetadata"
    assert set(op["metadata"]["genericMetadata"]) == {"createTime", "updateTime"}
    v1, beta = api.wait(op), api.wait(op, api="v1beta1")
    assert v1["response"]["@type"] == "type.googleapis.com/google.cloud.aiplatform.v1.Endpoint"
    assert beta["response"]["@type"] == "type.googleapis.com/google.cloud.aiplatform.v1beta1.Endpoint"
    assert beta["response"]["name"] == f"{LOC}/endpoints/7"


def test_project_numbers(tmp_path, gcs):
    httpd, api = _serve(tmp_path, gcs, project_numbers=True)
    try:
        name = api.endpoint("5")
        number = name.split("/")[1]
        assert number.isdigit() and len(number) == 12
        assert api.ok("GET", f"{LOC}/endpoints/5")["name"] == name
        assert api.ok("GET", name)["name"] == name
    finally:
        httpd.shutdown()


def test_the_rehearsal_guides_rule_table_is_the_emulators():
    import ast
    import re

    from conftest import ROOT

    import rehearsal.vertex_emulator as emulator

    table = "\n".join(line for line in emulator.__doc__.splitlines() if line.startswith("|"))
    readme = (ROOT / "docs" / "guides" / "rehearsal.md").read_text()
    match = re.search(r"<!-- emulator-rules:start -->\n(.*?)\n<!-- emulator-rules:end -->", readme, re.S)
    assert match and match.group(1) == table
    # Every test the table names exists: a module-level name of one of tests/test_vertex_emulator*.py.
    defined = {
        node.name
        for module in sorted((ROOT / "tests").glob("test_vertex_emulator*.py"))
        for node in ast.parse(module.read_text()).body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    }
    names = set(re.findall(r"\b(test_[a-z0-9_]+)", table))
    assert names <= defined, names - defined
