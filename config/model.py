"""`[model]`: what is built, uploaded and served (ModelConfig), the artifact it replaces
(PreviousArtifact), and which payload formats each framework's artifact answers."""

from __future__ import annotations

import math
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, StrictBool, StrictInt, field_validator, model_validator

from config import payload, rules
from config.checks import FieldError, Frozen, check, check_env, check_prebuilt_image

GRPC_PORT = 8500


class PayloadFormat(StrEnum):
    """Earth Engine's payload formats for Vertex AI hosted models (`payloadFormat`)."""

    SERIALIZED_TF_TENSORS = "SERIALIZED_TF_TENSORS"
    RAW_JSON = "RAW_JSON"
    ND_ARRAYS = "ND_ARRAYS"
    GRPC_TF_TENSORS = "GRPC_TF_TENSORS"
    GRPC_SERIALIZED_TF_TENSORS = "GRPC_SERIALIZED_TF_TENSORS"
    GRPC_SERIALIZED_TF_EXAMPLES = "GRPC_SERIALIZED_TF_EXAMPLES"

    @property
    def is_grpc(self) -> bool:
        return self.value.startswith("GRPC_")


# Which payload formats each framework's artifact can answer. Earth Engine sends gRPC
# only to TensorFlow models; SERIALIZED_TF_TENSORS carries TensorProtos, which only a
# TensorFlow serving signature decodes.
FRAMEWORK_PAYLOADS: dict[str, tuple[PayloadFormat, ...]] = {
    "tensorflow": (
        PayloadFormat.SERIALIZED_TF_TENSORS,
        PayloadFormat.GRPC_TF_TENSORS,
        PayloadFormat.GRPC_SERIALIZED_TF_TENSORS,
        PayloadFormat.GRPC_SERIALIZED_TF_EXAMPLES,
    ),
    "pytorch": (PayloadFormat.ND_ARRAYS, PayloadFormat.RAW_JSON),
}

MODEL_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,38}[a-z0-9]$")
SHA_REF_RE = re.compile(r"^[0-9a-f]{6,64}$")
VERSION_LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
# ee.Projection(crs) takes "a well-known authority code (e.g., 'EPSG:4326')" (earthengine-api
# python/ee/projection.py); the config takes EPSG codes, as Google's notebooks pass them.
PROJECTION_RE = re.compile(r"^EPSG:[1-9][0-9]{3,5}$")
# Without `proj`, Earth Engine samples at "the default projection of an image's first band"
# (ee.Model.fromVertexAi's docstring); a composite's is WGS84 at 1 degree. Google's notebooks
# therefore pass proj=ee.Projection(...).atScale(...), fixInputProj=True (earthengine-community
# guides/linked/Earth_Engine_PyTorch_Vertex_AI.ipynb, the fromVertexAi call).
PROJECTION_WARNING = (
    "model.projection and model.scale are unset: Earth Engine then feeds the model at the first input "
    "band's default projection, which for a composite (ImageCollection.median() and the like) is WGS84 at "
    "1 degree, not the pixels it was trained at; set both (e.g. projection = 'EPSG:32610', scale = 10) "
    "and the call gets proj=ee.Projection(projection).atScale(scale), fixInputProj=True"
)


class PreviousArtifact(Frozen):
    """The artifact that served before the current one; it keeps the traffic a canary
    target does not give to the current artifact. Unset fields default to the current
    model's values."""

    sha256: str
    """sha256 of the previous artifact (its manifest's `sha256`): the 64 hex digits, or a
    prefix of at least 6 that is unique among the artifacts built in `artifact_dir`
    (resolved at synth)."""
    serving_image: str | None = None
    """The image its model version runs, if not the one the current artifact runs: a prebuilt
    image, or `<host>/<project>/<repository>/<name>@sha256:<digest>`. Unset for our own image:
    the digest recorded with that artifact's build (`<artifact_dir>/<sha256>/manifest.json`)."""
    env: dict[str, str] | None = None
    """The environment its model version was uploaded with, if not the current model's `env`."""
    grpc: StrictBool | None = None
    """Whether its model version opens gRPC port 8500, if not as the current model's `grpc`."""

    @field_validator("sha256")
    @classmethod
    def _sha(cls, v: str) -> str:
        if not SHA_REF_RE.match(v):
            raise ValueError(
                f"{v!r}: allowed: the artifact's sha256 as 64 lowercase hex digits, or a unique prefix "
                "of at least 6 (as `nox -s build` prints it)"
            )
        return v


