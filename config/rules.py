"""Google's rules for what the stacks send to Vertex AI: one table, two users.

The rollout config (config/rollout.py, pydantic validators) and our Terraform provider's
plan-time validation (provider/*.py, ValidateResourceConfig) both check values with these
functions, so a bad value gets the same message whichever way it arrives. Standard library
only: the provider imports this from its own virtualenv, where the project's dependencies
(pydantic, TensorFlow) are not installed.

Each check returns `None` when the value is allowed, else the message, which says what is
wrong and ends with `allowed: ...`; callers put the field's name in front. `RULES` lists
every rule with its Google source; docs/configuration.md's table is generated from it
(docs/generate.py; a test fails when the page is stale). The machine type and accelerator
checks are in config/machines.py; their rows are in RULES too.

Sources: [compute] = Vertex AI, "Configure compute resources for inference"
(https://cloud.google.com/vertex-ai/docs/predictions/configure-compute: machine types and
GPUs for prediction) and Compute Engine, "GPU machine types"
(https://cloud.google.com/compute/docs/gpus: which GPUs attach to N1 machines, how many,
with how many vCPUs); [types] = field docs in google-cloud-aiplatform's
`google/cloud/aiplatform_v1/types/<file>.py`; [gcloud] = gcloud 528's sources;
[labels] = Resource Manager, "Labels" requirements
(https://cloud.google.com/resource-manager/docs/labels-overview#requirements) and Cloud
Storage bucket labels (https://cloud.google.com/storage/docs/tags-and-labels); [bigquery] =
gcloud 528's generated BigQuery v2 messages (`bigquery_v2_messages.py`); [endpoints] =
Vertex AI, "Choose an endpoint type"
(https://cloud.google.com/vertex-ai/docs/predictions/choose-endpoint-type); [ee] =
earthengine-api's python/ee/model.py `Model.fromVertexAi`.
"""

from __future__ import annotations

import re

from config.regions import PREDICTION_REGIONS

# -- where, how many, who -------------------------------------------------------------------

REGION_FORM = re.compile(r"[a-z]+-[a-z]+[1-9][0-9]?")


def region(value, *, allow_unlisted: bool = False) -> str | None:
    """A Vertex AI region that serves online predictions (config/regions.py, gcloud 528's list)."""
    if not isinstance(value, str) or not REGION_FORM.fullmatch(value):
        return (
            f"{value!r} is not a region; allowed: the '<area>-<direction><n>' form such as 'us-central1' "
            "or 'europe-west4'"
        )
    if value not in PREDICTION_REGIONS and not allow_unlisted:
        return (
            f"{value!r} is not a Vertex AI prediction region; allowed: {', '.join(PREDICTION_REGIONS)} "
            "(a region newer than this list: set allow_unlisted_region = true on the target, or "
            "allow_unlisted_regions = true in the eevertex provider block)"
        )
    return None


PROJECT_ID = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]")


def project(value, *, number_allowed: bool = False) -> str | None:
    """A Google Cloud project ID (Resource Manager: 6-30 of a-z, 0-9, '-', starting with a
    letter, not ending with '-'); Vertex AI resource names may carry the project number instead."""
    if isinstance(value, str) and (
        PROJECT_ID.fullmatch(value) or (number_allowed and re.fullmatch(r"[1-9][0-9]{0,19}", value))
    ):
        return None
    number = " (or its number)" if number_allowed else ""
    return (
        f"{value!r} is not a Google Cloud project ID; allowed: 6-30 characters of a-z, 0-9 and '-', "
        f"starting with a letter, not ending with '-'{number}"
    )


MAX_REPLICAS = 1000


def replicas(low, high) -> tuple[str, str] | None:
    """("min" or "max", message) for replica bounds Vertex AI refuses ([types] machine_resources.py
    DedicatedResources: min_replica_count >= 1, max defaults to min and is not below it); the upper
    bound is this tool's (Vertex AI's is the project's quota)."""
    for which, value in (("min", low), ("max", high)):
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_REPLICAS
        ):
            return which, f"{value!r}; allowed: a whole number from 1 to {MAX_REPLICAS}"
    if low is not None and high is not None and low > high:
        return "min", f"{low} is greater than the maximum, {high}; allowed: 1 <= minimum <= maximum"
    return None


