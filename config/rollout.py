"""The rollout config: one TOML file describing the model and every target project.

Every rule is checked when the file is loaded, before any stack is built, and a broken
rule stops synth with a message that names the field and the values it accepts.
"""

from __future__ import annotations

import ipaddress
import math
import re
import tomllib
import typing
from enum import Enum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError, ValidationInfo, field_validator,
                      model_validator)

from config import images
from config.images import IMAGE_FAMILY, EXAMPLE_PREBUILT, accelerator_device
from config import payload, rules
from config.rules import ACCELERATOR_TYPES  # noqa: F401 - the config module names them too

GRPC_PORT = 8500


class ConfigError(ValueError):
    """A rollout config that cannot be used; the message names every offending field."""


class FieldError(ValueError):
    """A cross-field check's error about one field of the model it runs on: reported at that
    field (`targets.0.accelerator_type: ...`), not at the model."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def _check(problem: str | None) -> None:
    """Raise a rule's message (config/rules.py) as the validator's error."""
    if problem:
        raise ValueError(problem)


def _check_field(field: str, problem: str | None) -> None:
    if problem:
        raise FieldError(field, problem)


class PayloadFormat(str, Enum):
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

NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,20}[a-z0-9]$")
MODEL_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,38}[a-z0-9]$")
SERVICE_ACCOUNT_RE = re.compile(
    r"^([a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z][a-z0-9-]{4,28}[a-z0-9]\.iam\.gserviceaccount\.com"
    r"|[0-9]+-compute@developer\.gserviceaccount\.com)$"
)
KMS_KEY_RE = re.compile(
    r"^projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/keyRings/[^/]+/cryptoKeys/[^/]+$"
)
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
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


def check_bucket_name(name: str) -> str:
    """Apply Cloud Storage's bucket naming rules, so GCS never refuses the name at apply."""
    allowed = "3-63 characters of a-z, 0-9, '-', '_' and '.', starting and ending with a letter or digit"
    if not 3 <= len(name) <= 222:
        raise ValueError(f"{name!r} has {len(name)} characters; allowed: {allowed}")
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]*[a-z0-9]", name):
        raise ValueError(f"{name!r} is not a valid bucket name; allowed: {allowed}")
    if ".." in name or "-." in name or ".-" in name:
        raise ValueError(f"{name!r} has '..', '-.' or '.-', which Cloud Storage refuses; allowed: {allowed}")
    components = name.split(".")
    if len(components) == 1 and len(name) > 63:
        raise ValueError(f"{name!r} has {len(name)} characters; allowed: {allowed}")
    if any(len(c) > 63 for c in components):
        raise ValueError(f"{name!r} has a dot-separated part over 63 characters; allowed: {allowed}")
    try:
        ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        raise ValueError(f"{name!r} is an IP address, which Cloud Storage refuses as a bucket name")
    if name.startswith("goog") or "google" in name or "g00gle" in name:
        raise ValueError(f"{name!r} starts with 'goog' or contains 'google', which Cloud Storage refuses")
    return name


def check_prebuilt_image(framework: str, uri: str, field: str = "serving_image") -> images.Prebuilt:
    """A Vertex AI prebuilt prediction image of this framework that is still available, or an
    error saying which are."""
    family = IMAGE_FAMILY[framework]
    image = images.prebuilt(uri)
    if image is None or image.family != family:
        raise ValueError(
            f"{field} {uri!r} is not a Vertex AI prebuilt {framework} image; allowed: unset (our own image, "
            f"built from serving/), a prebuilt one such as {EXAMPLE_PREBUILT[framework]!r}, or any image with "
            "custom_image = true"
        )
    problem = images.availability_problem(image, images.today())
    if problem:
        raise ValueError(f"{field}: {problem}")
    return image


def check_env(env: dict[str, str]) -> dict[str, str]:
    """Container environment variable names: what a shell and Vertex AI accept."""
    for key in env:
        if not ENV_NAME_RE.match(key):
            raise ValueError(f"{key!r}: allowed: letters, digits and '_', not starting with a digit")
        if key.startswith("AIP_"):
            raise ValueError(f"{key!r}: names starting with AIP_ are reserved by Vertex AI; allowed: any other name")
    return env


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class PreviousArtifact(_Frozen):
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


