"""The build runs the model: a tile as Earth Engine sends it (tile_size + 2 * input_overlap a
side, array bands as [y, x, N], in the payload format, `build_hooks.earth_engine.Contract`)
and an edge tile (its right half zeros, past the image's edge) go through the exported
artifact as its server runs it, and what comes back must match the declared bands.

- PyTorch, our image: model.pt2 in our server's own `serving.pytorch_server.Model`, in this
  process: the code our image runs behind its HTTP server, on Earth Engine's JSON body.
- PyTorch, a prebuilt image: the .mar is unpacked and loaded by TorchServe's own model loader
  (`ts.model_loader.TsModelLoader`, JSON envelope on, as in Vertex AI's prebuilt container),
  in this process: the same handler class, `Context` and envelope code a TorchServe worker
  runs, without the Java frontend in front of it.
- TensorFlow: the SavedModel's serving signature (in 1/ for our TensorFlow Serving image, at
  the root for a prebuilt one), called as TensorFlow Serving calls it
  (`serving.tf_serving.SavedModel`), on the payload format's request.

Checked per tile: the model's own output (the TorchScript module's tensor inside the
handler; for TensorFlow the exported Keras/tf.Module model), before the servers crop it to
outputTileSize, has rank 4, as many values per pixel as the output bands declare, one output
pixel per input pixel (or the centre outputTileSize already), and a numeric dtype; the
served answer is read as Earth Engine reads it (`Contract.read_predictions`: every band,
outputTileSize a side). NaN or Inf values are reported.
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
size (Earth Engine's tiles are `inputTileSize` + overlap), its right half zeros where there
is no image; the API doc does not settle what Earth Engine sends there, zeros are its fill."""


