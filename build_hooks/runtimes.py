"""An artifact for a Vertex AI prebuilt image is loaded and run under that image's framework
version before the build accepts it.

We export with the project's framework versions (torch 2.13, TensorFlow 2.21); the newest
prebuilt images run torch 2.4 and TensorFlow 2.15. TorchScript promises only that old files
load in new runtimes, not the reverse: a model scripted with torch 2.13 whose forward calls
`F.interpolate` fails to load in torch 2.4.1 (`Unknown builtin op:
aten::_upsample_lanczos2d_aa`), and the deployment's workers would crash-loop. So for every
prebuilt release a target names, the artifact runs here under that release's framework
(config.images.PrebuiltRelease.runtime), the way the image runs it (TorchServe's handler
freezes and optimizes TorchScript on a CPU; TensorFlow Serving calls the serving signature),
on a tile of the configured size, and must answer what the export's framework answers.

Each runtime is a virtualenv of its own under `.nox/runtimes/` (`EEV_RUNTIMES_DIR`), made
with pip on first use (torch 2.4.1 with its CUDA libraries is about 5 GB) and reused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from build_hooks import earth_engine as ee
from config import images
from config.rollout import RolloutConfig
from config.target import TargetConfig
from serving.image import exclusive

ROOT = Path(__file__).resolve().parent.parent
TOLERANCE = 1e-4

# Run by the runtime's own Python (torch 2.4 has no numpy there: tensors in, tensors out).
TORCH_PROBE = r"""
import io, json, sys, zipfile
import torch
mar, tile, out = sys.argv[1:4]
with zipfile.ZipFile(mar) as archive:
    data = archive.read("model.pt")
try:
    model = torch.jit.load(io.BytesIO(data), map_location="cpu").eval()
except Exception as error:
    print(json.dumps({"error": f"torch {torch.__version__} cannot load the TorchScript: {type(error).__name__}: "
                               f"{str(error).strip().splitlines()[0]}"}))
    sys.exit(0)
try:  # as the TorchServe handler serves it on a CPU
    model = torch.jit.optimize_for_inference(torch.jit.freeze(model))
except Exception:
    pass
x = torch.load(tile)
try:
    with torch.inference_mode():
        y = model(x)
except Exception as error:
    print(json.dumps({"error": f"torch {torch.__version__} cannot run it: {type(error).__name__}: "
                               f"{str(error).strip().splitlines()[0]}"}))
    sys.exit(0)
torch.save(y.detach().clone(), out)
print(json.dumps({"version": torch.__version__}))
"""

TF_PROBE = r"""
import json, sys
import numpy as np
import tensorflow as tf
saved, request, out = sys.argv[1:4]
try:
    loaded = tf.saved_model.load(saved)
    signature = loaded.signatures["serving_default"]
except Exception as error:
    print(json.dumps({"error": f"TensorFlow {tf.__version__} cannot load the SavedModel: {type(error).__name__}: "
                               f"{str(error).strip().splitlines()[0]}"}))
    sys.exit(0)
inputs = json.load(open(request))
specs = signature.structured_input_signature[1]
try:
    tensors = {k: tf.constant(v, dtype=specs[k].dtype) for k, v in inputs.items()}
    outputs = {k: v.numpy() for k, v in signature(**tensors).items()}
except Exception as error:
    print(json.dumps({"error": f"TensorFlow {tf.__version__} cannot run it: {type(error).__name__}: "
                               f"{str(error).strip().splitlines()[0]}"}))
    sys.exit(0)
plain = {k: [x.decode() if isinstance(x, bytes) else x for x in v.tolist()] for k, v in outputs.items()}
json.dump(plain, open(out, "w"))
print(json.dumps({"version": tf.__version__}))
"""


def runtimes_dir() -> Path:
    return Path(os.environ.get("EEV_RUNTIMES_DIR") or ROOT / ".nox" / "runtimes").resolve()


def runtime_python(release: images.PrebuiltRelease, log=print) -> Path:
    """The runtime's interpreter, its virtualenv made on first use."""
    name = "-".join(pin.replace("==", "-") for pin in release.runtime)
    env = runtimes_dir() / name
    python = env / "bin" / "python"
    stamp = env / ".pins"
    wanted = "\n".join(release.runtime) + "\n"
    with exclusive(runtimes_dir() / f".{name}.lock"):
        if not (python.exists() and stamp.exists() and stamp.read_text() == wanted):
            _make_runtime(release, env, python, log)
            stamp.write_text(wanted)
    return python


def _make_runtime(release: images.PrebuiltRelease, env: Path, python: Path, log) -> None:
    log(
        f"build: making the {', '.join(release.runtime)} runtime of {release.label} in {env} "
        "(once; torch's CUDA build is several GB, a few minutes)"
    )
    env.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(env)], check=True)
    done = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--quiet",
            *release.runtime,
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise ValueError(
            f"could not make the {release.label} runtime ({', '.join(release.runtime)}): {done.stderr.strip()[-1500:]}"
        )


def release_of(rollout: RolloutConfig, target: TargetConfig) -> images.PrebuiltRelease | None:
    """The prebuilt release this target serves on; None where our own or a custom image serves it.
    A loaded config's prebuilt images are all releases the table knows (check_prebuilt_image)."""
    uri = rollout.serving_image(target)
    if rollout.image_kind(target) != "prebuilt" or uri is None:
        return None
    image = images.prebuilt(uri)
    if image is None or image.release is None:
        raise ValueError(f"{uri!r} is not a Vertex AI prebuilt prediction image this project knows")
    return image.release