class ModelConfig(payload.TileSides, _Frozen):
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
    max_payload_bytes: StrictInt = Field(default=payload.DEFAULT_MAX_PAYLOAD_BYTES, ge=1,
                                         le=rules.SHARED_ENDPOINT_MAX_PAYLOAD_BYTES)
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
        _check(None if v is None else rules.display_name(v))
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
        if not {"framework", "payload_format", "source", "input_overlap", "max_payload_bytes", "input_bands"} <= set(data):
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
                payload.check_budget(data["payload_format"].value, lengths, v, data["input_overlap"],
                                     data["max_payload_bytes"])
            except payload.PayloadTooLarge as error:
                raise ValueError(str(error).removeprefix("tile_size ")) from None
        return v

    @field_validator("projection")
    @classmethod
    def _projection(cls, v: str | None) -> str | None:
        if v is not None and not PROJECTION_RE.match(v):
            raise ValueError(f"{v!r}; allowed: an EPSG code 'EPSG:<number>', e.g. 'EPSG:32610' (UTM zone 10N) "
                             "or 'EPSG:4326' (WGS84), as ee.Projection takes it")
        return v

    @field_validator("scale", mode="before")
    @classmethod
    def _scale(cls, v):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
                              or v <= 0):
            raise ValueError(f"{v!r}; allowed: metres per pixel, a number above 0 (e.g. 10 for Sentinel-2, "
                             "30 for Landsat)")
        return v

    @field_validator("max_payload_bytes", mode="before")
    @classmethod
    def _shared_endpoint_limit(cls, v):
        # Before the bounds check, so the message names the source, not only the bound.
        if isinstance(v, int) and not isinstance(v, bool) and v > rules.SHARED_ENDPOINT_MAX_PAYLOAD_BYTES:
            _check(rules.max_payload_bytes(v))
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
            raise FieldError(missing, "projection and scale go together (ee.Projection(projection).atScale(scale)); "
                                      "allowed: both, e.g. projection = 'EPSG:32610' with scale = 10, or neither")
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


# What `gcloud ai models describe` and `list` print: the project as its ID or number, the
# version by its ID (versionId) or an alias ([types] model_service.py GetModelRequest.name).
MODEL_VERSION_RE = re.compile(
    r"^projects/(?P<project>[^/]+)/locations/(?P<region>[^/]+)/models/(?P<model_id>[^/@]+)"
    r"@(?P<version>[0-9]+|[a-z][a-zA-Z0-9-]{0,126}[a-z0-9])$"
)


class AdoptConfig(_Frozen):
    """Vertex AI resources created outside the stacks (e.g. by `gcloud ai endpoints create`,
    `gcloud ai models upload` and `gcloud ai endpoints deploy-model`) that the next apply imports
    instead of creating anew. Keep it in the config afterwards: it names the resources the
    stacks now manage."""

    endpoint: StrictBool = False
    """The target's `endpoint_id` names an endpoint that exists: the endpoint stack imports it
    (any ID Vertex AI gave it, e.g. the 19 digits `gcloud ai endpoints create` prints)."""
    model_version: str | None = None
    """`projects/<p>/locations/<region>/models/<model ID>@<version ID or alias>` of the existing
    version; its model ID becomes the parent of every later version."""
    artifact_sha256: str | None = None
    """sha256 of the artifact that version serves (the folder under `models/<name>/` in the bucket)."""
    deployed_model_id: str | None = None
    """ID of its existing deployment on the target's endpoint (as `gcloud ai endpoints deploy-model` prints it)."""

    @field_validator("model_version")
    @classmethod
    def _model_version(cls, v: str | None) -> str | None:
        match = MODEL_VERSION_RE.match(v or "")
        if v is not None and not match:
            raise ValueError(
                f"{v!r}; allowed: 'projects/<project>/locations/<region>/models/<model ID>@<version ID or alias>' "
                "(`gcloud ai models describe MODEL --region REGION` shows name and versionId)"
            )
        if match:
            _check(rules.model_id(match["model_id"], existing=True))
        return v

    @field_validator("artifact_sha256")
    @classmethod
    def _sha(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"[0-9a-f]{64}", v):
            raise ValueError(f"{v!r}: allowed: the 64 lowercase hex digits of the artifact's sha256")
        return v

    @field_validator("deployed_model_id")
    @classmethod
    def _deployed_model_id(cls, v: str | None) -> str | None:
        _check(None if v is None else rules.deployed_model_id(v, existing=True))
        return v

    @model_validator(mode="after")
    def _together(self) -> AdoptConfig:
        if (self.model_version is None) != (self.artifact_sha256 is None):
            missing = "artifact_sha256" if self.artifact_sha256 is None else "model_version"
            raise FieldError(missing, "model_version and artifact_sha256 go together; allowed: both (the version and "
                                      "the artifact it serves) or neither")
        if self.deployed_model_id is not None and self.model_version is None:
            raise FieldError("model_version", "deployed_model_id needs the model version it serves; allowed: set "
                                              "model_version and artifact_sha256 too")
        if not (self.endpoint or self.model_version):
            raise ValueError("nothing to adopt; allowed: endpoint = true, and/or model_version with artifact_sha256")
        return self

    @property
    def model_id(self) -> str | None:
        return MODEL_VERSION_RE.match(self.model_version)["model_id"] if self.model_version else None


