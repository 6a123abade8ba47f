"""Every target's endpoint stack carries the exact ee.Model.fromVertexAi arguments, as
values and as Python to paste."""

from __future__ import annotations

import ast
import inspect
import types

import pytest
from conftest import stack_json


class FakeEE:
    """Just enough of the `ee` module to run the snippet: records the call."""

    def __init__(self):
        self.calls = []
        self.PixelType = types.SimpleNamespace(float=lambda: "float")
        self.Model = types.SimpleNamespace(fromVertexAi=self._from_vertex_ai)
        self.Projection = lambda crs: types.SimpleNamespace(atScale=lambda scale: ("projection", crs, scale))

    def _from_vertex_ai(self, **kwargs):
        self.calls.append(kwargs)
        return types.SimpleNamespace(predictImage=lambda image: ("predictions", image))


class FakeImage:
    def select(self, bands):
        self.bands = bands
        return self

    def float(self):
        return self


@pytest.mark.parametrize("fixture", ["torch_synth", "tf_synth"])
def test_every_target_has_the_from_vertex_ai_arguments(fixture, request):
    outdir = request.getfixturevalue(fixture)
    build = request.getfixturevalue("torch_build" if fixture == "torch_synth" else "tf_build")
    config, manifest = build
    model = config.model
    for target in config.targets:
        outputs = stack_json(outdir, f"{target.name}-endpoint")["output"]
        args = outputs["earth_engine_model"]["value"]
        endpoint = outputs["endpoint_name"]["value"]
        assert args == {
            "endpoint": endpoint,
            "payloadFormat": model.payload_format.value,
            "inputTileSize": [model.tile_size, model.tile_size],
            "inputOverlapSize": [0, 0],
            "outputTileSize": [model.tile_size, model.tile_size],
            "outputBands": {"probabilities": {"type": "float", "dimensions": 1}},
            "maxPayloadBytes": 1_500_000,
            "proj": {"crs": model.projection, "scale": 30.0},
            "fixInputProj": True,
        }
        ee, image = FakeEE(), FakeImage()
        exec(outputs["earth_engine_snippet"]["value"], {"ee": ee, "image": image})
        (call,) = ee.calls
        assert call == {
            **args,
            "outputBands": {"probabilities": {"type": "float", "dimensions": 1}},
            "proj": ("projection", model.projection, 30.0),
        }
        assert image.bands == list(manifest.input_bands)


def test_without_projection_the_call_has_no_proj(torch_build):
    """Unset, Earth Engine picks the first band's default projection: the call says nothing
    of it (and synth warns, config.model.PROJECTION_WARNING)."""
    from config.rollout import parse_config
    from stacks.earth_engine import from_vertex_ai_args, from_vertex_ai_snippet

    config, manifest = torch_build
    data = config.model_dump(mode="json", exclude={"path"})
    data["model"].update(projection=None, scale=None)
    args = from_vertex_ai_args(parse_config(data, config.path), manifest, "projects/p/locations/r/endpoints/1")
    assert "proj" not in args and "fixInputProj" not in args
    assert "proj=" not in from_vertex_ai_snippet(args, manifest.input_bands)


@pytest.mark.parametrize("fixture", ["torch_synth", "tf_synth"])
def test_the_call_binds_to_earthengine_apis_own_signature(fixture, request):
    """Every keyword of the call (the values output and the rendered snippet alike) is one of
    earthengine-api's ee.Model.fromVertexAi parameters, and the snippet's Python names what
    earthengine-api has (no ee.Initialize: nothing is sent)."""
    import ee

    from build_hooks.manifest import PIXEL_TYPES
    from plan.earth_engine import calls

    signature = inspect.signature(ee.Model.fromVertexAi)
    found = calls(request.getfixturevalue(fixture))
    assert found
    for call in found:
        signature.bind(**call.args)
        nodes = [
            n
            for n in ast.walk(ast.parse(call.snippet))
            if isinstance(n, ast.Call) and ast.unparse(n.func) == "ee.Model.fromVertexAi"
        ]
        (node,) = nodes
        assert node.args == []
        assert sorted(k.arg for k in node.keywords) == sorted(call.args)  # synth sorts the JSON's keys
        signature.bind(**{k.arg: k.value for k in node.keywords})
        values = {k.arg: k.value for k in node.keywords}
        for key in set(call.args) - {"outputBands", "proj"}:
            assert ast.literal_eval(values[key]) == call.args[key]
        proj = call.args["proj"]
        assert ast.unparse(values["proj"]) == f"ee.Projection({proj['crs']!r}).atScale({float(proj['scale'])!r})"
        assert call.args["fixInputProj"] is True
        for band, (_name, info) in zip(values["outputBands"].values, call.args["outputBands"].items(), strict=False):
            assert ast.unparse(band) == f"{{'type': ee.PixelType.{info['type']}(), 'dimensions': {info['dimensions']}}}"
        assert "predictImage(image.select(" in call.snippet
    assert all(callable(getattr(ee.PixelType, t)) for t in PIXEL_TYPES)
    assert callable(ee.Projection.atScale) and callable(ee.Model.predictImage)


