"""`python -m build_hooks.starter MODULE:FACTORY [--out rollout.toml]`: write a starter rollout
config for a model factory, with its framework, bands and a payload format filled in.

Run it from the folder that holds the module (or pass --out into that folder): the config
names the module relative to its own folder, where the build looks it up.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from build_hooks.spec import ModelError, load_spec
from config import payload
from config.model import MODEL_NAME_RE
from config.rollout import ConfigError, load_config

# Tiles a multiple of this: a U-Net-style model halves its input several times.
TILE_STEP = 16
MAX_STARTER_TILE = 256

TEMPLATE = """\
# Starter rollout config for {source}, written by `python -m build_hooks.starter`.
# Every field is described in docs/configuration.md; see docs/guides/bring-your-own-model.md.
# The model reads {inputs} and returns {outputs}.

[model]
name = "{name}"
framework = "{framework}"
# Looked up beside this file first (no PYTHONPATH needed).
source = "{source}"
# How Earth Engine will call it: ee.Model.fromVertexAi(..., payloadFormat="{payload}").
payload_format = "{payload}"
artifact_dir = "build/{name}"
input_bands = [{bands}]
# The largest multiple of 16 (at most 256) whose {payload} request for one tile fits in
# Earth Engine's maxPayloadBytes (1.5 MB); nox -s build says what a larger one would take.
tile_size = {tile}
# The CRS and metres per pixel the model was trained at; unset, Earth Engine feeds it the first
# band's default projection (1 degree for a composite): synth and review warn.
# projection = "EPSG:32610"
# scale = 10
# serving_image: unset = our own {framework} serving image (serving/), built with the export's
# framework version and pushed by digest to each target's Artifact Registry repository.

[[targets]]
name = "dev"
project = "my-project-dev"            # your Google Cloud project ID
region = "us-central1"
bucket = "my-project-dev-ee-models"   # created by the bucket stack
machine_type = "n1-standard-4"
min_replicas = 1
max_replicas = 2
# An existing bucket that receives the artifact bucket's access logs: `nox -s review`'s
# security scan (checkov CKV_GCP_62) fails a bucket without one. Create it, or name yours.
access_log_bucket = "my-project-dev-gcs-access-logs"
"""


def payload_format(framework: str, output_bands: int) -> str:
    """Earth Engine's default for TensorFlow; for PyTorch ND_ARRAYS (Google's PyTorch example),
    or RAW_JSON when the answer needs band names."""
    if framework == "tensorflow":
        return "SERIALIZED_TF_TENSORS"
    return "ND_ARRAYS" if output_bands == 1 else "RAW_JSON"


def _model_name(text: str) -> str | None:
    """The folder's (or module's) name as a model name, if it can be one."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:40].strip("-")
    return name if MODEL_NAME_RE.match(name) else None


def starter(source: str, out: Path) -> str:
    if out.exists():
        raise ModelError(f"{out} exists; allowed: a new file (--out)")
    spec = load_spec(source, out.resolve().parent)
    name = _model_name(out.resolve().parent.name) or _model_name(source.partition(":")[0].split(".")[0]) or "my-model"
    outputs = ", ".join(
        f"{b.name} ({b.length} value{'s' if b.length > 1 else ''} per pixel)" for b in spec.output_bands
    )
    fmt = payload_format(spec.framework, len(spec.output_bands))
    fits = payload.largest_tile(fmt, {b: 1 for b in spec.input_bands}, 0, payload.DEFAULT_MAX_PAYLOAD_BYTES)
    text = TEMPLATE.format(
        source=source,
        name=name,
        framework=spec.framework,
        payload=fmt,
        inputs=", ".join(spec.input_bands),
        outputs=outputs,
        bands=", ".join(f'"{b}"' for b in spec.input_bands),
        tile=min(MAX_STARTER_TILE, fits) // TILE_STEP * TILE_STEP or fits,
    )
    out.write_text(text)
    try:
        load_config(out)
    except ConfigError:
        out.unlink()
        raise
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m build_hooks.starter", description=__doc__.splitlines()[0])
    parser.add_argument("source", help="MODULE:FACTORY, e.g. seg.unet:make_model")
    parser.add_argument("--out", default="rollout.toml", type=Path, help="config file to write (default rollout.toml)")
    args = parser.parse_args(argv)
    try:
        starter(args.source, args.out)
    except (ModelError, ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(
        f"wrote {args.out}: set the project, region and bucket of each target, then "
        f"`nox -s build -- {args.out}` and `nox -s serve -- {args.out}`"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
