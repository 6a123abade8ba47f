"""The `ee.Model.fromVertexAi` call Earth Engine makes to a target's endpoint: its arguments, checked
against the built artifact, and their one rendering as Python (the snippet the endpoint stack outputs)."""

from __future__ import annotations

from build_hooks.manifest import Manifest, ManifestError
from config import payload
from config.rollout import RolloutConfig


def from_vertex_ai_args(rollout: RolloutConfig, manifest: Manifest, endpoint_name: str) -> dict:
    """The `ee.Model.fromVertexAi` keyword arguments (earthengine-api python/ee/model.py)
    that make Earth Engine send what the artifact serves: each output band's pixel type is
    the one the served model writes it in (`Band.type`, float unless declared otherwise)."""
    model = rollout.model
    if manifest.tile_size != model.tile_size:
        raise ManifestError(
            f"model.tile_size: the artifact was built for {manifest.tile_size} but the config says "
            f"{model.tile_size}; rebuild with `nox -s build`"
        )
    if model.input_bands and tuple(model.input_bands) != tuple(manifest.input_bands):
        raise ManifestError(
            f"model.input_bands: the config says {list(model.input_bands)} but the built model reads "
            f"{list(manifest.input_bands)}; allowed: the model's bands, in its order"
        )
    if not model.bands:
        # A custom source without input_bands: the bands are known only now, from the build.
        lengths = {b: model.input_shapes.get(b, 1) for b in manifest.input_bands}
        try:
            payload.check_budget(
                model.payload_format.value, lengths, model.tile_size, model.input_overlap, model.max_payload_bytes
            )
        except payload.PayloadTooLarge as error:
            raise ManifestError(
                f"model: {error} (set model.input_bands to have this checked before the build)"
            ) from None
    args: dict[str, object] = {
        "endpoint": endpoint_name,
        "payloadFormat": model.payload_format.value,
        "inputTileSize": [model.tile_size, model.tile_size],
        "inputOverlapSize": [model.input_overlap, model.input_overlap],
        "outputTileSize": [model.answer_size, model.answer_size],
        "outputBands": {b.name: {"type": b.type, "dimensions": b.dimensions} for b in manifest.output_bands},
        "maxPayloadBytes": model.max_payload_bytes,
    }
    if model.input_shapes:
        args["inputShapes"] = {name: [length] for name, length in model.input_shapes.items()}
    if model.projection:
        # As Google's notebooks call it (earthengine-community guides/linked/
        # Earth_Engine_PyTorch_Vertex_AI.ipynb: proj=ee.Projection('EPSG:4326').atScale(30),
        # fixInputProj=True): pixels sampled at the model's own CRS and scale.
        args["proj"] = {"crs": model.projection, "scale": model.scale}
        args["fixInputProj"] = True
    return args


def _python(key: str, value) -> str:
    """One argument's value as Python: outputBands' types as ee.PixelType, proj as ee.Projection."""
    if key == "outputBands":
        return (
            "{"
            + ", ".join(
                f"{name!r}: {{'type': ee.PixelType.{band['type']}(), 'dimensions': {band['dimensions']}}}"
                for name, band in value.items()
            )
            + "}"
        )
    if key == "proj":
        return f"ee.Projection({value['crs']!r}).atScale({value['scale']!r})"
    return repr(value)


def from_vertex_ai_call(args: dict) -> str:
    """`ee.Model.fromVertexAi(...)` with these arguments, as Python: the one rendering of the call,
    inside the snippet the endpoint stack outputs, which `review` prints and `nox -s
    earth-engine-check` runs (plan/earth_engine.py)."""
    return f"ee.Model.fromVertexAi({', '.join(f'{key}={_python(key, value)}' for key, value in args.items())})"


def from_vertex_ai_snippet(args: dict, input_bands) -> str:
    """The call as Python to paste after `import ee` and `ee.Initialize(...)`, `image` being the
    image to predict: one line, since `cdktf synth --hcl` writes a string's newlines into HCL,
    which Terraform refuses."""
    return (
        f"model = {from_vertex_ai_call(args)}; "
        f"predictions = model.predictImage(image.select({list(input_bands)!r}).float())"
    )
