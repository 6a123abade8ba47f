"""`python -m build_hooks.export '<json request>'`: one export and its check, in a fresh process.

The last stdout line is JSON: the model's bands and the check's report, or `{"error": ...}`
(exit 2) for a problem the user must fix, printed without a traceback. Anything else (the
user's factory raising) exits 1 with its traceback, which the build keeps in a file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from build_hooks.spec import ModelError, load_spec

VERSION_LABEL_FILE = "version_label.txt"
# TensorFlow Serving and tf.saved_model.load ignore a SavedModel's assets.extra/ folder.
TF_EXTRA_DIR = "assets.extra"


def export(request: dict) -> dict:
    spec = load_spec(request["source"], Path(request["base_dir"]))
    if spec.framework != request["framework"]:
        raise ModelError(
            f"model.framework: the config says {request['framework']!r} but {request['source']} "
            f"builds a {spec.framework!r} model; allowed: framework = {spec.framework!r}"
        )
    if request["payload_format"] == "ND_ARRAYS" and len(spec.output_bands) != 1:
        raise ModelError(
            f"model.payload_format: ND_ARRAYS answers without keys, so exactly one output band; "
            f"{request['source']} declares {len(spec.output_bands)}: allowed: RAW_JSON for several"
        )
    out_dir = Path(request["out_dir"])
    bands = [b.model_dump() for b in spec.output_bands]
    label = request.get("version_label")
    if spec.framework == "pytorch":
        from build_hooks.pytorch import export_pytorch

        contract = {
            "payload_format": request["payload_format"],
            "input_bands": list(spec.input_bands),
            "output_bands": bands,
            "max_instances": request["max_instances"],
            "max_pixels": request["max_pixels"],
            "tile_size": request["tile_size"],
            "input_overlap": request.get("input_overlap", 0),
            "output_tile_size": request.get("output_tile_size"),
        }
        if label:
            contract["version_label"] = label
        export_pytorch(spec, contract, out_dir)
    else:
        from build_hooks.tensorflow import export_tensorflow

        export_tensorflow(
            spec, request["payload_format"], request["tile_size"], out_dir,
            input_overlap=request.get("input_overlap", 0), output_tile_size=request.get("output_tile_size"),
            band_lengths=request.get("input_shapes"),
        )
        if label:
            (out_dir / TF_EXTRA_DIR).mkdir()
            (out_dir / TF_EXTRA_DIR / VERSION_LABEL_FILE).write_text(label + "\n")
    from build_hooks import earth_engine as ee
    from build_hooks.check import check_artifact

    shapes = request.get("input_shapes") or {}
    contract = ee.Contract(
        payload_format=request["payload_format"],
        input_bands=tuple(spec.input_bands),
        band_lengths=tuple(shapes.get(b, 1) for b in spec.input_bands),
        output_bands=tuple(bands),
        tile_size=request["tile_size"],
        input_overlap=request.get("input_overlap", 0),
        output_tile_size=request.get("output_tile_size"),
        max_payload_bytes=request["max_payload_bytes"],
    )
    report = check_artifact(spec, contract, out_dir)
    return {
        "input_bands": list(spec.input_bands),
        "output_bands": bands,
        "checked": report.lines,
        "warnings": report.warnings,
    }


def main(argv: list[str]) -> int:
    try:
        result = export(json.loads(argv[0]))
    except ModelError as error:
        print(json.dumps({"error": str(error)}))
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