def required_replicas(required, low) -> str | None:
    """[types] machine_resources.py DedicatedResources.required_replica_count: the replicas that
    must be available for a deploy or mutate to succeed, "only needed when partial deployment/
    mutation is desired"; unset, it is min_replica_count. So 1 to the minimum: more would ask a
    deployment to wait for replicas it is not promised."""
    if required is None:
        return None
    if not isinstance(required, int) or isinstance(required, bool) or required < 1:
        return f"{required!r}; allowed: a whole number from 1 to the minimum replica count"
    if low is not None and required > low:
        return f"{required} is more than the minimum replica count, {low}; allowed: 1 to {low}, or unset (all {low})"
    return None


# [types] machine_resources.py AutoscalingMetricSpec.metric_name ("Supported metrics ... For
# Online Prediction") -> the attribute of eevertex_deployment that sets its target.
AUTOSCALING_METRICS = {
    "aiplatform.googleapis.com/prediction/online/cpu/utilization": "autoscaling_cpu_utilization_target",
    "aiplatform.googleapis.com/prediction/online/accelerator/duty_cycle": "autoscaling_accelerator_duty_cycle_target",
    "aiplatform.googleapis.com/prediction/online/request_count": "autoscaling_request_count_per_minute_target",
}
PERCENT_METRICS = tuple(list(AUTOSCALING_METRICS)[:2])
# [types] DedicatedResources.autoscaling_metric_specs: "The default target value is 60 for both metrics".
DEFAULT_AUTOSCALING_TARGET = 60
MAX_REQUESTS_PER_MINUTE = 2**31 - 1  # AutoscalingMetricSpec.target is an int32


def autoscaling_target(metric: str, value) -> str | None:
    """[types] AutoscalingMetricSpec.target: "in percentage (1% - 100%)" for CPU utilization and
    the accelerator duty cycle; for request_count a number of requests per minute per replica
    (the SDK's `autoscaling_target_request_count_per_minute`), at least 1."""
    if metric in PERCENT_METRICS:
        if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 100:
            return None
        return (
            f"{value!r}; allowed: a whole number from 1 to 100 (percent; Vertex AI's default "
            f"{DEFAULT_AUTOSCALING_TARGET})"
        )
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_REQUESTS_PER_MINUTE:
        return None
    return f"{value!r}; allowed: a whole number of requests per minute per replica, from 1 to {MAX_REQUESTS_PER_MINUTE}"


def duty_cycle_needs_accelerator(duty_cycle, accelerator_count) -> str | None:
    """[types] DedicatedResources.autoscaling_metric_specs: "If machine_spec.accelerator_count is 0,
    the autoscaling will be based on CPU utilization metric only"."""
    if duty_cycle is not None and not accelerator_count:
        return (
            f"{duty_cycle!r} without accelerators: Vertex AI scales a machine without accelerators on CPU "
            "utilization only (DedicatedResources.autoscaling_metric_specs); allowed: unset, or an "
            "accelerator_type with accelerator_count >= 1"
        )
    return None


# [labels] keys: 1-63 of lowercase letters, digits, '_' and '-', starting with a letter;
# values: 0-63 of the same; at most 64 labels per resource. ([types] model.py Model.labels
# allows 64 characters; Cloud Storage, which gets the same labels on the bucket, 63.)
LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")
MAX_LABELS = 64
RESERVED_LABELS = ("managed-by", "ee-model", "rollout-target")
"""Set by this tool on every resource (stacks/naming.py default_labels); a config may not set them."""


