"""`python -m build_hooks.serve [CONFIG]`: serve the built artifact on 127.0.0.1 as Vertex AI's
prebuilt container would, print where and a sample Earth Engine request, until Ctrl-C.

- PyTorch: TorchServe with model.mar, JSON envelope on, predict at /predictions/model
  (`build_hooks.serving.TorchServe`).
- TensorFlow: TensorFlow Serving's REST predict at /v1/models/model:predict
  (`build_hooks.tf_http`). Earth Engine sends the GRPC_* formats over gRPC; the sample holds
  the same tensors in TensorFlow Serving's REST encoding.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from build_hooks import earth_engine as ee
from build_hooks.manifest import SHORT_SHA, Manifest, ManifestError, read_manifest, verify_artifact
from config.rollout import ConfigError, load_config


def sample_body(contract: ee.Contract, tiles: dict[str, np.ndarray]) -> bytes:
    """The predict body for the tiles: Earth Engine's own for the HTTP formats, TensorFlow
    Serving's REST encoding of the gRPC tensors for the others."""
    (batch,) = contract.requests(tiles)
    return batch.rest_body()


def _announce(manifest: Manifest, contract: ee.Contract, url: str, request: Path, server: str, log) -> None:
    size, side = request.stat().st_size, contract.instance_size
    log(f"serving {manifest.model_name} (artifact {manifest.sha256[:SHORT_SHA]}, {manifest.framework}, "
        f"{manifest.payload_format}) with {server}")
    log(f"  predict: POST {url}")
    log(f"  sample:  one {side}x{side} tile of {', '.join(manifest.input_bands)} "
        f"as Earth Engine sends {manifest.payload_format} ({size / 1e6:.2f} MB; at most "
        f"{contract.max_payload_bytes / 1e6:.2f} MB per request, the config's max_payload_bytes)")
    log(f"  try:     curl -s -H 'Content-Type: application/json' --data @{request} {url} | head -c 400; echo")
    log("Ctrl-C stops the server")


def serve(config_path: str, *, log=print) -> int:
    rollout = load_config(config_path)
    manifest = read_manifest(rollout.artifact_dir)
    verify_artifact(rollout.artifact_dir, manifest)
    artifact = rollout.artifact_dir / manifest.artifact_root
    folder = Path(tempfile.mkdtemp(prefix="ee-request-"))
    # Ctrl-C and a plain kill both stop the server cleanly (also where the shell started us
    # in the background with SIGINT ignored).
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.default_int_handler)
    try:
        contract = ee.Contract.from_config(rollout.model, manifest)
        request = folder / "request.json"
        request.write_bytes(sample_body(contract, contract.example_tiles(count=1, seed=1)))
        if manifest.framework == "pytorch":
            return _serve_torch(manifest, contract, artifact, request, log)
        return _serve_tensorflow(manifest, contract, artifact, request, log)
    except KeyboardInterrupt:
        return 0
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        log("stopped")


def _serve_torch(manifest: Manifest, contract: ee.Contract, artifact: Path, request: Path, log) -> int:
    from serving.local import TorchServe

    with TorchServe(artifact / "model.mar") as server:
        _announce(manifest, contract, f"{server.url}/predictions/model", request, "TorchServe", log)
        while server.process.poll() is None:
            time.sleep(0.5)
        log(f"TorchServe exited ({server.process.returncode}):\n{server.output()}")
        return 1


def _serve_tensorflow(manifest: Manifest, contract: ee.Contract, artifact: Path, request: Path, log) -> int:
    from http.server import ThreadingHTTPServer

    from serving.local import SavedModelServer
    from build_hooks.tf_http import make_handler

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(SavedModelServer(artifact)))
    try:
        url = f"http://127.0.0.1:{httpd.server_port}/v1/models/model:predict"
        _announce(manifest, contract, url, request, "TensorFlow Serving's REST API (build_hooks.tf_http)", log)
        httpd.serve_forever()
    finally:
        httpd.server_close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m build_hooks.serve", description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default="rollout.toml", help="rollout config (default rollout.toml)")
    args = parser.parse_args(argv)
    try:
        return serve(args.config, log=lambda line: print(line, flush=True))
    except (ConfigError, ManifestError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