def _tiles(contract: ee.Contract, probe: str, seed: int) -> dict[str, np.ndarray]:
    """One instance as Earth Engine sends it: {band: [1, s, s] or [1, s, s, k]}."""
    tiles = contract.example_tiles(count=1, seed=seed)
    if probe == "edge tile":
        side = contract.instance_size
        for values in tiles.values():
            values[:, :, side - side // 2 :] = 0.0
    return tiles


RUNNERS = {
    "program": ("ProgramRunner", "", "model.pt2"),
    "mar": ("TorchServeRunner", "", "model.mar"),
    "versioned": ("SavedModelRunner", "1", "SavedModel 1/"),
    "root": ("SavedModelRunner", "", "SavedModel"),
}


def check_artifact(spec: ModelSpec, contract: ee.Contract, artifact: Path, layouts=("program",)) -> Report:
    """Run the probe tiles through every layout of the artifact (`layouts`, see
    `build_hooks.export.export`) as Earth Engine sends them (the contract's tile size,
    overlap, array bands and payload format); raise CheckError naming every mismatch with
    the declared output bands."""
    report = Report()
    problems: list[str] = []
    for layout in sorted(set(layouts)):
        runner_name, sub, shown = RUNNERS[layout]
        runner = globals()[runner_name](spec, contract, artifact / sub if sub else artifact)
        try:
            _probe(spec, contract, runner, shown, report, problems)
        finally:
            runner.close()
    if problems:
        raise CheckError(
            "check: the artifact's answer does not match the declared output bands:\n  " + "\n  ".join(problems)
        )
    return report


def _probe(spec, contract, runner, shown: str, report: Report, problems: list[str]) -> None:
    for seed, name in enumerate(PROBES):
        label = f"{shown}, {name} {contract.sides}"
        try:
            raw, served = runner.run(_tiles(contract, name, seed))
        except CheckError as error:
            problems.append(f"{label}: {error}")
            continue
        found = _problems(spec, contract, label, raw, served)
        problems += found
        if found:
            continue
        report.lines.append(
            f"{label}: " + ", ".join(f"{band} {tuple(v.shape[1:])}" for band, v in served.items()) + f" ({raw.dtype})"
        )
        bad = int(np.count_nonzero(~np.isfinite(raw))) if raw.dtype.kind == "f" else 0
        if bad:
            report.warnings.append(
                f"{label}: {bad} of {raw.size} output values are NaN or Inf on reflectance-like "
                "inputs (0-0.5); check the model's normalization"
            )
        report.warnings += _type_warnings(spec, label, raw)


def _type_warnings(spec: ModelSpec, label: str, raw: np.ndarray) -> list[str]:
    """A band's declared pixel type against what the model returns."""
    if spec.framework != "pytorch" or raw.dtype.kind not in "fiu":
        return []
    warnings = []
    for band in spec.output_bands:
        if band.is_integer and raw.dtype.kind == "f":
            warnings.append(
                f"{label}: band {band.name!r} is declared {band.type} but the model returns {raw.dtype}: "
                "the answer rounds the values to whole numbers"
            )
        elif not band.is_integer and raw.dtype.kind in "iu":
            warnings.append(
                f"{label}: band {band.name!r} is declared {band.type} but the model returns {raw.dtype} "
                f"(a class band?): declare Band(name={band.name!r}, type='uint8') or another integer "
                "type, so that Earth Engine reads whole numbers"
            )
    return warnings


def _problems(spec: ModelSpec, contract: ee.Contract, label: str, raw: np.ndarray, served: dict | str) -> list[str]:
    """raw: the model's own output as [N, y, x, values], before the served crop; served:
    {band: array} as Earth Engine reads it, or why it could not be read."""
    layout = "[N, values, y, x]" if spec.framework == "pytorch" else "[N, y, x, values]"
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
    side, answer = contract.instance_size, contract.answer_size
    # The servers answer the centre outputTileSize of the model's output: the model may
    # answer every input pixel, or that centre itself.
    if raw.shape[1:3] not in ((side, side), (answer, answer)):
        allowed = f"{side}x{side} (one output pixel per input pixel)"
        if answer != side:
            allowed += f" or {answer}x{answer} (the centre outputTileSize)"
        problems.append(
            f"{label}: the model returns {raw.shape[1]}x{raw.shape[2]} pixels for a {side}x{side} tile; "
            f"allowed: {allowed}"
        )
    if raw.dtype.kind not in "fiu":
        problems.append(f"{label}: the model returns dtype {raw.dtype}; allowed: a float or integer type")
    if problems:
        return problems
    if isinstance(served, str):
        return [f"{label}: {served}"]
    return []


def _framework_shape(spec: ModelSpec, raw: np.ndarray) -> list[int]:
    shape = list(raw.shape)
    return [shape[0], shape[3], shape[1], shape[2]] if spec.framework == "pytorch" else shape


def _http_body(batch: ee.Batch) -> bytes:
    """The body of an HTTP format's request (what these runners send)."""
    if batch.body is None:
        raise CheckError(f"payload format {batch.payload_format}: a gRPC format, sent without an HTTP body")
    return batch.body


def _grpc_inputs(batch: ee.Batch) -> dict:
    """The named tensors of a gRPC format's request."""
    if batch.inputs is None:
        raise CheckError(f"payload format {batch.payload_format}: a request with neither a body nor named tensors")
    return batch.inputs


def _model_output(captured: list, failure: str | None) -> np.ndarray:
    """The model's own output for the last request (what a forward hook captured), channels
    last; CheckError with `failure` where the model never answered."""
    import torch

    if not captured:
        raise CheckError(failure)
    raw = captured[-1]
    if not isinstance(raw, torch.Tensor):
        raise CheckError(f"the model returns a {type(raw).__name__}; allowed: one tensor [N, values, y, x]")
    raw = raw.detach().cpu().numpy()
    return np.moveaxis(raw, 1, -1) if raw.ndim == 4 else raw


def _read(contract: ee.Contract, batch: ee.Batch, predictions) -> dict | str:
    """The answer as Earth Engine reads it (shape and bands checked; NaN/Inf are the
    report's warning, not a failure), or why it cannot be read."""
    try:
        return contract.read_predictions(batch, predictions, finite=False)
    except ee.ContractError as error:
        return f"the answer is not what Earth Engine expects: {error}"
    except (ValueError, KeyError, TypeError) as error:
        return f"the answer cannot be read as Earth Engine reads it: {error}"


class ProgramRunner:
    """model.pt2 in our server's `serving.pytorch_server.Model`, in this process."""

    def __init__(self, spec: ModelSpec, contract: ee.Contract, artifact: Path):
        import torch

        from serving.pytorch_server import Model

        self.spec, self.contract = spec, contract
        self.model = Model(artifact, device=torch.device("cpu"))
        # The model's own output, before the server crops it to outputTileSize.
        self.captured: list = []
        module = self.model.module

        def capturing(*args):
            out = module(*args)
            self.captured.append(out)
            return out

        self.model.module = capturing

    def run(self, tiles: dict[str, np.ndarray]) -> tuple[np.ndarray, dict | str]:
        """(raw output [N, y, x, values], decoded bands or why the server refused)."""
        from serving import codec

        (batch,) = self.contract.requests(tiles)
        body = _http_body(batch)
        self.captured.clear()
        failure = None
        try:
            answer = self.model.predict(body)
        except codec.RequestError as error:
            failure = f"the server answers HTTP {error.status}: {error.message}"
        except Exception as error:  # noqa: BLE001 - the model failing on a tile is the finding
            failure = f"the model fails: {type(error).__name__}: {str(error).splitlines()[0]}"
        raw = _model_output(self.captured, failure)
        if failure:
            return raw, failure
        return raw, _read(self.contract, batch, json.loads(answer)["predictions"])

    def close(self) -> None:
        pass


class TorchServeRunner:
    """model.mar in TorchServe's model loader, in this process."""

    def __init__(self, spec: ModelSpec, contract: ee.Contract, artifact: Path):
        from ts.model_loader import TsModelLoader

        self.spec, self.contract = spec, contract
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
        # The model's own output, before the handler crops it to outputTileSize.
        self.captured: list = []
        instance = self.service._entry_point.__self__._handle_fn.__self__
        model = instance.model

        def capturing(*args, **kwargs):
            out = model(*args, **kwargs)
            self.captured.append(out)
            return out

        instance.model = capturing

    def run(self, tiles: dict[str, np.ndarray]) -> tuple[np.ndarray, dict | str]:
        """(raw output [N, y, x, values], decoded bands or why the handler failed)."""
        from ts.service import Service
        from ts.utils.util import PredictionException

        (batch,) = self.contract.requests(tiles)
        # The JSON text as Vertex AI passes it on; TorchServe's worker protocol decodes an
        # application/json body before the envelope sees it (ts/protocol/otf_message_handler.py).
        body = json.loads(_http_body(batch))
        request = [
            {"requestId": b"check", "parameters": [{"name": "body", "value": body, "contentType": "application/json"}]}
        ]
        _, inputs, _ = Service.retrieve_data_for_inference(request)
        self.captured.clear()
        failure = None
        try:
            answers = self.service._entry_point(inputs, self.service.context)
        except PredictionException as error:
            failure = f"the handler answers HTTP {error.error_code}: {error.message}"
        except Exception as error:  # noqa: BLE001 - the model failing on a tile is the finding
            failure = f"the model or handler fails: {type(error).__name__}: {str(error).splitlines()[0]}"
        raw = _model_output(self.captured, failure)
        if failure:
            return raw, failure
        try:
            predictions = json.loads(answers[0])["predictions"]
        except (ValueError, KeyError, TypeError) as error:
            return raw, f"the answer cannot be read as Earth Engine reads it: {error}"
        return raw, _read(self.contract, batch, predictions)

    def close(self) -> None:
        sys.modules.pop(self._module, None)
        if self._path in sys.path:
            sys.path.remove(self._path)
        self._tmp.cleanup()


class SavedModelRunner:
    """The SavedModel as our TensorFlow Serving stand-in serves it (`serving.tf_serving`: the
    REST or gRPC request, its warm-up requests first); the exported model itself for the raw
    output."""

    def __init__(self, spec: ModelSpec, contract: ee.Contract, artifact: Path):
        from serving.tf_serving import SavedModel, ServingError

        self.spec, self.contract = spec, contract
        self.model = SavedModel(artifact)
        try:
            self.model.warm_up()
        except ServingError as error:
            raise CheckError(f"TensorFlow Serving's warm-up request fails: {error.message}") from None

    def run(self, tiles: dict[str, np.ndarray]) -> tuple[np.ndarray, dict | str]:
        """(raw output [N, y, x, values], decoded bands or why the signature failed)."""
        from serving.tf_serving import ServingError

        try:
            raw = np.asarray(self.spec.model(self.contract.model_input(tiles), training=False))
        except Exception as error:  # noqa: BLE001 - the model failing on a tile is the finding
            raise CheckError(f"the model fails: {type(error).__name__}: {str(error).splitlines()[0]}") from None
        (batch,) = self.contract.requests(tiles)
        request = batch.body if batch.body is not None else _grpc_inputs(batch)
        try:
            if isinstance(request, bytes):
                predictions = self.model.predict_rest(json.loads(request))["predictions"]
            else:
                predictions = self.model.call(request)
        except ServingError as error:
            return raw, f"the serving signature fails: {error.message}"
        except Exception as error:  # noqa: BLE001 - reported after the raw output's checks
            return raw, f"the serving signature fails: {type(error).__name__}: {str(error).splitlines()[0]}"
        return raw, _read(self.contract, batch, predictions)

    def close(self) -> None:
        pass
