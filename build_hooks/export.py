"""`python -m build_hooks.export '<json request>'`: one export, in its own process.

Prints the model's bands as JSON on the last stdout line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from build_hooks.spec import load_factory


def export(request: dict) -> dict:
    spec = load_factory(request["source"])()
    if spec.framework != request["framework"]:
        raise ValueError(
            f"model.framework: the config says {request['framework']!r} but {request['source']} "
            f"builds a {spec.framework!r} model"
        )
    if request["payload_format"] == "ND_ARRAYS" and len(spec.output_bands) != 1:
        raise ValueError("model.payload_format: ND_ARRAYS answers without keys, so exactly one output band")
    out_dir = Path(request["out_dir"])
    bands = [b.model_dump() for b in spec.output_bands]
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
        export_pytorch(spec, contract, out_dir)
    else:
        from build_hooks.tensorflow import export_tensorflow

        export_tensorflow(
            spec, request["payload_format"], request["tile_size"], out_dir,
            input_overlap=request.get("input_overlap", 0), output_tile_size=request.get("output_tile_size"),
            band_lengths=request.get("input_shapes"),
        )
    return {"input_bands": list(spec.input_bands), "output_bands": bands}


if __name__ == "__main__":
    print(json.dumps(export(json.loads(sys.argv[1]))))