NOTIFICATION_CHANNEL_RE = re.compile(r"^projects/(?P<project>[^/]+)/notificationChannels/[^/]+$")
CO_HOSTING_DOC = "https://cloud.google.com/vertex-ai/docs/predictions/model-co-hosting"


class RequestLoggingConfig(_Frozen):
    """Request-response logging of the endpoint into BigQuery (Vertex AI's
    `predictRequestResponseLoggingConfig`). The endpoint stack creates the dataset (with the
    target's kms_key when set); Vertex AI creates the table in it."""

    sampling_rate: float
    """Fraction of requests logged, greater than 0 and at most 1."""
    dataset: str | None = None
    """BigQuery dataset, in the target's project and region (default `<model name>_requests`,
    '-' as '_'). It must not exist: the endpoint stack creates it."""
    table: str = "request_response_logging"
    """Table Vertex AI creates in the dataset; it must not exist (a table reference in
    `bigquery_destination` needs the dataset to exist and the table not to: io.py BigQueryDestination)."""

    @field_validator("sampling_rate", mode="before")
    @classmethod
    def _rate(cls, v):
        _check(rules.sampling_rate(v))
        return v

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, v: str | None) -> str | None:
        _check(None if v is None else rules.bigquery_id(v))
        return v

    @field_validator("table")
    @classmethod
    def _table(cls, v: str) -> str:
        _check(rules.bigquery_id(v, "table"))
        return v


