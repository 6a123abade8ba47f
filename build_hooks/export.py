"""`python -m build_hooks.export '<json request>'`: one export and its check, in a fresh process.

The last stdout line is JSON: the model's bands and the check's report, or `{"error": ...}`
(exit 2) for a problem the user must fix, printed without a traceback. Anything else (the
user's factory raising) exits 1 with its traceback, which the build keeps in a file.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from build_hooks.spec import ModelError, load_spec

VERSION_LABEL_FILE = "version_label.txt"
# TensorFlow Serving and tf.saved_model.load ignore a SavedModel's assets.extra/ folder, but
# for the warm-up requests TensorFlow Serving runs before the version becomes AVAILABLE.
TF_EXTRA_DIR = "assets.extra"
TF_WARMUP_FILE = "tf_serving_warmup_requests"
# TensorFlow Serving serves <base_path>/<version>/ (our TensorFlow image: base_path is
# AIP_STORAGE_URI); Vertex AI's prebuilt tf2 images want the SavedModel at the artifact's root.
TF_VERSION_DIR = "1"


def export(request: dict) -> dict:
    """Export the model named by the request into request["out_dir"], then check it.

    request["layouts"] says what the targets' images need: "program" (model.pt2, our PyTorch
    image), "mar" (model.mar, a prebuilt or custom PyTorch image), "versioned" (a SavedModel
    in 1/, our TensorFlow image), "root" (a SavedModel at the root, a prebuilt or custom one).
    """
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
    layouts = set(request["layouts"])
    bands = [b.model_dump() for b in spec.output_bands]
    label = request.get("version_label")
    if spec.framework == "pytorch":
        from build_hooks.pytorch import ExportError, export_mar, export_program

        # What ee_contract.json records (not the ee.Contract the check below uses).
        record = {
            "payload_format": request["payload_format"],
            "input_bands": list(spec.input_bands),
            "output_bands": bands,
            "tile_size": request["tile_size"],
            "input_overlap": request.get("input_overlap", 0),
            "output_tile_size": request.get("output_tile_size"),
            "max_payload_bytes": request["max_payload_bytes"],
        }
        if label:
            record["version_label"] = label
        try:
            if "program" in layouts:
                export_program(spec, record, out_dir)
            if "mar" in layouts:
                export_mar(spec, record, out_dir)
        except ExportError as error:
            raise ModelError(str(error)) from None
    else:
        from build_hooks.tensorflow import export_tensorflow

        root = out_dir if "root" in layouts else out_dir / TF_VERSION_DIR
        export_tensorflow(
            spec,
            request["payload_format"],
            request["tile_size"],
            root,
            input_overlap=request.get("input_overlap", 0),
            output_tile_size=request.get("output_tile_size"),
            band_lengths=request.get("input_shapes"),
        )
        if label:
            (root / TF_EXTRA_DIR).mkdir(exist_ok=True)
            (root / TF_EXTRA_DIR / VERSION_LABEL_FILE).write_text(label + "\n")
        if "versioned" in layouts and root != out_dir / TF_VERSION_DIR:
            shutil.copytree(root, out_dir / TF_VERSION_DIR, ignore=shutil.ignore_patterns(TF_VERSION_DIR))
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
    if spec.framework == "tensorflow" and "versioned" in layouts:
        from build_hooks.tensorflow import write_warmup

        write_warmup(contract, out_dir / TF_VERSION_DIR / TF_EXTRA_DIR / TF_WARMUP_FILE)
    report = check_artifact(spec, contract, out_dir, layouts)
    from build_hooks.golden import write_golden

    write_golden(spec, contract, out_dir)
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
