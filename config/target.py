"""`[[targets]]`: one Google Cloud project the model is rolled out to (TargetConfig), its fields'
checks, and the checks across its fields and tables."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, StrictBool, StrictInt, ValidationInfo, field_validator, model_validator

from config import machines, rules
from config.checks import FieldError, Frozen, check, check_bucket_name, check_env, check_field
from config.target_tables import (
    MODEL_VERSION_RE,
    NOTIFICATION_CHANNEL_RE,
    AdoptConfig,
    AutoscalingConfig,
    MonitoringConfig,
    RequestLoggingConfig,
    ResourcePoolConfig,
)

NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,20}[a-z0-9]$")
SERVICE_ACCOUNT_RE = re.compile(
    r"^([a-z][a-z0-9-]{4,28}[a-z0-9]@[a-z][a-z0-9-]{4,28}[a-z0-9]\.iam\.gserviceaccount\.com"
    r"|[0-9]+-compute@developer\.gserviceaccount\.com)$"
)
KMS_KEY_RE = re.compile(r"^projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/keyRings/[^/]+/cryptoKeys/[^/]+$")


class TargetConfig(Frozen):
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
        check(rules.project(v))
        return v

    @field_validator("region")
    @classmethod
    def _region(cls, v: str, info: ValidationInfo) -> str:
        check(rules.region(v, allow_unlisted=info.data.get("allow_unlisted_region") is True))
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
        check(machines.machine_type(v))
        return v

    @field_validator("accelerator_type")
    @classmethod
    def _accelerator_type(cls, v: str | None) -> str | None:
        check(machines.accelerator_type(v))
        return v

    @field_validator("endpoint_display_name")
    @classmethod
    def _display_name(cls, v: str | None) -> str | None:
        check(None if v is None else rules.display_name(v))
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
        check(rules.labels(v, reserved=rules.RESERVED_LABELS))
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
            raise ValueError(f"{v!r}; allowed: 'projects/<p>/locations/<region>/keyRings/<ring>/cryptoKeys/<key>'")
        return v

    @field_validator("predict_members")
    @classmethod
    def _members(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for member in v:
            check(rules.member(member))
        return v

    @model_validator(mode="after")
    def _consistent(self) -> TargetConfig:
        problem = rules.replicas(self.min_replicas, self.max_replicas)
        if problem:
            raise FieldError(f"{problem[0]}_replicas", problem[1])
        problem = machines.machine_spec(self.machine_type, self.accelerator_type, self.accelerator_count)
        if problem:
            raise FieldError(*problem)
        check_field("required_replicas", rules.required_replicas(self.required_replicas, self.min_replicas))
        check_field(
            "autoscaling.accelerator_duty_cycle",
            rules.duty_cycle_needs_accelerator(self.autoscaling.accelerator_duty_cycle, self.accelerator_count),
        )
        adopting = self.adopt is not None and self.adopt.endpoint
        if self.endpoint_id is not None:
            check_field("endpoint_id", rules.endpoint_id(self.endpoint_id, existing=adopting))
        elif adopting:
            raise FieldError(
                "adopt",
                "endpoint = true needs the existing endpoint's ID; allowed: set endpoint_id "
                "on the target (as `gcloud ai endpoints list` shows it)",
            )
        kms_key = KMS_KEY_RE.match(self.kms_key or "")
        if kms_key:
            location = kms_key["location"]
            if location != self.region:
                raise ValueError(
                    f"kms_key is in {location!r} but the target region is {self.region!r}; "
                    "allowed: a key in the same region as the bucket and endpoint"
                )
        version = MODEL_VERSION_RE.match(self.adopt.model_version or "") if self.adopt else None
        # A project number (as gcloud prints names) cannot be checked against the ID here.
        if version and (
            version["region"] != self.region
            or (version["project"] != self.project and not version["project"].isdigit())
        ):
            raise FieldError(
                "adopt",
                (
                    f"model_version is in {version['project']}/{version['region']} but the target is "
                    f"{self.project}/{self.region}; allowed: a model version in the target's project and region"
                ),
            )
        for channel in self.monitoring.notification_channels:
            name = NOTIFICATION_CHANNEL_RE.match(channel)
            project = name["project"] if name else self.project  # MonitoringConfig refused any other form
            if project != self.project and not project.isdigit():
                raise FieldError(
                    "monitoring",
                    (
                        f"notification_channels: {channel!r} is in project {project!r}; allowed: channels of the "
                        f"target's project {self.project!r} (an alert policy notifies channels of its own project)"
                    ),
                )
        if self.resource_pool and self.kms_key:
            raise FieldError(
                "resource_pool",
                (
                    "with kms_key: an endpoint and the pool it deploys into need the same encryption spec "
                    "(deployment_resource_pool.py DeploymentResourcePool.encryption_spec), and the google provider's "
                    "google_vertex_ai_deployment_resource_pool cannot set one; allowed: no kms_key, or no resource_pool"
                ),
            )
        if self.resource_pool:
            own = [
                name
                for name, set_ in (
                    ("spot", self.spot),
                    ("required_replicas", self.required_replicas),
                    ("autoscaling", self.autoscaling != AutoscalingConfig()),
                )
                if set_
            ]
            if own:
                raise FieldError(
                    "resource_pool",
                    (
                        f"with {', '.join(own)}: a deployment in a shared pool runs on the pool's machines "
                        "(DeployedModel.shared_resources, a oneof with dedicated_resources), and the google provider's "
                        "google_vertex_ai_deployment_resource_pool takes neither spot nor required replicas; allowed: "
                        "leave them unset with resource_pool, or no resource_pool"
                    ),
                )
        if self.access_log_bucket == self.bucket:
            raise ValueError(
                f"access_log_bucket is the artifact bucket {self.bucket!r}; "
                "allowed: another bucket (a bucket cannot hold its own access logs usefully)"
            )
        return self
