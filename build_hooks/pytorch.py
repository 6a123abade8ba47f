"""PyTorch: the model as a `torch.export` program (model.pt2, what our serving image runs),
and, for a prebuilt TorchServe image while one is used, TorchScript in model.mar with the
TorchServe handler (serving/torchserve_handler.py)."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

from build_hooks.spec import ModelSpec

MAR_NAME = "model.mar"
PROGRAM_NAME = "model.pt2"
CONTRACT_NAME = "ee_contract.json"
# The prebuilt PyTorch container serves the archive named "model".
MODEL_NAME = "model"
SERVING = Path(__file__).resolve().parent.parent / "serving"
HANDLER = SERVING / "torchserve_handler.py"
# Zip entries carry this date, so the archive's bytes do not depend on when it was built.
FIXED_DATE = (1980, 1, 1, 0, 0, 0)
FIXED_CREATED_ON = "01/01/1980 00:00:00"


def to_torchscript(spec: ModelSpec):
    """torch.jit.script, falling back to trace on an example tile with a clear message."""
    import torch

    try:
        return torch.jit.script(spec.model)
    except Exception as error:  # noqa: BLE001 - any scripting failure falls back to tracing
        print(
            f"build: torch.jit.script failed ({type(error).__name__}: {str(error).splitlines()[0]}); "
            "falling back to torch.jit.trace on an example tile. Control flow that depends on "
            "the input will be frozen to the traced path.",
            file=sys.stderr,
        )
        example = torch.zeros(1, len(spec.input_bands), 8, 8)
        return torch.jit.trace(spec.model, example, check_trace=True)


def normalize_zip(
    source: Path,
    target: Path,
    rewrite: dict[str, bytes] | None = None,
    drop=lambda name: False,
    rename: dict[str, str] | None = None,
    add: dict[str, bytes] | None = None,
) -> None:
    """Rewrite a zip with sorted entries, fixed dates and permissions: same content, same bytes.
    Entries named in `rewrite` get that content; entries for which `drop(name)` is true go;
    `rename` moves entries, `add` adds some."""
    rewrite, rename = rewrite or {}, rename or {}
    with zipfile.ZipFile(source) as zin:
        contents = {
            rename.get(i.filename, i.filename): rewrite.get(i.filename, zin.read(i.filename))
            for i in zin.infolist()
            if not i.is_dir() and not drop(i.filename)
        }
    contents.update(add or {})
    with zipfile.ZipFile(target, "w") as zout:
        for name in sorted(contents):
            fixed = zipfile.ZipInfo(name, date_time=FIXED_DATE)
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o644 << 16
            fixed.create_system = 3
            zout.writestr(fixed, contents[name], compresslevel=6)


def _portable_torchscript(raw: Path, target: Path) -> None:
    """TorchScript's zip, made independent of where the build ran.

    `*.debug_pkl` records hold source ranges with the absolute paths of the model's module
    and of torch itself (checkout and virtualenv paths); they only enrich error messages,
    and torch.jit.load does without them. `.data/serialization_id` is a hash over the
    records as written, so it is derived again from what is kept."""
    with zipfile.ZipFile(raw) as zin:
        kept = sorted(n for n in zin.namelist() if not n.endswith((".debug_pkl", "/.data/serialization_id")))
        digest = hashlib.sha256()
        for name in kept:
            digest.update(name.encode() + b"\0" + zin.read(name))
        ids = [n for n in zin.namelist() if n.endswith("/.data/serialization_id")]
    serialization_id = str(int.from_bytes(digest.digest()[:16], "big")).encode()
    normalize_zip(raw, target, {name: serialization_id for name in ids}, drop=lambda n: n.endswith(".debug_pkl"))


class ExportError(ValueError):
    """torch.export cannot capture the model; the message says why and what to change."""


def export_program(spec: ModelSpec, contract: dict, out_dir: Path) -> Path:
    """Write out_dir/model.pt2 (deterministic bytes) and out_dir/ee_contract.json.

    The program takes [N, bands, s, s] tiles of the configured size (s = tile_size + 2 *
    input_overlap), N dynamic from 1 to the most tiles a request can hold; a model whose
    batch cannot be dynamic is exported for one tile at a time (`"batch": 1` in the
    contract). Node metadata with source paths (`stack_trace`) is dropped, so the bytes do not
    depend on where the build ran; the example inputs are not kept."""
    import torch

    from serving import codec

    out_dir.mkdir(parents=True, exist_ok=True)
    served = codec.Contract.from_dict(contract)
    side, bands = served.instance_size, len(served.input_bands)
    model = spec.model.eval()
    cap = max(2, served.max_instances)
    try:
        program = torch.export.export(
            model,
            (torch.zeros(2, bands, side, side),),
            dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=cap)},),
            strict=False,
        )
    except Exception as error:  # noqa: BLE001 - retried with one tile per call, then reported
        first = f"{type(error).__name__}: {str(error).strip().splitlines()[0][:300]}"
        try:
            program = torch.export.export(model, (torch.zeros(1, bands, side, side),), strict=False)
        except Exception as again:  # noqa: BLE001 - the user's model cannot be exported
            raise ExportError(
                f"model.source: torch.export cannot capture the model on a [N, {bands}, {side}, {side}] tile "
                f"({type(again).__name__}: {str(again).strip().splitlines()[0][:300]}); make forward() "
                "traceable (no data-dependent Python control flow or .item() calls on the input; see "
                "https://pytorch.org/docs/stable/export.html)"
            ) from None
        print(f"build: the model's batch size cannot vary ({first}); exported for one tile per call", file=sys.stderr)
        contract = {**contract, "batch": 1}
    for node in program.graph.nodes:
        node.meta.pop("stack_trace", None)
    program._example_inputs = None
    target = out_dir / PROGRAM_NAME
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    target.write_bytes(buffer.getvalue())
    (out_dir / CONTRACT_NAME).write_text(json.dumps(contract, indent=2, sort_keys=True) + "\n")
    return target


def export_mar(spec: ModelSpec, contract: dict, out_dir: Path) -> Path:
    """Write out_dir/model.mar (deterministic bytes): TorchScript, the TorchServe handler and
    the Earth Engine codec it shares with our server (as the package `serving`)."""
    import torch
    from model_archiver.model_archiver_config import ModelArchiverConfig
    from model_archiver.model_packaging import generate_model_archive

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        scripted = to_torchscript(spec)
        raw = io.BytesIO()
        torch.jit.save(scripted, raw)
        # TorchScript's own zip is normalized too, so its bytes depend on the model only.
        (tmp_path / "raw.pt").write_bytes(raw.getvalue())
        _portable_torchscript(tmp_path / "raw.pt", tmp_path / "model.pt")
        (tmp_path / CONTRACT_NAME).write_text(json.dumps(contract, indent=2, sort_keys=True))
        shutil.copy(HANDLER, tmp_path / "handler.py")
        shutil.copy(SERVING / "codec.py", tmp_path / "codec.py")
        export = tmp_path / "export"
        export.mkdir()
        generate_model_archive(
            ModelArchiverConfig(
                model_name=MODEL_NAME,
                handler=str(tmp_path / "handler.py"),
                version="1.0",
                serialized_file=str(tmp_path / "model.pt"),
                extra_files=f"{tmp_path / CONTRACT_NAME},{tmp_path / 'codec.py'}",
                export_path=str(export),
                force=True,
            )
        )
        mar = export / MAR_NAME
        with zipfile.ZipFile(mar) as zin:
            manifest = json.loads(zin.read("MAR-INF/MANIFEST.json"))
        manifest["createdOn"] = FIXED_CREATED_ON
        rewritten = json.dumps(manifest, indent=2, sort_keys=True).encode()
        target = out_dir / MAR_NAME
        # The archiver puts extra files at the root; the handler imports the codec as
        # `serving.codec`, the name it has in our image and in this repository.
        normalize_zip(
            mar,
            target,
            {"MAR-INF/MANIFEST.json": rewritten},
            rename={"codec.py": "serving/codec.py"},
            add={"serving/__init__.py": b""},
        )
    return target
