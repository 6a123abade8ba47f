"""`python -m build_hooks.tf_http SAVEDMODEL PORT`: TensorFlow Serving's REST predict for one
SavedModel, on 127.0.0.1 — what Vertex AI's prebuilt TensorFlow container answers.

POST /v1/models/model:predict  {"instances": [...]}  ->  {"predictions": [...]}
GET  /v1/models/model          -> status (200 once the model is loaded)
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from build_hooks.serving import SavedModelServer, send_json


def make_handler(server: SavedModelServer):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def _send(self, status: int, body: dict) -> None:
            send_json(self, status, body)

        def do_GET(self):
            if self.path.rstrip("/") == "/v1/models/model":
                self._send(200, {"model_version_status": [{"version": "1", "state": "AVAILABLE"}]})
            else:
                self._send(404, {"error": f"no route {self.path}"})

        def do_POST(self):
            if self.path != "/v1/models/model:predict":
                self._send(404, {"error": f"no route {self.path}"})
                return
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                self._send(200, server.predict_json(body))
            except (ValueError, KeyError, TypeError) as error:
                self._send(400, {"error": f"{type(error).__name__}: {error}"})
            except Exception as error:  # noqa: BLE001 - TF errors become a 400 like TF Serving's
                self._send(400, {"error": str(error).splitlines()[0]})

    return Handler


def main(argv: list[str]) -> int:
    path, port = Path(argv[0]), int(argv[1])
    server = SavedModelServer(path)
    httpd = ThreadingHTTPServer(("127.0.0.1", port), make_handler(server))
    print(f"serving {path} on 127.0.0.1:{port}", flush=True)
    httpd.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
