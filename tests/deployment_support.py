"""Helpers shared by tests/test_provider_deployment*.py: reading the Vertex AI emulator, waiting on its
operations, and an eevertex_deployment body.
"""

from __future__ import annotations

from provider_support import PROJECT, REGION

from serving.local import http_json

ENDPOINT_ID = "412345678"


def get(emulators, name: str) -> dict:
    status, body = http_json(f"{emulators.vertex_url}/v1/{name}")
    assert status == 200, body
    return body


def wait_operation(emulators, op: dict) -> None:
    import time

    while not op.get("done"):
        time.sleep(0.1)
        op = get(emulators, op["name"])
    assert "error" not in op, op


def deployment(model_ref: str, deployed_id: str, **overrides) -> dict:
    body = {
        "project": PROJECT,
        "region": REGION,
        "endpoint_id": ENDPOINT_ID,
        "model": model_ref,
        "deployed_model_id": deployed_id,
        "display_name": "landcover",
        "machine_type": "n1-standard-4",
        "min_replica_count": 1,
        "max_replica_count": 2,
        "lifecycle": {"create_before_destroy": True},
    }
    body.update(overrides)
    return body
