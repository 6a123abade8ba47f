"""The build runs the model: a tile of the configured size and an edge tile (its right half
zeros, past the image's edge) go through the exported artifact as its server runs it, and
what comes back must match the declared bands.

- PyTorch: the .mar is unpacked and loaded by TorchServe's own model loader
  (`ts.model_loader.TsModelLoader`, JSON envelope on, as in Vertex AI's prebuilt container),
  in this process: the same handler class, `Context` and envelope code a TorchServe worker
  runs, without the Java frontend in front of it. The request is Earth Engine's JSON body.
- TensorFlow: the SavedModel's serving signature, called as TensorFlow Serving calls it
  (`build_hooks.serving.SavedModelServer`), on the payload format's request.

Checked per tile: the model's raw output (TorchScript's tensor as the handler's `inference`
returns it; for TensorFlow the exported Keras/tf.Module model) has rank 4, as many values
per pixel as the output bands declare, one output pixel per input pixel, and a numeric
dtype; every served band has the shape Earth Engine expects. NaN or Inf values are reported.
"""

from __future__ import annotations

import json
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from build_hooks import earth_engine as ee
from build_hooks.spec import ModelError, ModelSpec


class CheckError(ModelError):
    """The artifact does not answer with the bands the model declares."""


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    """What each tile gave, one line per tile."""
    warnings: list[str] = field(default_factory=list)
    """Problems that do not fail the build (NaN/Inf in the outputs)."""


PROBES = ("tile", "edge tile")
"""The configured tile of reflectance-like values, and a tile at an image's edge: the same
size (Earth Engine's tiles are `inputTileSize`), its right half zeros where there is no
image; the API doc does not settle what Earth Engine sends there, zeros are its fill."""


