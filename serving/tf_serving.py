"""A stand-in for TensorFlow Serving's `tensorflow_model_server`, for machines where the
official image cannot be pulled (TensorFlow Serving has no PyPI or Debian package): the same
command line, the same REST and gRPC API, the same model layout and start-up order, on the
TensorFlow of the export.

    tensorflow_model_server --port=8500 --rest_api_port=8080 --model_name=model \\
        --model_base_path=gs://bucket/path     # or a local folder

What it follows, from TensorFlow Serving's documentation ("RESTful API", "SavedModel Warmup",
"Serving a TensorFlow Model") and sources (model_servers/server.cc, http_rest_api_handler.cc):
- the model is `<model_base_path>/<version>/` (a SavedModel per numeric folder); the highest
  version is served. gs:// paths are read directly (here with google-cloud-storage, which
  honours STORAGE_EMULATOR_HOST);
- the warm-up requests in `<version>/assets.extra/tf_serving_warmup_requests` (a TFRecord of
  PredictionLog) run before the version is AVAILABLE, and the gRPC and REST servers start
  only once it is (ServerCore::Create waits for the models of the config);
- REST on --rest_api_port: `GET /v1/models/<name>[/versions/<v>]` (model status),
  `POST /v1/models/<name>[/versions/<v>]:predict` with the row (`instances`) or columnar
  (`inputs`) format, binary values as `{"b64": ...}`, extra keys such as Vertex AI's
  `parameters` ignored; answers `{"predictions": ...}` / `{"outputs": ...}`, errors
  `{"error": "..."}` with 400 for an invalid argument and 404 for an unknown model;
- gRPC on --port: `tensorflow.serving.PredictionService/Predict` and
  `tensorflow.serving.ModelService/GetModelStatus` (tensorflow-serving-api's stubs).

`SavedModel` is the same serving logic for the build's check and local serving.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import sys
import tempfile
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

WARMUP_FILE = "tf_serving_warmup_requests"
SIGNATURE = "serving_default"


class ServingError(Exception):
    """A request TensorFlow Serving refuses: its HTTP status and message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _tf():
    import tensorflow as tf

    return tf


class SavedModel:
    """One SavedModel version, called as TensorFlow Serving calls it."""

    def __init__(self, path: Path):
        tf = _tf()
        self.path = Path(path)
        self.loaded = tf.saved_model.load(str(self.path))
        self.signatures = dict(self.loaded.signatures)
        if SIGNATURE not in self.signatures:
            raise ServingError(400, f"{self.path}: no '{SIGNATURE}' signature")

    def _signature(self, name: str | None):
        name = name or SIGNATURE
        if name not in self.signatures:
            raise ServingError(400, f'Serving signature name: "{name}" not found in signature def')
        return self.signatures[name]

    def call(self, inputs: dict, signature_name: str | None = None) -> dict[str, np.ndarray]:
        """Named input values -> named output arrays, each input converted to its spec."""
        tf = _tf()
        signature = self._signature(signature_name)
        specs = signature.structured_input_signature[1]
        missing = sorted(set(specs) - set(inputs))
        extra = sorted(set(inputs) - set(specs))
        if missing or extra:
            raise ServingError(
                400,
                f"input size does not match signature: {len(inputs)}!={len(specs)} len({sorted(inputs)}) "
                f"!= len({sorted(specs)}); missing {missing}, unexpected {extra}",
            )
        try:
            tensors = {name: tf.constant(value, dtype=specs[name].dtype) for name, value in inputs.items()}
            return {k: v.numpy() for k, v in signature(**tensors).items()}
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as error:
            raise ServingError(400, str(error).strip().splitlines()[0]) from None

    # REST -------------------------------------------------------------------------------

    def predict_rest(self, body) -> dict:
        if not isinstance(body, dict):
            raise ServingError(400, "JSON Value: must be an object")
        signature_name = body.get("signature_name")
        names = list(self._signature(signature_name).structured_input_signature[1])
        if "instances" in body:
            rows = body["instances"]
            if not isinstance(rows, list) or not rows:
                raise ServingError(400, "'instances' must be a non-empty JSON array")
            if all(isinstance(r, dict) for r in rows):
                inputs = {n: [_rest_value(r.get(n)) for r in rows] for n in names}
                if any(n not in r for r in rows for n in names):
                    raise ServingError(
                        400,
                        f"Failed to process element: 0 key: {names} of 'instances' list. Error: "
                        "Invalid argument: JSON object: does not have named input",
                    )
            elif len(names) == 1:
                inputs = {names[0]: [_rest_value(r) for r in rows]}
            else:
                raise ServingError(400, "instances must be objects naming the signature's inputs")
            outputs = self.call(inputs, signature_name)
            return {"predictions": _rows(outputs, len(rows))}
        if "inputs" in body:
            given = body["inputs"]
            inputs = (
                {n: _rest_value(v) for n, v in given.items()}
                if isinstance(given, dict)
                else {names[0]: _rest_value(given)}
            )
            outputs = self.call(inputs, signature_name)
            plain = {k: _plain(v) for k, v in outputs.items()}
            return {"outputs": next(iter(plain.values())) if len(plain) == 1 else plain}
        raise ServingError(400, "Missing 'inputs' or 'instances' key")

    # gRPC ---------------------------------------------------------------------------------

    def predict_proto(self, request):
        """A tensorflow.serving.PredictRequest -> PredictResponse."""
        tf = _tf()
        from tensorflow_serving.apis import predict_pb2

        inputs = {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}
        outputs = self.call(inputs, request.model_spec.signature_name or None)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = request.model_spec.name
        response.model_spec.signature_name = request.model_spec.signature_name or SIGNATURE
        for name, value in outputs.items():
            if request.output_filter and name not in request.output_filter:
                continue
            response.outputs[name].CopyFrom(tf.make_tensor_proto(value))
        return response

    def warm_up(self) -> int:
        """Run the version's warm-up requests (TensorFlow Serving's SavedModel Warmup); their count."""
        tf = _tf()
        path = self.path / "assets.extra" / WARMUP_FILE
        if not path.exists():
            return 0
        from tensorflow_serving.apis import prediction_log_pb2

        count = 0
        for record in tf.data.TFRecordDataset(str(path)):
            log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
            if log.HasField("predict_log"):
                self.predict_proto(log.predict_log.request)
                count += 1
        return count


