"""Our serving images, built and run here for real: reproducible (the same inputs give the
same digest), Vertex AI's custom-container contract (AIP_* variables, artifacts fetched from
AIP_STORAGE_URI by the container, healthy only once the model has answered a warm-up tile,
1.5 MB bodies, a non-root user), and Earth Engine's requests answered, malformed ones refused.

Needs an OCI builder (buildah, podman or docker) and mmdebstrap where the pinned base cannot
be pulled; skipped, saying so, where the machine has none (`.ci/run` installs them)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from serving_support import body, export, tile
from test_requests import MALFORMED, check_refusal

from build_hooks import earth_engine as ee
from config.images import OWN_IMAGES
from serving import image as images
from serving.local import Container, http_json

pytestmark = pytest.mark.slow


def _require_builder():
    try:
        images.builder(), images._skopeo()
    except images.ImageError as error:
        pytest.skip(f"SKIPPED: {error}")


@pytest.fixture(scope="session")
def pytorch_image():
    _require_builder()
    return images.build_image(OWN_IMAGES[("pytorch", "cpu")], log=lambda *_: None)


@pytest.fixture(scope="session")
def tf_image():
    _require_builder()
    return images.build_image(OWN_IMAGES[("tensorflow", "cpu")], log=lambda *_: None)


def layout_ref(image) -> str:
    return images.local_image(image)


@pytest.fixture(scope="module")
def storage(tmp_path_factory):
    """A GCS emulator (the real client writes to it; the container reads with its own)."""
    from rehearsal.emulators import Emulators

    with Emulators(tmp_path_factory.mktemp("emulators"), serving=False) as emulators:
        yield emulators


def upload(storage, folder: Path, prefix: str) -> str:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage as gcs

    client = gcs.Client(
        project="p", credentials=AnonymousCredentials(), client_options={"api_endpoint": storage.gcs_url}
    )
    bucket = client.lookup_bucket("images-test") or client.create_bucket("images-test")
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        bucket.blob(f"{prefix}/{path.relative_to(folder).as_posix()}").upload_from_filename(str(path))
    return f"gs://images-test/{prefix}/"


@pytest.fixture(scope="module")
def served(pytorch_image, storage, tmp_path_factory):
    """Our PyTorch image serving a small model from AIP_STORAGE_URI (gs://, the GCS emulator)."""
    folder = export(tmp_path_factory.mktemp("artifact"))
    uri = upload(storage, folder, "pixel-sum")
    with Container(
        layout_ref(pytorch_image),
        storage_uri=uri,
        predict_route="/predict",
        health_route="/health",
        env={"STORAGE_EMULATOR_HOST": storage.gcs_url},
    ) as container:
        yield container


def test_the_same_inputs_give_the_same_digest(pytorch_image, tmp_path, monkeypatch):
    """A second build from nothing but the same inputs (the wheels and the Debian base tar,
    the same bytes a clean clone downloads and makes) gives the same image digest."""
    fresh = tmp_path / "images"
    shared = images.images_dir()
    (fresh / "base").mkdir(parents=True)
    for name in ("wheels",):
        shutil.copytree(shared / name, fresh / name, copy_function=os.link)
    for tar in (shared / "base").glob("*.tar"):
        os.link(tar, fresh / "base" / tar.name)
    monkeypatch.setenv("EEV_IMAGES_DIR", str(fresh))
    again = images.build_image(OWN_IMAGES[("pytorch", "cpu")], log=lambda *_: None)
    assert again.digest == pytorch_image.digest
    assert again.layout != pytorch_image.layout  # really built again, not found


def test_a_layout_under_a_path_with_capitals_runs(pytorch_image, tmp_path):
    """A checkout at /tmp/tmp.AbC/ (mktemp's names) keeps its layouts there: the image is copied
    into the builder's store under our own lower-case name, since `oci:<path>` would be named
    after the path, which containers/image refuses ("repository name must be lowercase")."""
    layout = tmp_path / "Checkout.AbC" / "build" / "Images"
    shutil.copytree(images.ROOT / pytorch_image.layout, layout, copy_function=os.link)
    moved = pytorch_image.model_copy(update={"name": "ee-serving-case-check", "layout": str(layout)})
    name = images.local_image(moved)
    tool = images.builder()
    try:
        assert name == f"localhost/ee-serving-case-check:{pytorch_image.digest[7:39]}"
        assert images.image_exists(tool, name)
        assert images.local_image(moved) == name  # found, not copied again
    finally:
        subprocess.run([tool.path, "rmi", name], capture_output=True)


def test_the_image_runs_as_a_non_root_user(pytorch_image):
    config = json.loads((images.ROOT / pytorch_image.layout / "index.json").read_text())
    manifest_digest = config["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads((images.ROOT / pytorch_image.layout / "blobs" / "sha256" / manifest_digest).read_text())
    image_config = json.loads(
        (
            images.ROOT / pytorch_image.layout / "blobs" / "sha256" / manifest["config"]["digest"].split(":")[1]
        ).read_text()
    )
    assert image_config["config"]["User"] == "10001:10001"
    assert image_config["created"].startswith("1970-01-01")  # buildah --timestamp 0


def test_the_server_process_is_not_root(served):
    from serving.local import _descendants

    uids = set()
    for pid in _descendants(served.process.pid):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        if "serving.model_server" in argv and "buildah" not in argv[0]:
            uids.add(next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:")))
    assert uids == {"10001"}


def test_it_fetched_the_artifact_from_aip_storage_uri_and_answered_a_warm_up_tile(served):
    log = served.output(200)
    assert "loaded from gs://images-test/pixel-sum/" in log
    # Healthy only after the warm-up: the first health check answered 200 comes after it.
    assert log.index("warm-up tile") < log.index('"GET /health HTTP/1.1" 200')


def test_earth_engine_tiles_are_answered(served):
    tiles = tile(4, seed=3)
    status, answer = served.predict(body(tiles.tolist()))
    assert status == 200
    np.testing.assert_allclose(np.asarray(answer["predictions"]), tiles.sum(axis=1), rtol=1e-6)


@pytest.mark.parametrize("case,request_body,status,message", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_the_malformed_requests_get_a_4xx_from_the_image(served, case, request_body, status, message):
    import urllib.request

    request = urllib.request.Request(
        served.url + "/predict", data=request_body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            got_status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        got_status, text = error.code, error.read().decode()
    check_refusal(got_status, text, status, message)


def test_a_body_of_max_payload_bytes_is_accepted_and_one_byte_more_refused(served):
    tiles = json.dumps(tile(1).tolist()[0], separators=(",", ":"))
    head, tail = '{"instances":[', "]}"
    count = (1_500_000 - len(head) - len(tail) + 1) // (len(tiles) + 1)
    text = head + ",".join([tiles] * count) + tail
    text = text[:-2] + " " * (1_500_000 - len(text)) + text[-2:]  # padded to exactly 1,500,000 bytes
    assert len(text) == 1_500_000
    status, answer = served.predict(text.encode())
    assert status == 200, str(answer)[:200]
    status, answer = served.predict((text[:-2] + " " + text[-2:]).encode())
    assert status == 413 and "1,500,001 bytes, over maxPayloadBytes 1,500,000" in answer["error"]


def test_a_model_that_fails_its_warm_up_is_never_healthy(pytorch_image, tmp_path):
    import torch

    class Broken(torch.nn.Module):
        def forward(self, x):
            return x[:, :1, :2]  # the wrong size: the warm-up answer does not fit the contract

    folder = export(tmp_path, Broken())
    folder.chmod(0o755)  # the container's user (10001) reads the mounted folder
    # One worker process: its failed start ends the server (with several, uvicorn restarts
    # each failed worker, and the container is never healthy either).
    with (
        pytest.raises(images.ImageError, match="exited .* before it was healthy") as refused,
        Container(
            layout_ref(pytorch_image),
            storage_uri="/artifact",
            mounts={str(folder): "/artifact"},
            predict_route="/predict",
            health_route="/health",
            env={"VERTEX_CPR_WEB_CONCURRENCY": "1"},
        ),
    ):
        pass
    assert "the model answered shape [1, 1, 2, 8]; the artifact declares [N, 1, 8, 8]" in str(refused.value)


def test_an_empty_storage_uri_is_never_healthy(pytorch_image, tmp_path):
    tmp_path.chmod(0o755)
    with (
        pytest.raises(images.ImageError, match="holds no model.pt2, ee_contract.json"),
        Container(
            layout_ref(pytorch_image),
            storage_uri="/artifact",
            mounts={str(tmp_path): "/artifact"},
            predict_route="/predict",
            health_route="/health",
            env={"VERTEX_CPR_WEB_CONCURRENCY": "1"},
        ),
    ):
        pass


# -- the TensorFlow image: TensorFlow Serving (here its stand-in base) -------------------


@pytest.fixture(scope="module")
def tf_served(tf_image, tf_build, storage):
    config, manifest = tf_build
    uri = upload(storage, config.artifact_dir / manifest.artifact_root, "keras")
    with Container(
        layout_ref(tf_image),
        storage_uri=uri,
        predict_route="/v1/models/model:predict",
        health_route="/v1/models/model",
        env={"STORAGE_EMULATOR_HOST": storage.gcs_url},
    ) as container:
        yield config, manifest, container


def test_tensorflow_image_serves_rest_after_its_warm_up(tf_served):
    config, manifest, container = tf_served
    assert "(1 warm-up requests)" in container.output(100)
    status, answer = http_json(container.url + "/v1/models/model")
    assert status == 200 and answer["model_version_status"][0]["state"] == "AVAILABLE"
    contract = ee.Contract.from_config(config.model, manifest)
    tiles = contract.example_tiles(count=1, seed=11)
    (batch,) = contract.requests(tiles)
    status, answer = container.predict(batch.rest_body())
    assert status == 200, answer
    from build_hooks.verify import reference

    got = contract.read_predictions(batch, answer["predictions"])
    np.testing.assert_allclose(got["probabilities"], reference(config, contract, tiles)["probabilities"], atol=1e-5)


def test_tensorflow_image_serves_earth_engines_grpc_request(tf_served):
    """GRPC_SERIALIZED_TF_TENSORS: one TensorFlow Serving PredictRequest, a DT_STRING tensor per band."""
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    config, manifest, container = tf_served
    contract = ee.Contract.from_config(config.model, manifest)
    tiles = contract.example_tiles(count=1, seed=12)
    (batch,) = contract.requests(tiles)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "model"
    for name, value in batch.inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto([v.encode() for v in value]))
    with grpc.insecure_channel(f"127.0.0.1:{container.grpc_port}") as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=60)
    outputs = {k: tf.make_ndarray(v) for k, v in response.outputs.items()}
    got = contract.read_predictions(batch, {k: [x.decode() for x in v] for k, v in outputs.items()})
    from build_hooks.verify import reference

    np.testing.assert_allclose(got["probabilities"], reference(config, contract, tiles)["probabilities"], atol=1e-5)


def test_tensorflow_image_errors_are_tensorflow_servings(tf_served):
    _, _, container = tf_served
    status, answer = container.predict(b'{"instances": [{"B2": "not base64 tensor"}]}')
    assert 400 <= status < 500 and set(answer) == {"error"}
    status, answer = http_json(container.url + "/v1/models/other")
    assert status == 404 and "Servable not found" in answer["error"]