def releases_of(rollout: RolloutConfig) -> list[images.PrebuiltRelease]:
    """Every prebuilt release a target of the config serves on."""
    found = {}
    for target in rollout.targets:
        release = release_of(rollout, target)
        if release is not None:
            found[(release.family, release.version)] = release
    return [found[key] for key in sorted(found)]


def _contract(rollout: RolloutConfig, bands: tuple[str, ...], output_bands: tuple[dict, ...]) -> ee.Contract:
    model = rollout.model
    return ee.Contract(
        payload_format=model.payload_format.value,
        input_bands=bands,
        band_lengths=tuple(model.input_shapes.get(b, 1) for b in bands),
        output_bands=output_bands,
        tile_size=model.tile_size,
        input_overlap=model.input_overlap,
        output_tile_size=model.output_tile_size,
        max_payload_bytes=model.max_payload_bytes,
    )


def check_prebuilt(rollout: RolloutConfig, artifact: Path, bands, output_bands, *, log=print) -> list[str]:
    """Run the artifact under every prebuilt release the targets use; one line per release,
    or ValueError naming the release, the target fields and why."""
    lines = []
    contract = _contract(rollout, tuple(bands), tuple(output_bands))
    for release in releases_of(rollout):
        python = runtime_python(release, log)
        with tempfile.TemporaryDirectory(prefix="runtime-check-") as tmp:
            check = _check_torch if release.framework == "pytorch" else _check_tensorflow
            problem, version, error = check(contract, artifact, python, Path(tmp))
        served = [(i, t) for i, t in enumerate(rollout.targets) if release_of(rollout, t) == release]
        fields = sorted({f"targets.{i}.serving_image" if t.serving_image else "model.serving_image" for i, t in served})
        users = [f"targets.{i}" for i, _ in served]
        if problem:
            raise ValueError(
                f"{', '.join(fields)}: {release.label} runs {', '.join(release.runtime)}, and the artifact built with "
                f"the project's versions fails there ({', '.join(users)}): {problem}; allowed: leave serving_image "
                "unset for our own image (the export's framework versions), or change the model so that it loads there"
            )
        lines.append(
            f"{release.label}: the artifact loads and answers alike under {version} (max difference {error:.1e})"
        )
    return lines


def _run(python: Path, script: str, *args: str) -> dict:
    done = subprocess.run(
        [str(python), "-c", script, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""},
    )
    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    if done.returncode or not last.startswith("{"):
        return {"error": f"the runtime's check exited {done.returncode}: {done.stderr.strip()[-800:]}"}
    return json.loads(last)


def _check_torch(contract: ee.Contract, artifact: Path, python: Path, tmp: Path) -> tuple[str | None, str, float]:
    import io
    import zipfile

    import torch

    tiles = contract.example_tiles(count=1, seed=0)
    x = torch.from_numpy(np.ascontiguousarray(np.moveaxis(contract.model_input(tiles), -1, 1)))
    torch.save(x, tmp / "tile.pt")
    answer = _run(python, TORCH_PROBE, str(artifact / "model.mar"), str(tmp / "tile.pt"), str(tmp / "out.pt"))
    if "error" in answer:
        return answer["error"], "", 0.0
    with zipfile.ZipFile(artifact / "model.mar") as archive:
        model = torch.jit.load(io.BytesIO(archive.read("model.pt")), map_location="cpu").eval()
    with torch.inference_mode():
        want = model(x).numpy()
    got = torch.load(tmp / "out.pt").numpy()
    if got.shape != want.shape:
        return f"it answers shape {list(got.shape)} instead of {list(want.shape)}", answer["version"], 0.0
    error = float(np.nanmax(np.abs(got - want))) if got.size else 0.0
    if not error <= TOLERANCE:
        return f"its answer differs from torch {torch.__version__}'s by up to {error:.2e}", answer["version"], error
    return None, f"torch {answer['version']}", error


def _check_tensorflow(contract: ee.Contract, artifact: Path, python: Path, tmp: Path) -> tuple[str | None, str, float]:
    from serving.tf_serving import SavedModel

    model = SavedModel(artifact)
    (batch,) = contract.requests(contract.example_tiles(count=1, seed=0))
    if batch.body is not None:
        rows = json.loads(batch.body)["instances"]
        inputs = {name: [row[name] for row in rows] for name in rows[0]}
    else:
        assert batch.inputs is not None  # a gRPC format's batch: its named tensors, no body
        inputs = {
            name: (
                value.tolist()
                if getattr(value, "dtype", None) is not None and value.dtype != object
                else [v.decode() if isinstance(v, bytes) else v for v in value.tolist()]
            )
            for name, value in batch.inputs.items()
        }
    (tmp / "request.json").write_text(json.dumps(inputs))
    answer = _run(python, TF_PROBE, str(artifact), str(tmp / "request.json"), str(tmp / "out.json"))
    if "error" in answer:
        return answer["error"], "", 0.0
    got = json.loads((tmp / "out.json").read_text())
    want = model.call(inputs)
    error = 0.0
    for name, values in want.items():
        theirs = got.get(name)
        if theirs is None:
            return f"its answer has no output {name!r}", answer["version"], 0.0
        ours = [v.decode() if isinstance(v, bytes) else v for v in values.tolist()]
        if ours and isinstance(ours[0], str):
            diff = max(
                float(np.max(np.abs(ee.decode_tensor(a) - ee.decode_tensor(b))))
                for a, b in zip(theirs, ours, strict=False)
            )
        else:
            diff = float(np.max(np.abs(np.asarray(theirs, np.float64) - np.asarray(ours, np.float64))))
        error = max(error, diff)
    if not error <= TOLERANCE:
        return f"its answer differs from TensorFlow's by up to {error:.2e}", answer["version"], error
    return None, f"TensorFlow {answer['version']}", error
