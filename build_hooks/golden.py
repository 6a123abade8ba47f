"""The golden tile: one seeded tile exactly as Earth Engine sends it in the model's payload
format, and the model's own answer to it, computed at build. It lies in the artifact
(`golden.json`, so it is uploaded with it and is part of its sha256) and its own sha256 is
in the manifest; the provider's `eevertex_traffic_split` sends it through the endpoint when
a deployment takes traffic and compares the answer (provider/verification.py).

Deterministic: the same seed, the same model, the same bytes (numbers as float32 text,
sorted keys), so a rebuild gives a byte-identical golden.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from build_hooks import earth_engine as ee
from build_hooks.manifest import GOLDEN_NAME

GOLDEN_FORMAT = 1
SEED = 1701
# Vertex AI may serve on other hardware than the build ran (a GPU, other CPU kernels): the
# answer may differ by rounding, not by a model's worth. Absolute, scaled by the answer's size.
RELATIVE_TOLERANCE = 1e-3


def model_values(spec, channels_last: np.ndarray) -> np.ndarray:
    """The framework model's [N, s, s, values] for tiles [N, s, s, bands] (channels last)."""
    if spec.framework == "pytorch":
        import torch

        with torch.inference_mode():
            values = spec.model(torch.from_numpy(np.ascontiguousarray(np.moveaxis(channels_last, -1, 1)))).numpy()
        return np.moveaxis(values, 1, -1)
    return np.asarray(spec.model(channels_last, training=False))


def golden_text(spec, contract: ee.Contract) -> str:
    """golden.json for this model and contract: the request body Earth Engine sends for one
    seeded tile (a gRPC format: the same tensors as a REST predict body, which is what a
    predict call through Vertex AI's REST API carries), the expected bands and the tolerance."""
    tiles = contract.example_tiles(count=1, seed=SEED)
    (batch,) = contract.requests(tiles)
    expected = contract.expected_outputs(model_values(spec, contract.model_input(tiles)))
    scale = max([1.0] + [float(np.max(np.abs(v))) for v in expected.values() if np.isfinite(v).all()])
    golden = {
        "format_version": GOLDEN_FORMAT,
        "payload_format": contract.payload_format,
        "seed": SEED,
        "request": batch.rest_body().decode(),
        # float32 values as their shortest text ("%.9g"), read back: short and exact.
        "expected": {band: ee.float32_text(values).astype(np.float64).tolist() for band, values in expected.items()},
        "tolerance": float(ee.float32_text(RELATIVE_TOLERANCE * scale)),
    }
    text = json.dumps(golden, indent=None, sort_keys=True, separators=(",", ":"))
    return text + "\n"


def write_golden(spec, contract: ee.Contract, out_dir: Path) -> Path:
    path = out_dir / GOLDEN_NAME
    path.write_text(golden_text(spec, contract))
    return path
