"""The built SavedModel answers requests encoded exactly as Google's TensorFlow notebooks
encode them, over HTTP (TensorFlow Serving's REST predict) and gRPC (PredictionService/
Predict), served by our TensorFlow Serving stand-in (serving/tf_serving.py) as TensorFlow
Serving serves `<base>/<version>/`.

The encoder here is written from the notebooks (earthengine-community, guides/linked:
Earth_Engine_TensorFlow_Vertex_AI.ipynb, Earth_Engine_Vertex_AI_training_demo.ipynb,
Earth_Engine_TensorFlow_tree_counting_model.ipynb), not from build_hooks.earth_engine: the
model decodes each band with `tf.map_fn(lambda x: tf.io.parse_tensor(x, tf.float32),
tf.io.decode_base64(v))` and concatenates the bands on axis 3, so each instance's band is a
web-safe base64 `tf.io.serialize_tensor` of [y, x, 1] (an array band: [y, x, N]); outputs
come back as `tf.io.encode_base64(tf.io.serialize_tensor(x))` per instance.
"""

from __future__ import annotations

import base64
import json
import threading

import numpy as np
import pytest
from conftest import config_in, example_data

from build_hooks.build import build
from build_hooks.spec import load_factory
from serving.local import free_port, http_json
from serving.tf_serving import ModelServer

tf = pytest.importorskip("tensorflow")
pytestmark = pytest.mark.slow


def google_encode(array) -> str:
    """What Earth Engine sends per band and instance, per Google's notebooks."""
    return tf.io.encode_base64(tf.io.serialize_tensor(tf.constant(array, tf.float32))).numpy().decode()


def google_decode(text) -> np.ndarray:
    """How Google's notebooks' outputs read back: web-safe base64 of a serialized tensor."""
    return tf.io.parse_tensor(tf.io.decode_base64(text), tf.float32).numpy()


class Served:
    """The stand-in's REST and gRPC servers on an artifact, in this process."""

    def __init__(self, artifact):
        self.server = ModelServer("model", str(artifact))
        self.httpd = self.server.rest(free_port(), host="127.0.0.1")
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.grpc_port = free_port()
        self.grpc_server = self.server.grpc(self.grpc_port, host="127.0.0.1")
        self.grpc_server.start()

    def rest(self, body: dict | bytes) -> tuple[int, dict]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return http_json(f"http://127.0.0.1:{self.httpd.server_port}/v1/models/model:predict", data)

    def grpc(self, inputs: dict) -> dict[str, np.ndarray]:
        import grpc
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

        request = predict_pb2.PredictRequest()
        request.model_spec.name = "model"
        for name, value in inputs.items():
            value = (
                [v.encode() if isinstance(v, str) else v for v in value]
                if getattr(value, "dtype", None) == np.dtype(object)
                else value
            )
            request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
        with grpc.insecure_channel(f"127.0.0.1:{self.grpc_port}") as channel:
            response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=60)
        return {k: tf.make_ndarray(v) for k, v in response.outputs.items()}

    def close(self):
        self.httpd.shutdown()
        self.grpc_server.stop(None)


def served(config, manifest) -> Served:
    return Served(config.artifact_dir / manifest.artifact_root)


def text(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else v for v in values]


@pytest.fixture(scope="module")
def array_band_model(tmp_path_factory):
    """Tree-counting-like: one [y, x, 3] array band, 8x8 tiles with 4 pixels of overlap."""
    data = example_data("tensorflow")
    data["model"].update(
        source="tests.contract_models:keras_array_band",
        input_bands=["array_image"],
        input_shapes={"array_image": 3},
        tile_size=8,
        input_overlap=4,
    )
    config = config_in(tmp_path_factory.mktemp("array-band"), data)
    manifest = build(config, log=lambda *_: None)
    spec = load_factory(config.model.source)()
    server = served(config, manifest)
    yield server, spec
    server.close()


def test_array_band_over_http_in_googles_encoding(array_band_model):
    server, spec = array_band_model
    rng = np.random.default_rng(5)
    tiles = rng.uniform(-1, 1, size=(2, 16, 16, 3)).astype(np.float32)  # 8 + 2 x 4 overlap
    status, body = server.rest({"instances": [{"array_image": google_encode(t)} for t in tiles]})
    assert status == 200, body
    full = np.asarray(spec.model(tiles, training=False))
    for i, prediction in enumerate(body["predictions"]):
        segmentation = google_decode(prediction["segmentation"])
        density = google_decode(prediction["density"])
        assert segmentation.shape == (8, 8, 1) and density.shape == (8, 8)  # the centre outputTileSize
        np.testing.assert_allclose(segmentation[..., 0], full[i, 4:12, 4:12, 0], atol=1e-5)
        np.testing.assert_allclose(density, full[i, 4:12, 4:12, 1], atol=1e-5)


def test_array_band_over_grpc_in_googles_encoding(array_band_model):
    server, spec = array_band_model
    tiles = np.random.default_rng(6).uniform(-1, 1, size=(3, 16, 16, 3)).astype(np.float32)
    outputs = server.grpc({"array_image": np.asarray([google_encode(t) for t in tiles], dtype=object)})
    full = np.asarray(spec.model(tiles, training=False))
    got = np.stack([google_decode(v) for v in text(outputs["segmentation"])])
    np.testing.assert_allclose(got[..., 0], full[:, 4:12, 4:12, 0], atol=1e-5)


def test_wrong_array_band_length_is_refused(array_band_model):
    server, _ = array_band_model
    status, body = server.rest({"instances": [{"array_image": google_encode(np.zeros((16, 16, 2)))}]})
    assert status == 400 and set(body) == {"error"}