def _bands(source: str, input_bands: tuple[str, ...]) -> tuple[str, ...]:
    if input_bands:
        return tuple(input_bands)
    return payload.BUILTIN_INPUT_BANDS.get(source.removeprefix("builtin:"), ())


class ModelConfig(payload.TileSides, Frozen):
    """What is built, uploaded and served: one model, the same for every target."""

    name: str
    """Model name: the Vertex model ID prefix and the artifact folder in the bucket."""
    display_name: str | None = None
    """The model's display name in Vertex AI (default: name); changed in place."""
    framework: Literal["tensorflow", "pytorch"]
    """Which framework exports the model and which prebuilt container serves it."""
    source: str
    """Where the model comes from: `builtin:<example>` or `package.module:factory`."""
    payload_format: PayloadFormat = PayloadFormat.SERIALIZED_TF_TENSORS
    """The `payloadFormat` Earth Engine will be told to use in `ee.Model.fromVertexAi`."""
    artifact_dir: Path
    """Where `nox -s build` writes the artifact and its manifest.json (relative to the config)."""
    serving_image: str | None = None
    """Container image for every target that does not set its own; unset: our own image for
    each target's hardware (built from serving/, pushed to the target's registry, uploaded by
    digest); or a Vertex AI prebuilt image until its end of availability (config/images.py)."""
    custom_image: StrictBool = False
    """Set when the serving images are containers of your own (not checked)."""
    grpc: StrictBool = False
    """Open gRPC port 8500 on the container (`--container-grpc-ports=8500`)."""
    env: dict[str, str] = Field(default_factory=dict)
    """Extra environment variables for the serving container."""
    predict_route: str | None = None
    """HTTP predict route of a custom container; our images and the prebuilt ones bring their own."""
    health_route: str | None = None
    """HTTP health route of a custom container; our images and the prebuilt ones bring their own."""
    input_overlap: StrictInt = Field(default=0, ge=0, le=1024)
    """`inputOverlapSize` (square): pixels added on each edge of a tile sent to the model; an
    instance is tile_size + 2 * input_overlap pixels a side."""
    output_tile_size: StrictInt | None = Field(default=None, ge=1, le=4096)
    """`outputTileSize` (square): pixels a side of each answer; defaults to tile_size. The
    served model answers the centre output_tile_size of what the model computes."""
    max_payload_bytes: StrictInt = Field(
        default=payload.DEFAULT_MAX_PAYLOAD_BYTES, ge=1, le=rules.SHARED_ENDPOINT_MAX_PAYLOAD_BYTES
    )
    """`maxPayloadBytes`: the largest request Earth Engine may send, at most 1,500,000 (what
    the shared public Vertex AI endpoint the stacks create accepts; the 10 MB of dedicated and
    private endpoints is refused with them, since Earth Engine cannot call those)."""
    input_bands: tuple[str, ...] = ()
    """The bands Earth Engine sends, in order; defaults to the built-in example's bands.
    Needed for the payload budget before anything is built."""
    input_shapes: dict[str, Annotated[StrictInt, Field(ge=1, le=4096)]] = Field(default_factory=dict)
    """Array bands: values per pixel of each (Earth Engine's `inputShapes`); others are scalar."""
    projection: str | None = None
    """The CRS the model was trained at, as an EPSG code (`EPSG:32610`, `EPSG:4326`): Earth
    Engine's `proj`, with `scale`, and `fixInputProj = True`. Unset, Earth Engine feeds the
    model at the first band's default projection (PROJECTION_WARNING)."""
    scale: float | None = None
    """Metres per pixel the model was trained at (`ee.Projection(projection).atScale(scale)`);
    set together with projection."""
    # After the fields its payload budget depends on, so its validator sees them.
    tile_size: StrictInt = Field(default=256, ge=1, le=2048)
    """`inputTileSize` (square): the pixels of each tile Earth Engine predicts, overlap excluded."""
    version_label: str | None = None
    """Free label stored inside the artifact, so the same model with another label is another
    artifact (another sha256): a way to make a new version without new weights."""
    previous: PreviousArtifact | None = None
    """The artifact being replaced: its model version stays uploaded on every target while this
    is set, and serves `100 - traffic_percent` (canary; 0 promotes; 100 rolls back). Remove
    it once no target serves it any more: the next apply deletes its model version."""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not MODEL_NAME_RE.match(v):
            raise ValueError(f"{v!r}: allowed: 2-40 characters of a-z, 0-9 and '-', starting with a letter")
        return v

    @field_validator("display_name")
    @classmethod
    def _display_name(cls, v: str | None) -> str | None:
        check(None if v is None else rules.display_name(v))
        return v

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        if not re.fullmatch(r"builtin:[a-z0-9-]+|[A-Za-z_][\w.]*:[A-Za-z_]\w*", v):
            raise ValueError(f"{v!r}: allowed: 'builtin:<example>' or 'package.module:factory'")
        return v

    @field_validator("version_label")
    @classmethod
    def _version_label(cls, v: str | None) -> str | None:
        if v is not None and not VERSION_LABEL_RE.match(v):
            raise ValueError(f"{v!r}: allowed: 1-63 of A-Z, a-z, 0-9, '.', '_', '-', starting with a letter or digit")
        return v

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        return check_env(v)

    @field_validator("tile_size")
    @classmethod
    def _payload_budget(cls, v: int, info) -> int:
        data = info.data
        needed = {"framework", "payload_format", "source", "input_overlap", "max_payload_bytes", "input_bands"}
        if not needed <= set(data):
            return v  # an earlier field is already wrong; that error is reported instead
        if data["payload_format"] not in FRAMEWORK_PAYLOADS[data["framework"]]:
            return v  # the format itself is refused below
        bands = _bands(data["source"], data["input_bands"])
        shapes = data.get("input_shapes") or {}
        if shapes and data["payload_format"].value in ("ND_ARRAYS", "RAW_JSON"):
            return v  # array bands in a JSON format: refused below with its own message
        if bands:
            lengths = {b: shapes.get(b, 1) for b in bands}
            try:
                payload.check_budget(
                    data["payload_format"].value, lengths, v, data["input_overlap"], data["max_payload_bytes"]
                )
            except payload.PayloadTooLarge as error:
                raise ValueError(str(error).removeprefix("tile_size ")) from None
        return v

    @field_validator("projection")
    @classmethod
    def _projection(cls, v: str | None) -> str | None:
        if v is not None and not PROJECTION_RE.match(v):
            raise ValueError(
                f"{v!r}; allowed: an EPSG code 'EPSG:<number>', e.g. 'EPSG:32610' (UTM zone 10N) "
                "or 'EPSG:4326' (WGS84), as ee.Projection takes it"
            )
        return v

    @field_validator("scale", mode="before")
    @classmethod
    def _scale(cls, v):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0):
            raise ValueError(
                f"{v!r}; allowed: metres per pixel, a number above 0 (e.g. 10 for Sentinel-2, 30 for Landsat)"
            )
        return v

    @field_validator("max_payload_bytes", mode="before")
    @classmethod
    def _shared_endpoint_limit(cls, v):
        # Before the bounds check, so the message names the source, not only the bound.
        if isinstance(v, int) and not isinstance(v, bool) and v > rules.SHARED_ENDPOINT_MAX_PAYLOAD_BYTES:
            check(rules.max_payload_bytes(v))
        return v

    @field_validator("predict_route", "health_route")
    @classmethod
    def _route(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("/"):
            raise ValueError(f"{v!r}: allowed: an HTTP path starting with '/'")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ModelConfig:
        allowed = FRAMEWORK_PAYLOADS[self.framework]
        if self.payload_format not in allowed:
            raise ValueError(
                f"payload_format {self.payload_format.value!r} does not fit framework "
                f"{self.framework!r}; allowed: {', '.join(p.value for p in allowed)}"
            )
        if self.payload_format.is_grpc and not self.grpc:
            raise ValueError(
                f"payload_format {self.payload_format.value!r} needs the gRPC port: set grpc = true "
                f"(uploads with --container-grpc-ports={GRPC_PORT})"
            )
        if not self.custom_image:
            if self.serving_image:
                check_prebuilt_image(self.framework, self.serving_image)
            if self.predict_route or self.health_route:
                raise ValueError(
                    "predict_route/health_route come with our images and the prebuilt ones; "
                    "allowed only with custom_image = true"
                )
        return self

    @model_validator(mode="after")
    def _tiles(self) -> ModelConfig:
        side = self.tile_size + 2 * self.input_overlap
        if self.output_tile_size is not None:
            if self.output_tile_size > side:
                raise ValueError(
                    f"output_tile_size {self.output_tile_size} is larger than the tile sent "
                    f"({self.tile_size} + 2 x input_overlap {self.input_overlap} = {side}); "
                    f"allowed: output_tile_size <= tile_size + 2 * input_overlap ({side})"
                )
            if (side - self.output_tile_size) % 2:
                raise ValueError(
                    f"output_tile_size {self.output_tile_size}: the answer is the centre of the "
                    f"{side}-pixel tile, so {side} - output_tile_size must be even; allowed: "
                    f"{self.output_tile_size - 1} or {self.output_tile_size + 1}"
                )
        unknown = sorted(set(self.input_shapes) - set(self.bands))
        if unknown:
            raise ValueError(
                f"input_shapes names {', '.join(unknown)}, not in input_bands; allowed: "
                f"{', '.join(self.bands) or '(set input_bands)'}"
            )
        if self.input_shapes and self.payload_format.value in ("ND_ARRAYS", "RAW_JSON"):
            raise ValueError(
                f"input_shapes (array bands) with payload_format {self.payload_format.value!r}: Google's "
                "files do not say how Earth Engine writes array bands as JSON; allowed: a "
                "TensorFlow payload format, or scalar bands only"
            )
        return self

    @model_validator(mode="after")
    def _projection_with_scale(self) -> ModelConfig:
        if (self.projection is None) != (self.scale is None):
            missing = "scale" if self.scale is None else "projection"
            raise FieldError(
                missing,
                "projection and scale go together (ee.Projection(projection).atScale(scale)); "
                "allowed: both, e.g. projection = 'EPSG:32610' with scale = 10, or neither",
            )
        return self

    @property
    def bands(self) -> tuple[str, ...]:
        """The input bands: input_bands, else the built-in example's; () if not known before the build."""
        return _bands(self.source, self.input_bands)

    @property
    def band_lengths(self) -> dict[str, int]:
        """Values per pixel of each input band, in order."""
        return {b: self.input_shapes.get(b, 1) for b in self.bands}

    @property
    def grpc_ports(self) -> list[int]:
        return [GRPC_PORT] if self.grpc else []

    @property
    def warnings(self) -> list[str]:
        """What the config allows but a reviewer should hear about."""
        return [] if self.projection else [PROJECTION_WARNING]