class MonitoringConfig(_Frozen):
    """A Cloud Monitoring alert policy on the endpoint: 5xx error ratio and p99 latency. Off by default."""

    enabled: StrictBool = False
    """The switch: one alert policy per endpoint when true."""
    error_rate: float = 0.05
    """Alert when the share of 5xx responses among all responses exceeds this (greater than 0, at most 1)."""
    p99_latency_ms: StrictInt = Field(default=5000, ge=1, le=3_600_000)
    """Alert when the 99th percentile of the total prediction latency of a deployed model exceeds this (ms)."""
    window_seconds: StrictInt = Field(default=300, ge=60, le=86_400)
    """Alignment period and how long a condition must hold, a whole number of minutes (Cloud
    Monitoring: durations are multiples of 60 s, alignment periods at least 60 s)."""
    notification_channels: tuple[str, ...] = ()
    """`projects/<project>/notificationChannels/<id>` of the target's project; none: incidents only."""

    @field_validator("error_rate", mode="before")
    @classmethod
    def _rate(cls, v):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 1:
            raise ValueError(f"{v!r}; allowed: a fraction greater than 0 and at most 1 (0.05: 5% of responses are 5xx)")
        return v

    @field_validator("window_seconds")
    @classmethod
    def _window(cls, v: int) -> int:
        # monitoring_v3_messages.py MetricThreshold.duration: "only values that are a multiple of a minute".
        if v % 60:
            raise ValueError(f"{v!r}; allowed: a multiple of 60 from 60 to 86400")
        return v

    @field_validator("notification_channels")
    @classmethod
    def _channels(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for channel in v:
            if not NOTIFICATION_CHANNEL_RE.match(channel):
                raise ValueError(f"{channel!r}; allowed: 'projects/<project>/notificationChannels/<id>' "
                                 "(`gcloud beta monitoring channels list` shows them)")
        if len(set(v)) != len(v):
            raise ValueError("a channel is listed twice; allowed: each channel once")
        return v


class ResourcePoolConfig(_Frozen):
    """A shared deployment resource pool (co-hosting: several models on the same machines)
    this target deploys into instead of machines of its own."""

    id: str
    """The pool's ID in the target's project and region."""
    create: StrictBool = True
    """true: the endpoint stack creates the pool with the target's machine_type, accelerator and
    replicas; false: it exists already (another model's rollout created it)."""

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        _check(rules.resource_pool_id(v))
        return v


# AutoscalingConfig's fields -> the metric each sets a target for.
AUTOSCALING_FIELDS = dict(zip(("cpu_utilization", "accelerator_duty_cycle", "requests_per_minute"),
                              rules.AUTOSCALING_METRICS))


class AutoscalingConfig(_Frozen):
    """`[targets.autoscaling]`: the targets Vertex AI scales replicas on, between min_replicas
    and max_replicas (DeployedModel.dedicatedResources.autoscalingMetricSpecs); changed in
    place (mutateDeployedModel). With accelerators, Vertex AI adds replicas when either the CPU
    or the duty cycle is over its target, and removes them only when both are under."""

    cpu_utilization: int | None = None
    """Target CPU utilization in percent, 1-100 (unset: Vertex AI's default, 60)."""
    accelerator_duty_cycle: int | None = None
    """Target accelerator duty cycle in percent, 1-100 (unset: 60); only with accelerators."""
    requests_per_minute: int | None = None
    """Target requests per minute per replica (metric `.../prediction/online/request_count`);
    unset: not scaled on requests."""

    @field_validator("cpu_utilization", "accelerator_duty_cycle", "requests_per_minute", mode="before")
    @classmethod
    def _target(cls, v, info: ValidationInfo):
        _check(None if v is None else rules.autoscaling_target(AUTOSCALING_FIELDS[info.field_name], v))
        return v

    def targets(self, accelerators: bool) -> dict[str, int | None]:
        """eevertex_deployment's autoscaling attributes: the CPU target always, and the duty
        cycle with accelerators, at Vertex AI's default when unset, so that removing a target
        from the config sets it back to the default."""
        default = rules.DEFAULT_AUTOSCALING_TARGET
        return {
            "autoscaling_cpu_utilization_target": self.cpu_utilization or default,
            "autoscaling_accelerator_duty_cycle_target": (self.accelerator_duty_cycle or default) if accelerators else None,
            "autoscaling_request_count_per_minute_target": self.requests_per_minute,
        }


class TargetConfig(_Frozen):
    """One Google Cloud project (dev, staging, prod, ...) the model is rolled out to."""

    name: str
    """Short target name; prefixes the four stacks (`<name>-bucket`, ...)."""
    project: str
    """Google Cloud project ID."""
    allow_unlisted_region: StrictBool = False
    """Accept a region missing from config/regions.py (one newer than that list)."""
    region: str
    """Vertex AI region that serves online predictions; also the bucket's location."""
    bucket: str
    """Bucket that holds the model artifacts (created, versioned, never force-destroyed)."""
    machine_type: str = "n1-standard-4"
    """Compute machine type for each serving replica."""
    accelerator_type: str | None = None
    """GPU/TPU type per replica; requires accelerator_count >= 1 and a -gpu serving image."""
    accelerator_count: StrictInt = Field(default=0, ge=0, le=16)
    """Accelerators per replica."""
    serving_image: str | None = None
    """Container image for this target; default: model.serving_image, else our own image for
    this target's hardware (CPU, or GPU with an NVIDIA accelerator)."""
    image_repository: str = "ee-serving"
    """Artifact Registry repository (docker format, in the target's project and region) that
    the stacks create and our serving image is pushed to."""
    min_replicas: StrictInt = Field(default=1, ge=1, le=rules.MAX_REPLICAS)
    """Replicas always running."""
    max_replicas: StrictInt = Field(default=1, ge=1, le=rules.MAX_REPLICAS)
    """Upper bound for autoscaling."""
    required_replicas: StrictInt | None = None
    """Replicas that must be up for a deploy (or a replica change) to succeed, 1 to
    min_replicas; Vertex AI keeps starting the rest (DedicatedResources.required_replica_count).
    Unset: all min_replicas. Changed in place."""
    autoscaling: AutoscalingConfig = Field(default_factory=AutoscalingConfig)
    """Autoscaling targets (CPU, accelerator duty cycle, requests per minute)."""
    spot: StrictBool = False
    """Run the replicas on Spot VMs (DedicatedResources.spot): cheaper, and Compute Engine may
    stop them at any time. Vertex AI cannot change it on a deployed model: a change deploys anew."""
    container_logging: StrictBool = True
    """The serving container's stdout/stderr go to Cloud Logging (false sets the deployment's
    disableContainerLogging). Changed in place."""
    access_logging: StrictBool = False
    """Vertex AI's online-prediction access logs (one Cloud Logging entry per request, with its
    latency; DeployedModel.enableAccessLogging); not the bucket's access_log_bucket. Vertex AI
    cannot change it on a deployed model: a change deploys anew."""
    env: dict[str, str] = Field(default_factory=dict)
    """Environment variables for this target's serving containers, over model.env (the same
    name here wins). Part of the model version: a change uploads a new version (of the
    previous artifact too, while a canary runs) and deploys it."""
    traffic_percent: StrictInt = Field(default=100, ge=0, le=100)
    """Share of the endpoint's traffic the current artifact gets; the rest goes to model.previous.
    A version with 0% is not deployed (0 rolls back to the previous artifact)."""
    verify_promotion: StrictBool = True
    """When the current artifact's deployment takes traffic, check it answers the build's golden
    tile, and put the split back if not (README "Verified promotion"); false moves traffic
    unchecked (e.g. against an emulator that serves nothing)."""
    service_account: str | None = None
    """Service account the serving container runs as (Vertex default when unset)."""
    labels: dict[str, str] = Field(default_factory=dict)
    """Labels on the bucket, endpoint, model and deployment."""
    kms_key: str | None = None
    """Cloud KMS key (CMEK) for the bucket, the endpoint and the uploaded models; must be in
    the target region."""
    access_log_bucket: str | None = None
    """Existing bucket that receives the artifact bucket's usage logs (GCS access logging,
    object prefix `<bucket>/`); no access logs when unset."""
    predict_members: tuple[str, ...] = ()
    """IAM members (user:, serviceAccount:, group:, domain:) allowed to call the endpoint from Earth Engine."""
    predict_scope: Literal["endpoint", "project"] = "endpoint"
    """Where predict_members may call: "endpoint" grants the predict role on this endpoint only
    (google-beta endpoint IAM); "project" on every Vertex AI endpoint of the project."""
    state_bucket: str | None = None
    """GCS bucket for Terraform remote state (prefix per stack); local state when unset."""
    endpoint_id: str | None = None
    """ID of the Vertex AI endpoint: derived from project, region and model name when unset.
    For an endpoint the stacks create, Vertex AI's rule: a number of at most 9 digits without
    a leading zero, or up to 63 of a-z, 0-9, '-'. For one that exists (`adopt.endpoint = true`),
    any ID Vertex AI gave it."""
    endpoint_display_name: str | None = None
    """The endpoint's display name (default `<model name>-<target name>`); changed in place."""
    adopt: AdoptConfig | None = None
    """Existing model version and deployment to import into this target's stacks."""
    request_logging: RequestLoggingConfig | None = None
    """Log requests and responses of the endpoint to BigQuery; off when unset."""
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    """Alert policy on the endpoint's error rate and p99 latency; off unless `enabled = true`."""
    resource_pool: ResourcePoolConfig | None = None
    """Deploy into a shared deployment resource pool; only with a Vertex AI prebuilt serving image."""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError(f"{v!r}: allowed: 2-22 characters of a-z, 0-9 and '-', starting with a letter")
        return v

    @field_validator("project")
    @classmethod
    def _project(cls, v: str) -> str:
        _check(rules.project(v))
        return v

    @field_validator("region")
    @classmethod
    def _region(cls, v: str, info: ValidationInfo) -> str:
        _check(rules.region(v, allow_unlisted=info.data.get("allow_unlisted_region") is True))
        return v

    @field_validator("bucket", "state_bucket", "access_log_bucket")
    @classmethod
    def _bucket(cls, v: str | None) -> str | None:
        return None if v is None else check_bucket_name(v)

    @field_validator("image_repository")
    @classmethod
    def _image_repository(cls, v: str) -> str:
        # Artifact Registry repository IDs: lowercase letters, digits and hyphens, starting
        # with a letter, at most 63 (gcloud artifacts repositories create REPOSITORY).
        if not re.fullmatch(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?", v):
            raise ValueError(f"{v!r}; allowed: 1-63 of a-z, 0-9 and '-', starting with a letter, not ending with '-'")
        return v

    @field_validator("machine_type")
    @classmethod
    def _machine_type(cls, v: str) -> str:
        _check(rules.machine_type(v))
        return v

    @field_validator("accelerator_type")
    @classmethod
    def _accelerator_type(cls, v: str | None) -> str | None:
        _check(rules.accelerator_type(v))
        return v

    @field_validator("endpoint_display_name")
    @classmethod
    def _display_name(cls, v: str | None) -> str | None:
        _check(None if v is None else rules.display_name(v))
        return v

    @field_validator("service_account")
    @classmethod
    def _service_account(cls, v: str | None) -> str | None:
        if v is not None and not SERVICE_ACCOUNT_RE.match(v):
            raise ValueError(
                f"{v!r}; allowed: '<name>@<project>.iam.gserviceaccount.com' or "
                "'<number>-compute@developer.gserviceaccount.com'"
            )
        return v

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        _check(rules.labels(v, reserved=rules.RESERVED_LABELS))
        return v

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        return check_env(v)

    @model_validator(mode="before")
    @classmethod
    def _refused(cls, data):
        """Endpoint kinds Earth Engine cannot call, refused by name with the reason (not as an
        unknown field): config/rules.py REFUSED_TARGET_FIELDS."""
        if isinstance(data, dict):
            for key in data:
                if key in rules.REFUSED_TARGET_FIELDS:
                    raise FieldError(key, rules.REFUSED_TARGET_FIELDS[key])
        return data

    @field_validator("kms_key")
    @classmethod
    def _kms_key(cls, v: str | None) -> str | None:
        if v is not None and not KMS_KEY_RE.match(v):
            raise ValueError(
                f"{v!r}; allowed: 'projects/<p>/locations/<region>/keyRings/<ring>/cryptoKeys/<key>'"
            )
        return v

    @field_validator("predict_members")
    @classmethod
    def _members(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for member in v:
            _check(rules.member(member))
        return v

    @model_validator(mode="after")
    def _consistent(self) -> TargetConfig:
        problem = rules.replicas(self.min_replicas, self.max_replicas)
        if problem:
            raise FieldError(f"{problem[0]}_replicas", problem[1])
        problem = rules.machine_spec(self.machine_type, self.accelerator_type, self.accelerator_count)
        if problem:
            raise FieldError(*problem)
        _check_field("required_replicas", rules.required_replicas(self.required_replicas, self.min_replicas))
        _check_field("autoscaling.accelerator_duty_cycle", rules.duty_cycle_needs_accelerator(
            self.autoscaling.accelerator_duty_cycle, self.accelerator_count))
        adopting = self.adopt is not None and self.adopt.endpoint
        if self.endpoint_id is not None:
            _check_field("endpoint_id", rules.endpoint_id(self.endpoint_id, existing=adopting))
        elif adopting:
            raise FieldError("adopt", "endpoint = true needs the existing endpoint's ID; allowed: set endpoint_id "
                                      "on the target (as `gcloud ai endpoints list` shows it)")
        if self.kms_key:
            location = KMS_KEY_RE.match(self.kms_key)["location"]
            if location != self.region:
                raise ValueError(
                    f"kms_key is in {location!r} but the target region is {self.region!r}; "
                    "allowed: a key in the same region as the bucket and endpoint"
                )
        if self.adopt and self.adopt.model_version:
            match = MODEL_VERSION_RE.match(self.adopt.model_version)
            # A project number (as gcloud prints names) cannot be checked against the ID here.
            if match["region"] != self.region or (match["project"] != self.project and not match["project"].isdigit()):
                raise FieldError("adopt", (
                    f"model_version is in {match['project']}/{match['region']} but the target is "
                    f"{self.project}/{self.region}; allowed: a model version in the target's project and region"))
        for channel in self.monitoring.notification_channels:
            project = NOTIFICATION_CHANNEL_RE.match(channel)["project"]
            if project != self.project and not project.isdigit():
                raise FieldError("monitoring", (
                    f"notification_channels: {channel!r} is in project {project!r}; allowed: channels of the "
                    f"target's project {self.project!r} (an alert policy notifies channels of its own project)"))
        if self.resource_pool and self.kms_key:
            raise FieldError("resource_pool", (
                "with kms_key: an endpoint and the pool it deploys into need the same encryption spec "
                "(deployment_resource_pool.py DeploymentResourcePool.encryption_spec), and the google provider's "
                "google_vertex_ai_deployment_resource_pool cannot set one; allowed: no kms_key, or no resource_pool"))
        if self.resource_pool:
            own = [name for name, set_ in (("spot", self.spot), ("required_replicas", self.required_replicas),
                                           ("autoscaling", self.autoscaling != AutoscalingConfig())) if set_]
            if own:
                raise FieldError("resource_pool", (
                    f"with {', '.join(own)}: a deployment in a shared pool runs on the pool's machines "
                    "(DeployedModel.shared_resources, a oneof with dedicated_resources), and the google provider's "
                    "google_vertex_ai_deployment_resource_pool takes neither spot nor required replicas; allowed: "
                    "leave them unset with resource_pool, or no resource_pool"))
        if self.access_log_bucket == self.bucket:
            raise ValueError(
                f"access_log_bucket is the artifact bucket {self.bucket!r}; "
                "allowed: another bucket (a bucket cannot hold its own access logs usefully)"
            )
        return self


class RolloutConfig(_Frozen):
    """The whole rollout: one model, promoted through an ordered list of targets."""

    model: ModelConfig
    targets: Annotated[tuple[TargetConfig, ...], Field(min_length=1)]
    """Targets in promotion order (dev first)."""
    path: Path | None = None
    """Where the config was read from; artifact_dir is relative to its folder."""

    @model_validator(mode="after")
    def _consistent(self) -> RolloutConfig:
        seen: set[str] = set()
        buckets: set[str] = set()
        for index, target in enumerate(self.targets):
            if target.name in seen:
                raise ValueError(f"targets.{index}.name: {target.name!r} is used twice; allowed: unique names")
            if target.bucket in buckets:
                raise ValueError(
                    f"targets.{index}.bucket: {target.bucket!r} is used by another target; "
                    "allowed: one bucket per target"
                )
            seen.add(target.name)
            buckets.add(target.bucket)
            if target.traffic_percent < 100 and self.model.previous is None:
                raise ValueError(
                    f"targets.{index}.traffic_percent: {target.traffic_percent} leaves "
                    f"{100 - target.traffic_percent}% for the previous artifact, but model.previous is "
                    "unset; allowed: 100, or set [model.previous] sha256 = '<previous artifact sha256>'"
                )
            self._check_image(index, target)
            self._check_pool(index, target)
        return self

    def _check_pool(self, index: int, target: TargetConfig) -> None:
        """Co-hosting serves only Vertex AI's prebuilt TensorFlow and PyTorch containers: "custom
        containers are not supported" (CO_HOSTING_DOC), and the model must list SHARED_RESOURCES in
        supportedDeploymentResourcesTypes (model.py Model.DeploymentResourcesType)."""
        if target.resource_pool is None:
            return
        kind = self.image_kind(target)
        previous = self.model.previous
        if kind == "prebuilt" and previous and target.traffic_percent < 100 and previous.serving_image \
                and not images.prebuilt(previous.serving_image):
            kind, where = "custom", "model.previous.serving_image"
        else:
            where = f"targets.{index}.serving_image" if target.serving_image else "model.serving_image"
        if kind != "prebuilt":
            image = "our own serving image" if kind == "own" else f"a custom container ({where})"
            raise ValueError(
                f"targets.{index}.resource_pool: the target serves {image}, and a deployment resource pool takes "
                f"only Vertex AI's prebuilt TensorFlow and PyTorch containers (\"custom containers are not "
                f"supported\": {CO_HOSTING_DOC}); allowed: a prebuilt serving_image such as "
                f"{EXAMPLE_PREBUILT[self.model.framework]!r}, or no resource_pool"
            )

    def _check_image(self, index: int, target: TargetConfig) -> None:
        """Our own image must exist for the hardware; a prebuilt image must be of the model's
        framework, fit the target's hardware and still be available."""
        model = self.model
        field = f"targets.{index}.serving_image" if target.serving_image else "model.serving_image"
        device = accelerator_device(target.accelerator_type)
        kind = self.image_kind(target)
        if kind == "custom":
            if not (target.serving_image or model.serving_image):
                raise ValueError(
                    f"targets.{index}.serving_image: custom_image = true needs your container's URI, "
                    "here or in model.serving_image"
                )
            return
        if device == "tpu":
            raise ValueError(
                f"targets.{index}.accelerator_type: neither our images nor Vertex AI's prebuilt {model.framework} "
                f"images serve on {target.accelerator_type}; allowed: an NVIDIA accelerator or none, or your "
                "own image with custom_image = true"
            )
        checked = [(field, self.serving_image(target))] if kind == "prebuilt" else []
        if model.previous and model.previous.serving_image and target.traffic_percent < 100 \
                and images.prebuilt(model.previous.serving_image):
            checked.append(("model.previous.serving_image", model.previous.serving_image))
        for where, uri in checked:
            image = check_prebuilt_image(model.framework, uri, where)
            if image.device != device:
                hardware = f"accelerator_type {target.accelerator_type}" if target.accelerator_type else "no accelerator"
                family = IMAGE_FAMILY[model.framework]
                raise ValueError(
                    f"{where}: {uri!r} is a {image.device.upper()} image but targets.{index} has {hardware}; "
                    f"allowed: a '{family}-{device}.' prebuilt image, or leave serving_image unset for our own "
                    f"{device.upper()} image"
                )

    def image_kind(self, target: TargetConfig) -> Literal["own", "prebuilt", "custom"]:
        """What serves this target: our own image (the default), a Vertex AI prebuilt one, or a
        container of the user's (custom_image)."""
        if self.model.custom_image:
            return "custom"
        return "prebuilt" if (target.serving_image or self.model.serving_image) else "own"

    def serving_image(self, target: TargetConfig) -> str | None:
        """The prebuilt or custom image URI that serves the current artifact on this target;
        None for our own image (its digest is known only once it is built)."""
        return target.serving_image or self.model.serving_image

    def own_image(self, target: TargetConfig) -> images.OwnImage | None:
        """Our image for this target, or None where a prebuilt or custom one serves."""
        if self.image_kind(target) != "own":
            return None
        return images.own_image(self.model.framework, target.accelerator_type)

    @property
    def image_kinds(self) -> frozenset[str]:
        """Every kind of image some target uses (what the artifact must hold)."""
        return frozenset(self.image_kind(t) for t in self.targets)

    @property
    def warnings(self) -> list[str]:
        """What synth prints as warnings (the config is usable, but a reviewer should know)."""
        return list(self.model.warnings)

    @property
    def artifact_dir(self) -> Path:
        base = self.path.parent if self.path else Path.cwd()
        return (base / self.model.artifact_dir).resolve()


_NUMBER_ERRORS = {
    "greater_than_equal", "less_than_equal", "greater_than", "less_than",
    "int_type", "int_parsing", "int_from_float",
}


def _bounds(loc: tuple) -> tuple[int, int] | None:
    """(ge, le) of the integer field (or dict value, e.g. input_shapes.<band>) at a
    validation error's location."""
    model: type[BaseModel] | None = RolloutConfig
    metadata, annotation = None, None
    for part in loc:
        if isinstance(part, int):
            continue
        if model is None:
            # A key of a dict field: its values' constraints sit on the value type.
            args = typing.get_args(annotation)
            value = args[1] if len(args) == 2 else None
            metadata = [m for info in typing.get_args(value)[1:] for m in getattr(info, "metadata", [info])]
            annotation = value
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        metadata, annotation = field.metadata, field.annotation
        inner = getattr(annotation, "__args__", (annotation,))[0]
        model = inner if isinstance(inner, type) and issubclass(inner, BaseModel) else None
    if not metadata:
        return None
    low = next((m.ge for m in metadata if hasattr(m, "ge")), None)
    high = next((m.le for m in metadata if hasattr(m, "le")), None)
    return None if low is None or high is None else (low, high)


def _describe(error: ValidationError) -> str:
    lines = []
    errors = error.errors()
    for item in errors:
        loc = item["loc"]
        if item["type"] == "too_short" and any(e["loc"][:len(loc)] == loc and len(e["loc"]) > len(loc) for e in errors):
            continue  # pydantic counts only the valid items: their own errors say what is wrong
        error_object = (item.get("ctx") or {}).get("error")
        if isinstance(error_object, FieldError):
            loc = (*loc, error_object.field)
        where = ".".join(str(part) for part in loc) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "enum":
            message = f"{item['input']!r}; allowed: {item['ctx']['expected']}"
        elif item["type"] == "literal_error":
            message = f"{item['input']!r}; allowed: {item['ctx']['expected']}"
        elif item["type"] == "extra_forbidden":
            message = "unknown field; check the spelling against docs/configuration.md"
        elif item["type"] in _NUMBER_ERRORS and (bounds := _bounds(item["loc"])):
            message = f"{item['input']!r}; allowed: a whole number from {bounds[0]} to {bounds[1]}"
        elif item["type"] == "bool_type":
            message = f"{item['input']!r}; allowed: true or false"
        elif item["type"] in ("string_type", "dict_type", "tuple_type", "list_type", "model_type", "model_attributes_type"):
            kind = {"string_type": "a string", "dict_type": "a table", "tuple_type": "a list", "list_type": "a list"}
            message = f"{item['input']!r}; allowed: {kind.get(item['type'], 'a table')}"
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)


def parse_config(data: dict, path: Path | None = None) -> RolloutConfig:
    """Validate an already-parsed config mapping."""
    try:
        return RolloutConfig.model_validate({**data, "path": path})
    except ValidationError as error:
        where = f" {path}" if path else ""
        raise ConfigError(f"invalid rollout config{where}:\n{_describe(error)}") from None


def load_config(path: str | Path) -> RolloutConfig:
    """Read and validate a rollout config file (TOML)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"rollout config {path} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"rollout config {path} is not valid TOML: {error}") from None
    return parse_config(data, path.resolve())