def _rest_value(value):
    """TensorFlow Serving's REST encoding of binary strings: {"b64": "..."}."""
    if isinstance(value, dict) and set(value) == {"b64"}:
        return base64.b64decode(value["b64"])
    if isinstance(value, list):
        return [_rest_value(v) for v in value]
    return value


def _plain(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "OS":
            return [_plain(v) for v in value.tolist()]
        return value.tolist()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value.item() if hasattr(value, "item") else value


def _rows(outputs: dict[str, np.ndarray], count: int) -> list:
    rows = []
    for i in range(count):
        row = {k: _plain(v[i]) for k, v in outputs.items()}
        rows.append(next(iter(row.values())) if len(row) == 1 else row)
    return rows


# -- the model server ----------------------------------------------------------------


def fetch(base_path: str) -> Path:
    """A gs:// base path copied to a local folder (TensorFlow Serving reads GCS directly);
    a local folder as it is."""
    if not base_path.startswith("gs://"):
        return Path(base_path)
    from google.cloud import storage

    bucket_name, _, prefix = base_path[len("gs://") :].partition("/")
    prefix = prefix.rstrip("/") + "/" if prefix else ""
    local = Path(tempfile.mkdtemp(prefix="tf-serving-model-"))
    client = storage.Client(project=os.environ.get("GOOGLE_CLOUD_PROJECT") or None)
    for blob in client.list_blobs(bucket_name, prefix=prefix):
        relative = blob.name[len(prefix) :]
        if relative and not relative.endswith("/"):
            target = local / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            blob.download_to_filename(str(target))
    return local


def latest_version(base: Path, model_name: str, shown: str) -> tuple[int, Path]:
    versions = (
        sorted((int(p.name), p) for p in base.iterdir() if p.is_dir() and p.name.isdigit()) if base.is_dir() else []
    )
    if not versions:
        raise ServingError(
            404,
            f"No versions of servable {model_name} found under base path {shown}. Did you "
            "forget to name your leaf directory as a number (eg. '/1/')?",
        )
    return versions[-1]


class ModelServer:
    """One model, its latest version loaded and warmed up, then served over REST and gRPC."""

    def __init__(self, model_name: str, base_path: str):
        self.model_name = model_name
        self.version, path = latest_version(fetch(base_path), model_name, base_path)
        self.model = SavedModel(path)
        self.warmed = self.model.warm_up()

    def status(self) -> dict:
        return {
            "model_version_status": [
                {
                    "version": str(self.version),
                    "state": "AVAILABLE",
                    "status": {"error_code": "OK", "error_message": ""},
                }
            ]
        }

    def route(self, method: str, path: str, body: bytes) -> tuple[int, dict]:
        match = re.fullmatch(r"/v1/models/([^/:]+)(?:/versions/([0-9]+)|/labels/([^/:]+))?(:predict)?", path)
        if not match:
            return 404, {"error": f"Malformed request: {method} {path}"}
        name, version, _, predict = match.groups()
        if name != self.model_name or (version and int(version) != self.version):
            return 404, {
                "error": f"Servable not found for request: Specific({name}, {version})"
                if version
                else f"Servable not found for request: Latest({name})"
            }
        if not predict:
            if method != "GET":
                return 404, {"error": f"Malformed request: {method} {path}"}
            return 200, self.status()
        if method != "POST":
            return 404, {"error": f"Malformed request: {method} {path}"}
        try:
            parsed = json.loads(body or b"null")
        except ValueError as error:
            return 400, {"error": f"JSON Parse error: {error}"}
        try:
            return 200, self.model.predict_rest(parsed)
        except ServingError as error:
            return error.status, {"error": error.message}

    def rest(self, port: int, host: str = "0.0.0.0") -> ThreadingHTTPServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _answer(self, method):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) if method == "POST" else b""
                status, answer = server.route(method, self.path, body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._answer("GET")

            def do_POST(self):
                self._answer("POST")

        httpd = ThreadingHTTPServer((host, port), Handler)
        httpd.daemon_threads = True
        return httpd

    def grpc(self, port: int, host: str = "0.0.0.0"):
        import grpc
        from tensorflow_serving.apis import get_model_status_pb2, model_service_pb2_grpc, prediction_service_pb2_grpc

        server = self

        class Prediction(prediction_service_pb2_grpc.PredictionServiceServicer):
            def Predict(self, request, context):
                if request.model_spec.name != server.model_name:
                    context.abort(
                        grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({request.model_spec.name})"
                    )
                try:
                    return server.model.predict_proto(request)
                except ServingError as error:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, error.message)

        class Models(model_service_pb2_grpc.ModelServiceServicer):
            def GetModelStatus(self, request, context):
                response = get_model_status_pb2.GetModelStatusResponse()
                status = response.model_version_status.add()
                status.version = server.version
                status.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
                return response

        grpc_server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=8), options=[("grpc.max_receive_message_length", 64 << 20)]
        )
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Prediction(), grpc_server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(Models(), grpc_server)
        if not grpc_server.add_insecure_port(f"{host}:{port}"):
            raise ServingError(500, f"Failed to bind the gRPC port {port} (in use?)")
        return grpc_server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tensorflow_model_server", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8500, help="gRPC port")
    parser.add_argument("--rest_api_port", type=int, default=0, help="REST port (0: no REST API)")
    parser.add_argument("--model_name", default="default")
    parser.add_argument("--model_base_path", required=True)
    args, ignored = parser.parse_known_args(argv)
    if ignored:
        print(f"tensorflow_model_server (stand-in): ignoring {' '.join(ignored)}", file=sys.stderr)
    try:
        server = ModelServer(args.model_name, args.model_base_path)
    except ServingError as error:
        print(f"tensorflow_model_server (stand-in): {error.message}", file=sys.stderr)
        return 1
    print(
        f"Successfully loaded servable version {{name: {args.model_name} version: {server.version}}} "
        f"({server.warmed} warm-up requests)",
        flush=True,
    )
    try:
        grpc_server = server.grpc(args.port)
    except ServingError as error:
        print(f"tensorflow_model_server (stand-in): {error.message}", file=sys.stderr)
        return 1
    grpc_server.start()
    print(f"Running gRPC ModelServer at 0.0.0.0:{args.port} ...", flush=True)
    if args.rest_api_port:
        httpd = server.rest(args.rest_api_port)
        print(f"Exporting HTTP/REST API at:localhost:{args.rest_api_port} ...", flush=True)
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
    with contextlib.suppress(KeyboardInterrupt):
        grpc_server.wait_for_termination()
    return 0


if __name__ == "__main__":
    sys.exit(main())
