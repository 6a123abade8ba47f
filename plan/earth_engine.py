"""The last step, on Earth Engine's side: the `ee.Model.fromVertexAi` call that each target's
endpoint stack outputs (`earth_engine_snippet`, rendered once by `stacks.earth_engine`), for `review`
to print, and a check that runs it against the target's real project.

`python -m plan.earth_engine TARGET [--outdir cdktf.out] [--point LON,LAT]`
(`nox -s earth-engine-check -- TARGET`) takes the last synth's snippet for TARGET and runs it
with earthengine-api: `ee.Initialize(project=<the endpoint's project>)`, a constant image of
the model's input bands as `image`, the snippet itself (the call, then `predictImage`), and
`getInfo` of the prediction at one point (`--point`, default in the San Francisco Bay; choose
one inside the model's projection). It prints `OK: ...` and exits 0 when every output band
has a value there, and `FAILED: ...` with Earth Engine's message and exits 1 otherwise. When
earthengine-api is not importable, or it finds no credentials (its own search: the file
`earthengine authenticate` writes, else Application Default Credentials), it prints
`SKIPPED: <reason>` and exits 0. A usage error (no synth, an unknown target) exits 2.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from config.model import PROJECTION_WARNING
from plan import terraform

DEFAULT_POINT = (-122.3, 37.8)
CONSTANT = 0.1
"""Every input pixel of the check's image: a surface-reflectance-like value."""


class UsageError(ValueError):
    """No synth to read, or no such target in it."""


@dataclass(frozen=True)
class Call:
    """One target's call, as its endpoint stack outputs it."""

    target: str
    args: dict
    """`earth_engine_model`: the arguments as values (outputBands types as ee.PixelType names,
    proj as {crs, scale})."""
    snippet: str
    """`earth_engine_snippet`: the same call as Python, then `predictImage`."""

    @property
    def project(self) -> str:
        return self.args["endpoint"].split("/")[1]

    @property
    def input_bands(self) -> list[str]:
        """The bands the snippet selects from `image`."""
        for node in ast.walk(ast.parse(self.snippet)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "select":
                return ast.literal_eval(node.args[0])
        raise ValueError(f"{self.target}: the snippet selects no bands: {self.snippet}")


def calls(outdir: Path) -> list[Call]:
    """Every target's call in the last synth, in stack order."""
    if not (outdir / "manifest.json").exists():
        raise UsageError(f"{outdir}/manifest.json is missing: synthesize first (`nox -s synth -- CONFIG`)")
    found = []
    for stack in terraform.stack_order(outdir):
        if not stack.endswith("-endpoint"):
            continue
        outputs = json.loads((outdir / "stacks" / stack / "cdk.tf.json").read_text()).get("output", {})
        found.append(
            Call(
                terraform.target_of(stack),
                outputs["earth_engine_model"]["value"],
                outputs["earth_engine_snippet"]["value"],
            )
        )
    return found


def call_for(outdir: Path, target: str) -> Call:
    every = calls(outdir)
    for call in every:
        if call.target == target:
            return call
    raise UsageError(
        f"target {target!r} is not in the last synth ({outdir}); allowed: "
        f"{', '.join(c.target for c in every) or '(none)'}"
    )


def review_lines(outdir: Path) -> list[str]:
    """What `review` prints: each target's call, as Python to paste after ee.Initialize()."""
    lines = ["Earth Engine (each endpoint stack's earth_engine_snippet; `image` is yours):"]
    return lines + [f"  {call.target}: {call.snippet}" for call in calls(outdir)]


def warnings(outdir: Path) -> list[str]:
    """A warning per target whose call has no `proj`."""
    return [f"{call.target}: {PROJECTION_WARNING}" for call in calls(outdir) if "proj" not in call.args]


def skip_reason() -> str | None:
    """Why the check cannot run here, or None."""
    try:
        import ee
    except ImportError:
        return (
            "earthengine-api is not installed here (`nox -s earth-engine-check -- TARGET` installs the "
            "version pyproject.toml pins)"
        )
    try:
        ee.data.get_persistent_credentials()
    except ee.EEException as error:
        return f"no Earth Engine credentials: {' '.join(str(error).split())}"
    except Exception:  # noqa: BLE001 - credentials there but not usable (refresh refused, no network):
        return None  # the check runs and says what failed
    return None


def constant_image(ee, call: Call):
    """An image of the model's input bands, every pixel CONSTANT (an array band: its values per
    pixel, `inputShapes`)."""
    shapes = call.args.get("inputShapes", {})
    bands = [
        ee.Image(ee.Array([CONSTANT] * shapes[b][0])) if b in shapes else ee.Image.constant(CONSTANT)
        for b in call.input_bands
    ]
    return ee.Image.cat(*bands).rename(call.input_bands)


def run_check(call: Call, point: tuple[float, float]) -> tuple[bool, str]:
    """The call against the real project: (passed, what to print)."""
    import ee

    where = f"{call.target}: {call.args['endpoint']} at {point}"
    try:
        ee.Initialize(project=call.project)
        namespace = {"ee": ee, "image": constant_image(ee, call)}
        exec(call.snippet, namespace)  # noqa: S102 - the synth's own snippet, exactly as a user pastes it
        region = {"reducer": ee.Reducer.first(), "geometry": ee.Geometry.Point(list(point))}
        if "proj" in call.args:
            region.update(crs=call.args["proj"]["crs"], scale=call.args["proj"]["scale"])
        values = namespace["predictions"].reduceRegion(**region).getInfo()
    except Exception as error:  # noqa: BLE001 - Earth Engine's and the HTTP client's errors alike
        return False, f"FAILED: {where}: {type(error).__name__}: {error}"
    empty = [band for band in call.args["outputBands"] if (values or {}).get(band) is None]
    if empty:
        return False, f"FAILED: {where}: no value for output band(s) {', '.join(empty)}; got {values}"
    return True, f"OK: {where}: " + ", ".join(f"{band}={values[band]}" for band in call.args["outputBands"])


def _point(text: str) -> tuple[float, float]:
    try:
        lon, lat = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}; allowed: LON,LAT in degrees, e.g. -122.3,37.8") from None
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise argparse.ArgumentTypeError(f"{text!r}; allowed: longitude -180..180, latitude -90..90")
    return lon, lat


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m plan.earth_engine", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("target", help="the target whose call to run (its name in the rollout config)")
    parser.add_argument("--outdir", type=Path, default=Path("cdktf.out"), help="the synth to read (cdktf.out)")
    parser.add_argument("--point", type=_point, default=DEFAULT_POINT, help="LON,LAT where to predict")
    args = parser.parse_args(argv)
    reason = skip_reason()
    try:
        call = call_for(args.outdir, args.target)
    except UsageError as error:
        if reason and not (args.outdir / "manifest.json").exists():
            print(f"SKIPPED: {reason}")
            return 0
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{call.target}: {call.snippet}")
    if reason:
        print(f"SKIPPED: {reason}")
        return 0
    passed, said = run_check(call, args.point)
    print(said)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