def test_array_bands_and_overlap_reach_the_arguments(tf_build):
    from conftest import example_data

    from config.rollout import parse_config
    from stacks.earth_engine import from_vertex_ai_args, from_vertex_ai_snippet

    data = example_data("tensorflow")
    data["model"].update(
        input_bands=["array_image"],
        input_shapes={"array_image": 3},
        tile_size=128,
        input_overlap=64,
        output_tile_size=128,
    )
    config = parse_config(data)
    manifest = tf_build[1].model_copy(update={"input_bands": ("array_image",), "tile_size": 128})
    args = from_vertex_ai_args(config, manifest, "projects/p/locations/r/endpoints/1")
    assert args["inputOverlapSize"] == [64, 64] and args["outputTileSize"] == [128, 128]
    assert args["inputShapes"] == {"array_image": [3]}
    snippet = from_vertex_ai_snippet(args, ["array_image"])
    assert "inputShapes={'array_image': [3]}" in snippet
    assert "\n" not in snippet  # `cdktf synth --hcl` writes newlines into HCL strings, which Terraform refuses


def test_custom_source_without_input_bands_is_checked_at_synth(tf_build):
    from conftest import example_data

    from build_hooks.manifest import ManifestError
    from config.rollout import parse_config
    from stacks.earth_engine import from_vertex_ai_args

    data = example_data("tensorflow")
    data["model"].update(source="tests.fixture_models:keras_two_outputs", tile_size=400)
    config = parse_config(data)  # bands unknown before the build: not checked yet
    manifest = tf_build[1].model_copy(update={"tile_size": 400})  # six bands
    with pytest.raises(ManifestError, match="tile_size 400: .* the largest tile_size that fits is 216"):
        from_vertex_ai_args(config, manifest, "projects/p/locations/r/endpoints/1")


def test_input_bands_must_match_the_built_model(torch_build):
    from conftest import example_data

    from build_hooks.manifest import ManifestError
    from config.rollout import parse_config
    from stacks.earth_engine import from_vertex_ai_args

    data = example_data("pytorch")
    data["model"]["input_bands"] = ["B4", "B3", "B2", "B5", "B6", "B7"]
    _, manifest = torch_build
    with pytest.raises(ManifestError, match=r"model.input_bands: the config says \['B4', 'B3'"):
        from_vertex_ai_args(parse_config(data), manifest, "projects/p/locations/r/endpoints/1")


def test_tile_size_must_be_the_one_built(torch_build):
    from conftest import example_data

    from build_hooks.manifest import ManifestError
    from config.rollout import parse_config
    from stacks.earth_engine import from_vertex_ai_args

    data = example_data("pytorch")
    data["model"]["tile_size"] = 64
    with pytest.raises(ManifestError, match="model.tile_size: the artifact was built for 120 but the config says 64"):
        from_vertex_ai_args(parse_config(data), torch_build[1], "projects/p/locations/r/endpoints/1")


def test_a_class_band_is_declared_in_its_pixel_type(torch_build):
    """An integer band (an argmax class) is served as JSON integers: the snippet tells Earth
    Engine so (`ee.PixelType.uint8()`), not float."""
    from build_hooks.manifest import Band
    from stacks.earth_engine import from_vertex_ai_args, from_vertex_ai_snippet

    config, manifest = torch_build
    classes = manifest.model_copy(update={"output_bands": (Band(name="class", type="uint8"),)})
    args = from_vertex_ai_args(config, classes, "projects/p/locations/r/endpoints/1")
    assert args["outputBands"] == {"class": {"type": "uint8", "dimensions": 0}}
    ee = FakeEE()
    ee.PixelType = types.SimpleNamespace(uint8=lambda: "uint8")
    exec(from_vertex_ai_snippet(args, classes.input_bands), {"ee": ee, "image": FakeImage()})
    assert ee.calls[0]["outputBands"] == {"class": {"type": "uint8", "dimensions": 0}}