@pytest.mark.parametrize(
    "encode",
    [
        lambda t: google_encode(t[..., None]),  # [y, x, 1], web-safe, padded: Google's notebooks
        lambda t: google_encode(t),  # [y, x]
        lambda t: base64.b64encode(tf.io.serialize_tensor(t[..., None]).numpy()).decode(),  # standard alphabet
        lambda t: google_encode(t[..., None]).rstrip("="),  # no padding
    ],
    ids=["y-x-1", "y-x", "standard-base64", "unpadded"],
)
def test_scalar_bands_in_every_plausible_encoding(tf_build, encode):
    config, manifest = tf_build
    server = served(config, manifest)
    spec = load_factory(config.model.source)()
    tiles = np.random.default_rng(7).uniform(0, 0.5, size=(2, 12, 12, 6)).astype(np.float32)
    bands = list(manifest.input_bands)
    inputs = {b: np.asarray([encode(t[..., i]) for t in tiles], dtype=object) for i, b in enumerate(bands)}
    outputs = server.grpc(inputs)
    want = np.asarray(spec.model(tiles, training=False))
    np.testing.assert_allclose(np.stack([google_decode(v) for v in text(outputs["probabilities"])]), want, atol=1e-5)
    status, body = server.rest({"instances": [{b: inputs[b][i] for b in bands} for i in range(2)]})
    server.close()
    assert status == 200, body
    np.testing.assert_allclose(np.stack([google_decode(v) for v in body["predictions"]]), want, atol=1e-5)


def test_grpc_tf_tensors_accept_y_x_and_y_x_1(tmp_path):
    data = example_data("tensorflow")
    data["model"].update(payload_format="GRPC_TF_TENSORS", tile_size=8)
    config = config_in(tmp_path, data)
    manifest = build(config, log=lambda *_: None)
    server = served(config, manifest)
    spec = load_factory(config.model.source)()
    tiles = np.random.default_rng(8).uniform(0, 0.5, size=(2, 8, 8, 6)).astype(np.float32)
    want = np.asarray(spec.model(tiles, training=False))
    for shape in ((2, 8, 8), (2, 8, 8, 1)):
        inputs = {b: tiles[..., i].reshape(shape) for i, b in enumerate(spec.input_bands)}
        np.testing.assert_allclose(server.grpc(inputs)["probabilities"], want, atol=1e-5)
    server.close()


@pytest.mark.parametrize(
    "body",
    [{"instances": []}, {"inputs": []}, {"images": []}, b"{not json", [1]],
    ids=["empty", "empty-inputs", "no-instances", "not-json", "not-an-object"],
)
def test_malformed_bodies_get_400_with_tensorflow_servings_error(tf_build, body):
    config, manifest = tf_build
    server = served(config, manifest)
    status, answer = server.rest(body)
    server.close()
    assert status == 400 and set(answer) == {"error"} and answer["error"]


def test_model_status_and_unknown_models_as_tensorflow_serving_answers(tf_build):
    config, manifest = tf_build
    server = served(config, manifest)
    port = server.httpd.server_port
    status, answer = http_json(f"http://127.0.0.1:{port}/v1/models/model")
    assert status == 200 and answer == {
        "model_version_status": [
            {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]
    }
    assert http_json(f"http://127.0.0.1:{port}/v1/models/model/versions/2")[0] == 404
    status, answer = http_json(f"http://127.0.0.1:{port}/v1/models/other:predict", b'{"instances": [1]}')
    server.close()
    assert status == 404 and answer == {"error": "Servable not found for request: Latest(other)"}


def test_no_version_folder_is_tensorflow_servings_error(tmp_path):
    from serving.tf_serving import ServingError

    with pytest.raises(ServingError, match="No versions of servable model found under base path"):
        ModelServer("model", str(tmp_path))


@pytest.mark.parametrize("fmt", ["GRPC_SERIALIZED_TF_TENSORS", "GRPC_SERIALIZED_TF_EXAMPLES", "GRPC_TF_TENSORS"])
def test_simulator_batches_over_grpc_and_rest(tmp_path, fmt):
    """The rehearsal's way: Contract batches sent as gRPC tensors, and as the same request
    in TF Serving's REST encoding (a REST-only emulator), checked by read_predictions."""
    from build_hooks import earth_engine as ee
    from build_hooks.verify import reference

    data = example_data("tensorflow")
    data["model"].update(payload_format=fmt, tile_size=8, max_payload_bytes=5_000)
    config = config_in(tmp_path, data)
    manifest = build(config, log=lambda *_: None)
    server = served(config, manifest)
    contract = ee.Contract.from_config(config.model, manifest)
    tiles = contract.example_tiles(count=7, seed=2)
    want = reference(config, contract, tiles)["probabilities"]
    batches = contract.requests(tiles)
    assert len(batches) > 1  # 5 kB holds a few 8x8 tiles, not seven
    for batch in batches:
        rows = slice(batch.first, batch.first + batch.count)
        outputs = {k: text(v) if v.dtype == object else v for k, v in server.grpc(batch.inputs).items()}
        grpc = contract.read_predictions(batch, outputs)["probabilities"]
        status, answer = server.rest(batch.rest_body())
        assert status == 200, answer
        rest = contract.read_predictions(batch, answer["predictions"])["probabilities"]
        np.testing.assert_allclose(grpc, want[rows], atol=1e-5)
        np.testing.assert_allclose(rest, want[rows], atol=1e-5)
    server.close()