def _tiles(probe: str, bands: int, size: int, seed: int) -> np.ndarray:
    """One tile [1, bands, size, size]."""
    rng = np.random.default_rng(seed)
    tile = rng.uniform(0.0, 0.5, size=(1, bands, size, size)).astype(np.float32)
    if probe == "edge tile":
        tile[..., size - size // 2 :] = 0.0
    return tile


def check_artifact(spec: ModelSpec, payload_format: str, tile_size: int, artifact: Path) -> Report:
    """Run the probe tiles through the artifact; raise CheckError naming every mismatch."""
    runner = (TorchServeRunner if spec.framework == "pytorch" else SavedModelRunner)(spec, payload_format, artifact)
    report, problems = Report(), []
    try:
        for seed, name in enumerate(PROBES):
            tiles = _tiles(name, len(spec.input_bands), tile_size, seed)
            label = f"{name} {tile_size}x{tile_size}"
            try:
                raw, served = runner.run(tiles)
            except CheckError as error:
                problems.append(f"{label}: {error}")
                continue
            found = _problems(spec, label, tiles, raw, served)
            problems += found
            if not found:
                report.lines.append(
                    f"{label}: " + ", ".join(f"{band} {tuple(v.shape[1:])}" for band, v in served.items())
                    + f" ({raw.dtype})"
                )
                bad = int(np.count_nonzero(~np.isfinite(raw))) if raw.dtype.kind == "f" else 0
                if bad:
                    report.warnings.append(
                        f"{label}: {bad} of {raw.size} output values are NaN or Inf on reflectance-like "
                        "inputs (0-0.5); check the model's normalization"
                    )
    finally:
        runner.close()
    if problems:
        raise CheckError(
            "check: the artifact's answer does not match the declared output bands:\n  " + "\n  ".join(problems)
        )
    return report


def _problems(spec: ModelSpec, label: str, tiles: np.ndarray, raw: np.ndarray, served: dict) -> list[str]:
    """raw: the model's output as [N, y, x, values]; served: {band: decoded array}."""
    layout = "[N, values, y, x]" if spec.framework == "pytorch" else "[N, y, x, values]"
    _, bands, height, width = tiles.shape
    if raw.ndim != 4:
        return [f"{label}: the model returns shape {list(raw.shape)}; allowed: {layout}"]
    declared = spec.output_values
    problems = []
    if raw.shape[-1] != declared:
        listing = ", ".join(f"{b.name} length {b.length}" for b in spec.output_bands)
        problems.append(
            f"{label}: the declared output bands ({listing}) add up to {declared} values per pixel, but the "
            f"model returns {raw.shape[-1]} (output {layout} of shape {_framework_shape(spec, raw)}); "
            f"declare bands whose lengths add up to {raw.shape[-1]}, or change the model"
        )
    if raw.shape[1:3] != (height, width):
        problems.append(
            f"{label}: the model returns {raw.shape[1]}x{raw.shape[2]} pixels for a {height}x{width} tile; "
            "allowed: one output pixel per input pixel (Earth Engine's outputTileSize = inputTileSize)"
        )
    if raw.dtype.kind not in "fiu":
        problems.append(f"{label}: the model returns dtype {raw.dtype}; allowed: a float or integer type")
    if problems:
        return problems
    if isinstance(served, str):
        return [f"{label}: {served}"]
    for band in spec.output_bands:
        want = (1, height, width) if band.dimensions == 0 else (1, height, width, band.length)
        got = served.get(band.name)
        if got is None:
            problems.append(f"{label}: band {band.name!r} is missing from the answer (got {sorted(served)})")
        elif got.shape != want:
            problems.append(f"{label}: band {band.name!r} is served with shape {list(got.shape)}; expected {list(want)}")
    return problems


def _framework_shape(spec: ModelSpec, raw: np.ndarray) -> list[int]:
    shape = list(raw.shape)
    return [shape[0], shape[3], shape[1], shape[2]] if spec.framework == "pytorch" else shape


class TorchServeRunner:
    """model.mar in TorchServe's model loader, in this process."""

    def __init__(self, spec: ModelSpec, payload_format: str, artifact: Path):
        from ts.model_loader import TsModelLoader

        self.spec, self.payload_format = spec, payload_format
        self.outputs = [b.model_dump() for b in spec.output_bands]
        self._tmp = tempfile.TemporaryDirectory(prefix="check-mar-")
        model_dir = Path(self._tmp.name)
        with zipfile.ZipFile(artifact / "model.mar") as mar:
            mar.extractall(model_dir)
        handler = json.loads((model_dir / "MAR-INF/MANIFEST.json").read_text())["model"]["handler"]
        # TorchServe imports the handler by module name from the model's folder.
        self._module = Path(handler).stem
        sys.modules.pop(self._module, None)
        sys.path.insert(0, str(model_dir))
        self._path = str(model_dir)
        self.service = TsModelLoader().load("model", str(model_dir), handler, None, 1, envelope="json")
        self.captured: list = []
        instance = self.service._entry_point.__self__._handle_fn.__self__
        inference = instance.inference

        def capturing(data, *args, **kwargs):
            out = inference(data, *args, **kwargs)
            self.captured.append(out)
            return out

        instance.inference = capturing

    def run(self, tiles: np.ndarray) -> tuple[np.ndarray, dict | str]:
        """(raw output [N, y, x, values], decoded bands or why the handler failed)."""
        from ts.service import Service
        from ts.utils.util import PredictionException

        # The JSON text as Vertex AI passes it on; TorchServe's worker protocol decodes an
        # application/json body before the envelope sees it (ts/protocol/otf_message_handler.py).
        body = json.loads(json.dumps(ee.request_body(self.payload_format, tiles, self.spec.input_bands)))
        batch = [{"requestId": b"check", "parameters": [{"name": "body", "value": body, "contentType": "application/json"}]}]
        _, inputs, _ = Service.retrieve_data_for_inference(batch)
        self.captured.clear()
        failure = None
        try:
            answers = self.service._entry_point(inputs, self.service.context)
        except PredictionException as error:
            failure = f"the handler answers HTTP {error.error_code}: {error.message}"
        except Exception as error:  # noqa: BLE001 - the model failing on a tile is the finding
            failure = f"the model or handler fails: {type(error).__name__}: {str(error).splitlines()[0]}"
        if not self.captured:
            raise CheckError(failure)
        raw = self.captured[-1]
        raw = np.stack([t.numpy() for t in raw]) if isinstance(raw, list) else raw.numpy()
        raw = np.moveaxis(raw, 1, -1) if raw.ndim == 4 else raw
        if failure:
            return raw, failure
        try:
            predictions = json.loads(answers[0])["predictions"]
            return raw, ee.decode_predictions(self.payload_format, predictions, self.outputs)
        except (ValueError, KeyError, TypeError) as error:
            return raw, f"the answer cannot be read as Earth Engine reads it: {error}"

    def close(self) -> None:
        sys.modules.pop(self._module, None)
        if self._path in sys.path:
            sys.path.remove(self._path)
        self._tmp.cleanup()


class SavedModelRunner:
    """The SavedModel's serving signature; the exported model itself for the raw output."""

    def __init__(self, spec: ModelSpec, payload_format: str, artifact: Path):
        from build_hooks.serving import SavedModelServer

        self.spec, self.payload_format = spec, payload_format
        self.outputs = [b.model_dump() for b in spec.output_bands]
        self.server = SavedModelServer(artifact)

    def run(self, tiles: np.ndarray) -> tuple[np.ndarray, dict | str]:
        """(raw output [N, y, x, values], decoded bands or why the signature failed)."""
        fmt, bands = self.payload_format, list(self.spec.input_bands)
        try:
            raw = np.asarray(self.spec.model(np.moveaxis(tiles, 1, -1), training=False))
        except Exception as error:  # noqa: BLE001 - the model failing on a tile is the finding
            raise CheckError(f"the model fails: {type(error).__name__}: {str(error).splitlines()[0]}") from None
        try:
            if fmt == "SERIALIZED_TF_TENSORS":
                body = self.server.predict_json(ee.request_body(fmt, tiles, bands))
                served = ee.decode_predictions(fmt, body["predictions"], self.outputs)
            else:
                served = ee.decode_grpc_outputs(fmt, self.server.predict_tensors(ee.grpc_inputs(fmt, tiles, bands)))
        except Exception as error:  # noqa: BLE001 - reported after the raw output's checks
            served = f"the serving signature fails: {type(error).__name__}: {str(error).splitlines()[0]}"
        return raw, served

    def close(self) -> None:
        pass

