"""The Vertex AI v1 REST API as a person calls it by hand (console, gcloud, a script), against
the emulator, which speaks it as Google does: `Vertex` (calls, long-running operations, gets)."""

from __future__ import annotations

import time

from serving.local import http_json


class Vertex:
    """Calls a person would make by hand (console, gcloud, a script), on the v1 REST API."""

    def __init__(self, url: str):
        self.url = url

    def call(self, method: str, path: str, body: dict | None = None, *, wait: bool = True) -> dict:
        status, answer = http_json(f"{self.url}/v1/{path}", body, timeout=120, method=method)
        if status != 200 or not isinstance(answer, dict):
            raise RuntimeError(f"{method} {path}: HTTP {status}: {answer}")
        if wait and "name" in answer and "/operations/" in answer["name"] and "done" in answer:
            return self.wait(answer)
        return answer

    def wait(self, operation: dict, timeout: float = 300) -> dict:
        deadline = time.monotonic() + timeout
        while not operation.get("done"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"operation {operation['name']} not done after {timeout:.0f}s")
            time.sleep(0.2)
            operation = self.call("GET", operation["name"], wait=False)
        if "error" in operation:
            raise RuntimeError(f"operation {operation['name']} failed: {operation['error']}")
        return operation.get("response", {})

    def get(self, name: str) -> dict | None:
        status, answer = http_json(f"{self.url}/v1/{name}", timeout=120)
        return answer if status == 200 and isinstance(answer, dict) else None
