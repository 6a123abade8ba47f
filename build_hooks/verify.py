"""`python -m build_hooks.verify <config.toml>`: serve the built artifact locally and check
it answers Earth Engine-shaped requests with what the framework model itself computes.

PyTorch: real TorchServe with model.mar, one tile and a batch of tiles, plus a malformed
request that must get a 4xx while the worker stays up. TensorFlow: the SavedModel's
serving signature on the payload format's request.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from build_hooks import earth_engine as ee
from build_hooks.manifest import Manifest, read_manifest
from build_hooks.spec import load_spec
from config.rollout import RolloutConfig, load_config

TOLERANCE = 1e-4


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


def reference(rollout: RolloutConfig, manifest: Manifest, tiles: np.ndarray) -> dict[str, np.ndarray]:
    """The framework model's own answer for tiles [N, bands, y, x]."""
    spec = load_spec(rollout.model.source, rollout.path.parent if rollout.path else None)
    if spec.framework == "pytorch":
        import torch

        with torch.inference_mode():
            values = spec.model(torch.from_numpy(tiles)).numpy()
        values = np.moveaxis(values, 1, -1)
    else:
        values = np.asarray(spec.model(np.moveaxis(tiles, 1, -1), training=False))
    return ee.reference_outputs(values, [b.model_dump() for b in manifest.output_bands])


def compare(name: str, got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> Check:
    for band, expected in want.items():
        if band not in got:
            return Check(name, False, f"band {band!r} missing from the response (got {sorted(got)})")
        if got[band].shape != expected.shape:
            return Check(name, False, f"band {band!r} has shape {got[band].shape}, expected {expected.shape}")
        error = float(np.max(np.abs(got[band] - expected)))
        if error > TOLERANCE:
            return Check(name, False, f"band {band!r} differs by up to {error:.2e}")
    shapes = ", ".join(f"{b} {tuple(v.shape)}" for b, v in got.items())
    return Check(name, True, shapes)


def verify_pytorch(rollout: RolloutConfig, manifest: Manifest, tile: int) -> list[Check]:
    from build_hooks.serving import TorchServe

    fmt = manifest.payload_format
    bands = list(manifest.input_bands)
    outputs = [b.model_dump() for b in manifest.output_bands]
    checks = []
    with TorchServe(rollout.artifact_dir / manifest.artifact_root / "model.mar") as server:
        for count in (1, 4):
            tiles = ee.example_tiles(bands, tile, count=count, seed=count)
            status, body = server.predict(ee.request_body(fmt, tiles, bands))
            if status != 200:
                checks.append(Check(f"{count} tile(s)", False, f"HTTP {status}: {body}"))
                continue
            got = ee.decode_predictions(fmt, body["predictions"], outputs)
            checks.append(compare(f"TorchServe, {fmt}, {count} tile(s) of {tile}x{tile}", got,
                                  reference(rollout, manifest, tiles)))
        pids = server.worker_pids()
        status, body = server.predict({"instances": [[[1.0, 2.0]]]})
        checks.append(Check("malformed request", 400 <= status < 500, f"HTTP {status}: {body}"))
        tiles = ee.example_tiles(bands, 8, count=1)
        status, _ = server.predict(ee.request_body(fmt, tiles, bands))
        checks.append(Check("worker survives", status == 200 and server.worker_pids() == pids,
                            f"HTTP {status}, workers {pids} -> {server.worker_pids()}"))
    return checks


def verify_tensorflow(rollout: RolloutConfig, manifest: Manifest, tile: int) -> list[Check]:
    from build_hooks.serving import SavedModelServer

    fmt = manifest.payload_format
    bands = list(manifest.input_bands)
    outputs = [b.model_dump() for b in manifest.output_bands]
    server = SavedModelServer(rollout.artifact_dir / manifest.artifact_root)
    checks = []
    for count in (1, 4):
        tiles = ee.example_tiles(bands, tile, count=count, seed=count)
        if fmt == "SERIALIZED_TF_TENSORS":
            body = server.predict_json(ee.request_body(fmt, tiles, bands))
            got = ee.decode_predictions(fmt, body["predictions"], outputs)
        else:
            got = ee.decode_grpc_outputs(fmt, server.predict_tensors(ee.grpc_inputs(fmt, tiles, bands)))
        checks.append(compare(f"SavedModel signature, {fmt}, {count} tile(s) of {tile}x{tile}", got,
                              reference(rollout, manifest, tiles)))
    return checks


def verify(rollout: RolloutConfig, tile: int | None = None) -> list[Check]:
    manifest = read_manifest(rollout.artifact_dir)
    tile = tile or manifest.tile_size
    if manifest.framework == "pytorch":
        return verify_pytorch(rollout, manifest, tile)
    return verify_tensorflow(rollout, manifest, tile)


def main(argv: list[str]) -> int:
    failed = 0
    for path in argv or ["rollout.toml"]:
        rollout = load_config(path)
        print(f"verify {path} ({rollout.model.name}):")
        for check in verify(rollout):
            print(f"  {'ok  ' if check.ok else 'FAIL'} {check.name}: {check.detail}")
            failed += not check.ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
