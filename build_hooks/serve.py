"""`python -m build_hooks.serve [CONFIG]`: serve the built artifact on 127.0.0.1 as Vertex AI
would serve it on the config's first target, print where and a sample Earth Engine request,
until Ctrl-C.

- Our image (the default): the image itself, run from its built layout with the AIP_*
  variables set and AIP_STORAGE_URI the artifact folder (`serving.local.Container`).
- A prebuilt PyTorch image: TorchServe with model.mar, JSON envelope on, predict at
  /predictions/model (`serving.local.TorchServe`).
- A prebuilt TensorFlow image: our TensorFlow Serving stand-in on the SavedModel
  (`serving.tf_serving`).
Earth Engine sends the GRPC_* formats over gRPC; the sample holds the same tensors in
TensorFlow Serving's REST encoding.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from build_hooks import earth_engine as ee
from build_hooks.manifest import SHORT_SHA, Manifest, ManifestError, read_manifest, verify_artifact
from config.rollout import ConfigError, RolloutConfig, load_config
from serving.image import ImageError, local_image
from serving.local import Container, TorchServe, free_port, http_json


@dataclass
class Served:
    """A server answering like the target's container: where to POST, and what it is."""

    url: str
    description: str
    process: object

    def predict(self, body: bytes) -> tuple[int, dict | str]:
        return http_json(self.url, body)


@contextlib.contextmanager
def served(rollout: RolloutConfig, manifest: Manifest, target_index: int = 0):
    """The artifact served as on the config's target (our image, or a prebuilt image's server)."""
    target = rollout.targets[target_index]
    artifact = rollout.artifact_dir / manifest.artifact_root
    own = rollout.own_image(target)
    if own is not None:
        image = manifest.serving_image(own.name)
        if image is None:
            raise ManifestError(
                f"model.artifact_dir: no {own.name} image recorded in the manifest; build again (`nox -s build`)"
            )
        with Container(
            local_image(image),
            storage_uri="/artifact",
            mounts={str(artifact): "/artifact"},
            predict_route=own.predict_route,
            health_route=own.health_route,
            env=dict(rollout.model.env),
        ) as container:
            yield Served(container.url + own.predict_route, f"our image {image.name}@{image.digest[:19]}", container)
        return
    if rollout.model.framework == "pytorch":
        with TorchServe(artifact / "model.mar") as server:
            yield Served(f"{server.url}/predictions/model", "TorchServe (as the prebuilt image runs it)", server)
        return
    with _tf_serving(artifact) as url:
        yield Served(url, "our TensorFlow Serving stand-in (as the prebuilt image runs TensorFlow Serving)", None)


@contextlib.contextmanager
def _tf_serving(saved_model: Path):
    """serving.tf_serving on a SavedModel at the artifact's root (a prebuilt tf2 image's layout)."""
    base = Path(tempfile.mkdtemp(prefix="tf-serving-"))
    (base / "1").symlink_to(saved_model.resolve())
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "serving.tf_serving",
            f"--port={free_port()}",
            f"--rest_api_port={port}",
            "--model_name=model",
            f"--model_base_path={base}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert process.stderr is not None  # stderr=subprocess.PIPE
    try:
        deadline = time.monotonic() + 120
        while http_ok(f"http://127.0.0.1:{port}/v1/models/model") is False:
            if process.poll() is not None or time.monotonic() > deadline:
                log = process.stderr.read().decode()[-1500:]
                raise ImageError(f"TensorFlow Serving (stand-in) did not start: {log}")
            time.sleep(0.3)
        yield f"http://127.0.0.1:{port}/v1/models/model:predict"
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(base, ignore_errors=True)


def http_ok(url: str) -> bool:
    try:
        return http_json(url, timeout=2)[0] == 200
    except OSError:
        return False


def _announce(manifest: Manifest, contract: ee.Contract, url: str, request: Path, server: str, log) -> None:
    size, side = request.stat().st_size, contract.instance_size
    log(
        f"serving {manifest.model_name} (artifact {manifest.sha256[:SHORT_SHA]}, {manifest.framework}, "
        f"{manifest.payload_format}) with {server}"
    )
    log(f"  predict: POST {url}")
    log(
        f"  sample:  one {side}x{side} tile of {', '.join(manifest.input_bands)} "
        f"as Earth Engine sends {manifest.payload_format} ({size / 1e6:.2f} MB; at most "
        f"{contract.max_payload_bytes / 1e6:.2f} MB per request, the config's max_payload_bytes)"
    )
    log(f"  try:     curl -s -H 'Content-Type: application/json' --data @{request} {url} | head -c 400; echo")
    log("Ctrl-C stops the server")


def serve(config_path: str, *, log=print) -> int:
    rollout = load_config(config_path)
    manifest = read_manifest(rollout.artifact_dir)
    verify_artifact(rollout.artifact_dir, manifest)
    folder = Path(tempfile.mkdtemp(prefix="ee-request-"))
    # Ctrl-C and a plain kill both stop the server cleanly (also where the shell started us
    # in the background with SIGINT ignored).
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.default_int_handler)
    try:
        contract = ee.Contract.from_config(rollout.model, manifest)
        request = folder / "request.json"
        (batch,) = contract.requests(contract.example_tiles(count=1, seed=1))
        request.write_bytes(batch.rest_body())
        with served(rollout, manifest) as server:
            _announce(manifest, contract, server.url, request, server.description, log)
            while True:
                time.sleep(0.5)
    except KeyboardInterrupt:
        return 0
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        log("stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m build_hooks.serve", description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default="rollout.toml", help="rollout config (default rollout.toml)")
    args = parser.parse_args(argv)
    try:
        return serve(args.config, log=lambda line: print(line, flush=True))
    except (ConfigError, ManifestError, ImageError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
