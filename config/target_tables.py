"""The tables of a target: `[targets.adopt]`, `[targets.request_logging]`, `[targets.monitoring]`,
`[targets.resource_pool]` and `[targets.autoscaling]`, each with the checks it can make alone;
TargetConfig (config/target.py) checks them against the target's other fields."""

from __future__ import annotations

import re

from pydantic import Field, StrictBool, StrictInt, ValidationInfo, field_validator, model_validator

from config import rules
from config.checks import FieldError, Frozen, check

# What `gcloud ai models describe` and `list` print: the project as its ID or number, the
# version by its ID (versionId) or an alias ([types] model_service.py GetModelRequest.name).
MODEL_VERSION_RE = re.compile(
    r"^projects/(?P<project>[^/]+)/locations/(?P<region>[^/]+)/models/(?P<model_id>[^/@]+)"
    r"@(?P<version>[0-9]+|[a-z][a-zA-Z0-9-]{0,126}[a-z0-9])$"
)


class AdoptConfig(Frozen):
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
            check(rules.model_id(match["model_id"], existing=True))
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
        check(None if v is None else rules.deployed_model_id(v, existing=True))
        return v

    @model_validator(mode="after")
    def _together(self) -> AdoptConfig:
        if (self.model_version is None) != (self.artifact_sha256 is None):
            missing = "artifact_sha256" if self.artifact_sha256 is None else "model_version"
            raise FieldError(
                missing,
                "model_version and artifact_sha256 go together; allowed: both (the version and "
                "the artifact it serves) or neither",
            )
        if self.deployed_model_id is not None and self.model_version is None:
            raise FieldError(
                "model_version",
                "deployed_model_id needs the model version it serves; allowed: set "
                "model_version and artifact_sha256 too",
            )
        if not (self.endpoint or self.model_version):
            raise ValueError("nothing to adopt; allowed: endpoint = true, and/or model_version with artifact_sha256")
        return self

    @property
    def model_id(self) -> str | None:
        match = MODEL_VERSION_RE.match(self.model_version or "")
        return match["model_id"] if match else None


NOTIFICATION_CHANNEL_RE = re.compile(r"^projects/(?P<project>[^/]+)/notificationChannels/[^/]+$")


class RequestLoggingConfig(Frozen):
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
        check(rules.sampling_rate(v))
        return v

    @field_validator("dataset")
    @classmethod
    def _dataset(cls, v: str | None) -> str | None:
        check(None if v is None else rules.bigquery_id(v))
        return v

    @field_validator("table")
    @classmethod
    def _table(cls, v: str) -> str:
        check(rules.bigquery_id(v, "table"))
        return v


class MonitoringConfig(Frozen):
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
                raise ValueError(
                    f"{channel!r}; allowed: 'projects/<project>/notificationChannels/<id>' "
                    "(`gcloud beta monitoring channels list` shows them)"
                )
        if len(set(v)) != len(v):
            raise ValueError("a channel is listed twice; allowed: each channel once")
        return v


class ResourcePoolConfig(Frozen):
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
        check(rules.resource_pool_id(v))
        return v


# AutoscalingConfig's fields -> the metric each sets a target for.
AUTOSCALING_FIELDS = dict(
    zip(("cpu_utilization", "accelerator_duty_cycle", "requests_per_minute"), rules.AUTOSCALING_METRICS, strict=True)
)


class AutoscalingConfig(Frozen):
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
        metric = AUTOSCALING_FIELDS[str(info.field_name)]
        check(None if v is None else rules.autoscaling_target(metric, v))
        return v

    def targets(self, accelerators: bool) -> dict[str, int | None]:
        """eevertex_deployment's autoscaling attributes: the CPU target always, and the duty
        cycle with accelerators, at Vertex AI's default when unset, so that removing a target
        from the config sets it back to the default."""
        default = rules.DEFAULT_AUTOSCALING_TARGET
        return {
            "autoscaling_cpu_utilization_target": self.cpu_utilization or default,
            "autoscaling_accelerator_duty_cycle_target": (self.accelerator_duty_cycle or default)
            if accelerators
            else None,
            "autoscaling_request_count_per_minute_target": self.requests_per_minute,
        }