def labels(value, *, reserved: tuple[str, ...] = ()) -> str | None:
    if not isinstance(value, dict):
        return f'{value!r}; allowed: a table of label = "value"'
    room = MAX_LABELS - len(reserved)
    if len(value) > room:
        return f"{len(value)} labels; allowed: at most {room}" + (
            f" ({len(reserved)} are set by this tool)" if reserved else ""
        )
    for key, item in value.items():
        if key in reserved:
            return f"key {key!r} is set by this tool on every resource ({', '.join(reserved)}); allowed: any other key"
        if not isinstance(key, str) or not LABEL_KEY.fullmatch(key):
            return f"key {key!r}; allowed: 1-63 of a-z, 0-9, '_', '-', starting with a letter"
        if not isinstance(item, str) or not LABEL_VALUE.fullmatch(item):
            return f"value {item!r} of {key!r}; allowed: 0-63 of a-z, 0-9, '_', '-'"
    return None


EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
DOMAIN = re.compile(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")


def member(value) -> str | None:
    """[gcloud] command_lib/iam/iam_util.py AddMemberFlag: `user|group|serviceAccount:email` or
    `domain:domain`. (allUsers and allAuthenticatedUsers would make the endpoint public.)"""
    allowed = "'user:<email>', 'serviceAccount:<email>', 'group:<email>' or 'domain:<domain>'"
    if not isinstance(value, str) or ":" not in value:
        return f"{value!r}; allowed: {allowed}"
    kind, _, rest = value.partition(":")
    if kind in ("user", "group", "serviceAccount") and EMAIL.fullmatch(rest):
        return None
    if kind == "domain" and DOMAIN.fullmatch(rest):
        return None
    if kind in ("user", "group", "serviceAccount"):
        return f"{value!r}: {rest!r} is not an email address; allowed: {allowed}"
    return f"{value!r}; allowed: {allowed}"


# -- IDs ------------------------------------------------------------------------------------

# [types] endpoint_service.py CreateEndpointRequest.endpoint_id
NEW_ENDPOINT_ID = re.compile(r"[1-9][0-9]{0,8}|[a-z]([a-z0-9-]{0,61}[a-z0-9])?")
# The IDs Vertex AI generates when none is given ([types]: "Vertex AI will generate a
# value"; 19 digits in practice, e.g. what `gcloud ai endpoints create` prints).
GENERATED_ID = re.compile(r"[1-9][0-9]{0,18}")
NEW_ENDPOINT_RULE = (
    "a number of at most 9 digits without a leading zero, or up to 63 of a-z, 0-9 and '-' "
    "starting with a letter and ending with a letter or digit"
)


def endpoint_id(value, *, existing: bool) -> str | None:
    """The create rule for an endpoint we create; any ID Vertex AI may have given an existing one."""
    if isinstance(value, str) and NEW_ENDPOINT_ID.fullmatch(value):
        return None
    if existing and isinstance(value, str) and GENERATED_ID.fullmatch(value):
        return None
    if existing:
        return (
            f"{value!r} is not a Vertex AI endpoint ID; allowed: {NEW_ENDPOINT_RULE}, or the numeric ID Vertex AI "
            "generated (up to 19 digits, as `gcloud ai endpoints list` shows it)"
        )
    hint = ""
    if isinstance(value, str) and GENERATED_ID.fullmatch(value):
        hint = (
            " for an endpoint the stacks create (Vertex AI refuses numeric endpoint IDs over 9 digits); "
            "an endpoint that exists already (an ID Vertex AI generated): adopt it with [targets.adopt] "
            "endpoint = true"
        )
    return f"{value!r} is not a valid Vertex AI endpoint ID{hint}; allowed: {NEW_ENDPOINT_RULE}"


def deployed_model_id(value, *, existing: bool) -> str | None:
    """[types] endpoint.py DeployedModel.id: 1-10 digits for one we deploy; an existing one may
    carry an ID Vertex AI generated (19 digits)."""
    pattern = GENERATED_ID if existing else re.compile(r"[0-9]{1,10}")
    if isinstance(value, str) and pattern.fullmatch(value):
        return None
    allowed = "the deployed model's numeric ID, as Vertex AI shows it" if existing else "1-10 digits"
    return f"{value!r}; allowed: {allowed}"


# [types] model_service.py UploadModelRequest.model_id
NEW_MODEL_ID = re.compile(r"[a-z_][a-z0-9_-]{0,62}")


def model_id(value, *, existing: bool) -> str | None:
    if isinstance(value, str) and (NEW_MODEL_ID.fullmatch(value) or (existing and GENERATED_ID.fullmatch(value))):
        return None
    generated = " (or the all-digit ID Vertex AI gave an existing model)" if existing else ""
    return (
        f"{value!r} is not a valid Vertex AI model ID; allowed: up to 63 characters of [a-z0-9_-], not starting "
        f"with a digit or hyphen{generated}"
    )


def display_name(value) -> str | None:
    """[types] model.py Model.display_name, endpoint.py Endpoint.display_name: "can be up to 128
    characters long and can consist of any UTF-8 characters"."""
    if isinstance(value, str) and 1 <= len(value) <= 128:
        return None
    return f"{value!r}; allowed: 1-128 characters"


# -- request-response logging, co-hosting, monitoring ---------------------------------------

# [bigquery] = gcloud 528's generated BigQuery v2 messages (googlecloudsdk/generated_clients/apis/
# bigquery/v2/bigquery_v2_messages.py), DatasetReference.datasetId: "must contain only letters
# (a-z, A-Z), numbers (0-9), or underscores (_). The maximum length is 1,024 characters."
BIGQUERY_ID = re.compile(r"[A-Za-z0-9_]{1,1024}")


def bigquery_id(value, what: str = "dataset") -> str | None:
    if isinstance(value, str) and BIGQUERY_ID.fullmatch(value):
        return None
    return f"{value!r} is not a BigQuery {what} ID; allowed: 1-1024 of A-Z, a-z, 0-9 and '_'"


def sampling_rate(value) -> str | None:
    """[types] endpoint.py PredictRequestResponseLoggingConfig.sampling_rate: "a fraction in
    range(0,1]"."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 1:
        return None
    return f"{value!r}; allowed: a fraction greater than 0 and at most 1 (e.g. 0.1 logs one request in ten)"


# [types] deployment_resource_pool_service.py CreateDeploymentResourcePoolRequest
# .deployment_resource_pool_id: "max length 63, valid characters /^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/".
RESOURCE_POOL_ID = re.compile(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?")
RESOURCE_POOL_NAME = re.compile(r"projects/([^/]+)/locations/([^/]+)/deploymentResourcePools/([^/]+)")


def resource_pool_id(value) -> str | None:
    if isinstance(value, str) and RESOURCE_POOL_ID.fullmatch(value):
        return None
    return (
        f"{value!r} is not a deployment resource pool ID; allowed: 1-63 of a-z, 0-9 and '-', starting with a "
        "letter, not ending with '-'"
    )


def shared_resources(value, *, region: str | None = None) -> str | None:
    """[types] endpoint.py DeployedModel.shared_resources: `projects/{project}/locations/{location}/
    deploymentResourcePools/{deployment_resource_pool}`; the pool must be in the endpoint's region."""
    match = RESOURCE_POOL_NAME.fullmatch(value) if isinstance(value, str) else None
    if not match or resource_pool_id(match[3]):
        return (
            f"{value!r}; allowed: 'projects/<project>/locations/<region>/deploymentResourcePools/<pool ID>' "
            "(a pool ID is 1-63 of a-z, 0-9, '-', starting with a letter)"
        )
    if region is not None and match[2] != region:
        return f"{value!r} is in {match[2]!r}; allowed: a pool in the endpoint's region {region!r}"
    return None


# -- what Earth Engine cannot use ----------------------------------------------------------

# [endpoints]: requests up to 1.5 MB on a shared public endpoint, 10 MB on dedicated, Private
# Service Connect and private ones. [ee]: `endpoint` is the endpoint's resource name (not a
# URL), `maxPayloadBytes` "Defaults to 1.5MB (1500000 bytes.)".
SHARED_ENDPOINT_MAX_PAYLOAD_BYTES = 1_500_000
ENDPOINT_TYPES_PAGE = "https://cloud.google.com/vertex-ai/docs/predictions/choose-endpoint-type"
_EE = (
    "Earth Engine's ee.Model.fromVertexAi takes the endpoint's resource name and calls it at "
    "{region}-aiplatform.googleapis.com; allowed: leave it out (the stacks create a shared public endpoint)"
)
REFUSED_TARGET_FIELDS = {
    "dedicated_endpoint_enabled": (
        "dedicated endpoints are refused: \"Once you enabled dedicated endpoint, you won't be able to send request "
        'to the shared DNS {region}-aiplatform.googleapis.com" (Vertex AI API, Endpoint.dedicated_endpoint_enabled; '
        f"{ENDPOINT_TYPES_PAGE}), and {_EE}"
    ),
    "private_service_connect_config": (
        "Private Service Connect endpoints are refused: they answer only inside the VPC networks connected to "
        f"them (Vertex AI API, Endpoint.private_service_connect_config; {ENDPOINT_TYPES_PAGE}), and {_EE}"
    ),
    "network": (
        "private endpoints (Private Service Access) are refused: they answer only inside the peered VPC network "
        f"and have no traffic split (Vertex AI API, Endpoint.network; {ENDPOINT_TYPES_PAGE}), and {_EE}"
    ),
}
REFUSED_TARGET_FIELDS["dedicated_endpoint"] = REFUSED_TARGET_FIELDS["dedicated_endpoint_enabled"]
REFUSED_TARGET_FIELDS["private_service_connect"] = REFUSED_TARGET_FIELDS["private_service_connect_config"]
REFUSED_TARGET_FIELDS["enable_private_service_connect"] = REFUSED_TARGET_FIELDS["private_service_connect_config"]


def max_payload_bytes(value) -> str | None:
    """Earth Engine's maxPayloadBytes on the shared public endpoint the stacks create."""
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= SHARED_ENDPOINT_MAX_PAYLOAD_BYTES:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > SHARED_ENDPOINT_MAX_PAYLOAD_BYTES:
        return (
            f"{value:,} is over the 1.5 MB a shared public Vertex AI endpoint accepts ({ENDPOINT_TYPES_PAGE}: "
            "10 MB only on dedicated and private endpoints, which Earth Engine cannot call, see "
            "targets.dedicated_endpoint_enabled); allowed: a whole number from 1 to 1500000 "
            "(Earth Engine's default)"
        )
    return f"{value!r}; allowed: a whole number from 1 to {SHARED_ENDPOINT_MAX_PAYLOAD_BYTES}"


# -- the table ------------------------------------------------------------------------------

RULES = [
    # (rule, Google source, checked by)
    (
        "machine_type: E2 and N1 sizes as listed, N2/N2D/N4/C2/C2D/C3/C3D/C4 standard, highmem or highcpu, "
        "or an accelerator-optimized type (A2, A3, A4, G2, ct5lp)",
        "[compute] Machine types",
        "config, provider",
    ),
    (
        "accelerator-optimized machine types come with a fixed accelerator and count (a2-highgpu-Ng: N x "
        "NVIDIA_TESLA_A100, a2-ultragpu-Ng: NVIDIA_A100_80GB, a3-highgpu-Ng: NVIDIA_H100_80GB, g2-standard-4..32: "
        "1 x NVIDIA_L4, ...)",
        "[compute] GPUs",
        "config, provider",
    ),
    (
        "T4, P4, P100 and V100 attach to N1 machine types only; T4, P4, P100: 1, 2 or 4; V100: 1, 2, 4 or 8; "
        "at most 48/48/96 (T4), 24/48/96 (P4), 16/32/96 (P100), 12/24/48/96 (V100) vCPUs for those counts; "
        "E2 and the other series take none",
        "[compute] GPUs for N1",
        "config, provider",
    ),
    (
        "accelerator_type one of AcceleratorType's values; a count needs a type, a type a count >= 1",
        "[types] machine_resources.py MachineSpec, accelerator_type.py",
        "config, provider",
    ),
    (
        "region: a Vertex AI online-prediction region (or allow_unlisted_region)",
        "[gcloud] command_lib/ai/constants.py SUPPORTED_OP_REGIONS (config/regions.py)",
        "config, provider",
    ),
    (
        "min_replica_count >= 1, max_replica_count >= min (this tool: at most 1000)",
        "[types] machine_resources.py DedicatedResources",
        "config, provider",
    ),
    (
        "labels: keys 1-63 of a-z, 0-9, '_', '-' starting with a letter, values 0-63, at most 64 per resource; "
        "the config may not set managed-by, ee-model, rollout-target",
        "[labels]; [types] model.py Model.labels",
        "config (reserved keys), provider (grammar)",
    ),
    (
        "predict_members: user:, group:, serviceAccount: with an email address, or domain:",
        "[gcloud] command_lib/iam/iam_util.py AddMemberFlag",
        "config",
    ),
    (
        "endpoint ID of an endpoint we create: at most 9 digits without a leading zero, or a letter, up to 63 of "
        "[a-z0-9-], ending in a letter or digit; of an existing one also the ID Vertex AI generated (up to 19 digits)",
        "[types] endpoint_service.py CreateEndpointRequest.endpoint_id",
        "config, provider",
    ),
    (
        "deployed model ID: 1-10 digits for a new deployment; an imported one may carry a generated ID",
        "[types] endpoint.py DeployedModel.id",
        "config, provider",
    ),
    (
        "model ID: up to 63 of [a-z0-9_-], not starting with a digit or '-'; an existing model may have a generated "
        "numeric ID",
        "[types] model_service.py UploadModelRequest.model_id",
        "config, provider",
    ),
    (
        "display names (model, endpoint): 1-128 characters",
        "[types] model.py Model.display_name, endpoint.py Endpoint.display_name",
        "config, provider",
    ),
    (
        "BigQuery dataset and table IDs: 1-1024 of letters, digits and '_'; request-response logging sampling rate "
        "in (0, 1]",
        "[bigquery] DatasetReference.datasetId; [types] endpoint.py PredictRequestResponseLoggingConfig",
        "config",
    ),
    (
        "deployment resource pool ID: a letter, then up to 62 of [a-z0-9-], not ending with '-'; a deployment's "
        "shared_resources names a pool in its endpoint's region, and then no machine or replicas of its own",
        "[types] deployment_resource_pool_service.py CreateDeploymentResourcePoolRequest, endpoint.py "
        "DeployedModel.prediction_resources (oneof)",
        "config, provider",
    ),
    (
        "required_replica_count: 1 to min_replica_count (unset: all of min)",
        "[types] machine_resources.py DedicatedResources.required_replica_count",
        "config, provider",
    ),
    (
        "autoscaling targets: CPU utilization and accelerator duty cycle 1-100 percent (default 60), requests per "
        "minute per replica >= 1; the duty cycle only with accelerators; one target per metric",
        "[types] machine_resources.py AutoscalingMetricSpec, DedicatedResources.autoscaling_metric_specs",
        "config, provider",
    ),
    (
        "refused, Earth Engine cannot call them: dedicated endpoints, Private Service Connect, private (network) "
        "endpoints; max_payload_bytes above 1,500,000 (the shared public endpoint's limit)",
        "[types] endpoint.py Endpoint.dedicated_endpoint_enabled, .network; [endpoints] Choose an endpoint type; "
        "[ee] Model.fromVertexAi",
        "config",
    ),
    (
        "numbers are whole numbers and booleans true/false: a string or a bool where a number belongs is refused",
        "TOML types; [types] (int32/int64 fields)",
        "config (StrictInt, StrictBool); provider (Terraform's types)",
    ),
]


def table() -> str:
    """RULES as a markdown table (docs/configuration.md)."""
    lines = ["| rule | source | checked by |", "|---|---|---|"]
    lines += [f"| {rule} | {source} | {where} |" for rule, source, where in RULES]
    return "\n".join(lines)
