"""What every API surface of the Vertex AI emulator shares: google.rpc codes and errors, ID
patterns and limits (sources in vertex_emulator's rule table), the traffic split check.
"""

from __future__ import annotations

import collections
import datetime
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

# google.rpc.Code: canonical code -> (number, HTTP status), from google/rpc/code.proto.
CODES = {
    "INVALID_ARGUMENT": (3, 400),
    "FAILED_PRECONDITION": (9, 400),
    "OUT_OF_RANGE": (11, 400),
    "PERMISSION_DENIED": (7, 403),
    "NOT_FOUND": (5, 404),
    "ALREADY_EXISTS": (6, 409),
    "ABORTED": (10, 409),
    "RESOURCE_EXHAUSTED": (8, 429),
    "INTERNAL": (13, 500),
    "UNIMPLEMENTED": (12, 501),
    "UNAVAILABLE": (14, 503),
}


ENDPOINT_ID = re.compile(r"[1-9][0-9]{0,8}|[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?")


MODEL_ID = re.compile(r"[a-z_][a-z0-9_-]{0,62}")


DEPLOYED_MODEL_ID = re.compile(r"[0-9]{1,10}")


VERSION_ALIAS = re.compile(r"[a-z][a-zA-Z0-9-]{0,126}[a-z0-9]")


MERGE_ALIAS = re.compile(r"[a-z][a-zA-Z0-9-]{0,126}[a-z0-9-]")


PREDICT_LIMIT = 1_500_000


# Where the emulator keeps its copies of model artifacts (AIP_STORAGE_URI).
MANAGED_BUCKET = "vertex-emulator-managed-artifacts"


DEFAULT_MACHINE_TYPE = "n1-standard-2"


LOCATION = r"projects/[^/]+/locations/[^/]+"


# What Vertex AI lists for a model uploaded with a custom container spec.
DEPLOYMENT_TYPES = ["DEDICATED_RESOURCES", "SHARED_RESOURCES"]


INPUT_FORMATS = ["jsonl", "bigquery", "csv", "tf-record", "tf-record-gzip", "file-list"]


OUTPUT_FORMATS = ["jsonl", "bigquery"]


MUTABLE_DEPLOYED = {
    "dedicated_resources.min_replica_count",
    "dedicated_resources.max_replica_count",
    "dedicated_resources.required_replica_count",
    "dedicated_resources.autoscaling_metric_specs",
    "disable_container_logging",
}


POOL_ID = re.compile(r"[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?")


BQ_URI = re.compile(r"bq://([a-z][a-z0-9-]{4,28}[a-z0-9])(?:\.([A-Za-z0-9_]{1,1024})(?:\.([A-Za-z0-9_]{1,1024}))?)?")


CO_HOSTING_DOC = "https://cloud.google.com/vertex-ai/docs/predictions/model-co-hosting"


# The columns of the table request-response logging writes (Vertex AI, "Online inference logging").
LOGGING_SCHEMA = [
    {"name": n, "type": t}
    for n, t in (
        ("endpoint", "STRING"),
        ("deployed_model_id", "STRING"),
        ("logging_time", "TIMESTAMP"),
        ("request_id", "NUMERIC"),
        ("request_payload", "STRING"),
        ("response_payload", "STRING"),
    )
]


# [types] machine_resources.py AutoscalingMetricSpec.metric_name: the supported metrics for
# online prediction; the first two are utilizations in percent ("1% - 100%").
AUTOSCALING_METRICS = (
    "aiplatform.googleapis.com/prediction/online/cpu/utilization",
    "aiplatform.googleapis.com/prediction/online/accelerator/duty_cycle",
    "aiplatform.googleapis.com/prediction/online/request_count",
)


# Proto3 JSON leaves out fields at their default; a DeployedModel read back has none of these
# when they are false or 0.
DEFAULT_VALUED = {"spot": False, "requiredReplicaCount": 0}


SPLIT_SUMMARY = "allowed: deployed-model IDs of this endpoint, each 0-100, summing to 100 (or an empty map)"


class ApiError(Exception):
    """An error as Vertex AI answers it: a canonical code (google.rpc.Code) and a message."""

    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status
        self.number, self.http = CODES[status]
        self.message = message

    def rest(self) -> dict:
        return {"error": {"code": self.http, "message": self.message, "status": self.status}}

    def rpc(self) -> dict:
        return {"code": self.number, "message": self.message}


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def snake(path: str) -> str:
    """A FieldMask path in snake case (JSON clients send camelCase, gcloud snake case)."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", lambda m: "_" + m.group(1).lower(), path)


def mask_paths(query: dict, body: dict) -> list[str]:
    raw = query.get("updateMask") or query.get("update_mask") or []
    if not raw and isinstance(body.get("updateMask"), str):
        raw = [body["updateMask"]]
    if not raw and isinstance(body.get("updateMask"), dict):
        raw = [",".join(body["updateMask"].get("paths", []))]
    return [snake(p.strip()) for m in raw for p in m.split(",") if p.strip()]


def check_split(split: dict | None, deployed_ids: set[str], field: str) -> dict[str, int]:
    """Endpoint.traffic_split: deployed-model IDs to percentages summing to 100, or empty."""
    try:
        checked = {str(k): int(v) for k, v in (split or {}).items()}
    except (TypeError, ValueError):
        raise ApiError("INVALID_ARGUMENT", f"{field}: percentages must be integers; {SPLIT_SUMMARY}") from None
    unknown = sorted(set(checked) - deployed_ids)
    if unknown:
        raise ApiError(
            "INVALID_ARGUMENT", f"{field} names {unknown}, which are not deployed on the endpoint; {SPLIT_SUMMARY}"
        )
    if any(not 0 <= v <= 100 for v in checked.values()):
        raise ApiError("INVALID_ARGUMENT", f"{field} has a percentage outside 0-100; {SPLIT_SUMMARY}")
    if checked and sum(checked.values()) != 100:
        raise ApiError("INVALID_ARGUMENT", f"{field} must add up to 100, got {sum(checked.values())}; {SPLIT_SUMMARY}")
    return checked


def check_dedicated(resources: dict, field: str) -> None:
    """DedicatedResources' rules beyond the replica bounds, for deployModel and mutateDeployedModel
    ([types] machine_resources.py DedicatedResources, AutoscalingMetricSpec); normalizes the
    fields at their default away, as a read returns them."""
    if "spot" in resources and not isinstance(resources["spot"], bool):
        raise ApiError("INVALID_ARGUMENT", f"{field}.spot: {resources['spot']!r} is not a bool")
    required = resources.get("requiredReplicaCount", 0)
    if not isinstance(required, int) or isinstance(required, bool) or required < 0:
        raise ApiError("INVALID_ARGUMENT", f"{field}.required_replica_count: {required!r} must be >= 0")
    # "If not set, the default required_replica_count will be min_replica_count": more than the
    # minimum is not documented as refused; refused here, as the config and the provider do.
    if required > resources["minReplicaCount"]:
        raise ApiError(
            "INVALID_ARGUMENT",
            f"{field}.required_replica_count ({required}) must be <= "
            f"min_replica_count ({resources['minReplicaCount']}).",
        )
    seen = set()
    accelerators = int((resources.get("machineSpec") or {}).get("acceleratorCount") or 0)
    for index, spec in enumerate(resources.get("autoscalingMetricSpecs") or []):
        where = f"{field}.autoscaling_metric_specs[{index}]"
        metric = spec.get("metricName") if isinstance(spec, dict) else None
        if metric not in AUTOSCALING_METRICS:
            raise ApiError(
                "INVALID_ARGUMENT",
                f"{where}.metric_name {metric!r} is not supported; allowed: {', '.join(AUTOSCALING_METRICS)}",
            )
        if metric in seen:
            # DedicatedResources.autoscaling_metric_specs: "At most one entry is allowed per metric."
            raise ApiError("INVALID_ARGUMENT", f"{where}: a second entry for {metric}; at most one per metric")
        seen.add(metric)
        target = spec.get("target", 60)
        percent = metric != AUTOSCALING_METRICS[2]
        if not isinstance(target, int) or isinstance(target, bool) or target < 1 or (percent and target > 100):
            allowed = "1-100 (percent)" if percent else "requests per minute per replica, >= 1"
            raise ApiError("INVALID_ARGUMENT", f"{where}.target {target!r}; allowed: {allowed}")
        if metric == AUTOSCALING_METRICS[1] and not accelerators:
            # "If machine_spec.accelerator_count is 0, the autoscaling will be based on CPU utilization
            # metric only": whether Vertex AI refuses or ignores the spec is not documented; refused here.
            raise ApiError("INVALID_ARGUMENT", f"{where}: {metric} needs machine_spec.accelerator_count > 0")
    if not resources.get("autoscalingMetricSpecs"):
        resources.pop("autoscalingMetricSpecs", None)
    for key, default in DEFAULT_VALUED.items():
        if key in resources and resources[key] == default:
            del resources[key]


class ModelServer(Protocol):
    """What serves one deployed model (vertex_predict's servers)."""

    def predict(self, body: bytes) -> tuple[int, Any]: ...

    def close(self) -> None: ...


class Host:
    """What the API surfaces (ModelsApi, EndpointsApi, PoolsApi, PredictApi) use of the emulator
    they are mixed into: vertex_emulator.Emulator holds the state and defines these."""

    if TYPE_CHECKING:
        state: dict
        lock: threading.RLock
        data_dir: Path
        storage_host: str | None
        registries_conf: Path | None
        serving: bool
        servers: dict[tuple[str, str], ModelServer]
        inflight: collections.Counter
        drained: threading.Condition
        rr: dict[str, dict[str, float]]
        faults: dict[str, str]
        bigquery_api: Any

        def canon(self, name: str) -> str: ...
        def count(self, method: str, resource: str, detail: str = "") -> None: ...
        def operation(self, resource: str, kind: str, work: Callable, response_type: str) -> dict: ...
        def save(self) -> None: ...
        def _generated_id(self) -> str: ...
        def _resolve(self, name: str) -> dict: ...
        def _endpoint(self, name: str) -> dict: ...
        def _pool(self, name: str) -> dict: ...
        @staticmethod
        def _check_dedicated(resources: dict) -> None: ...
        def _serve(self, endpoint_name: str, deployed: dict) -> None: ...
        def _unserve(self, endpoint_name: str, deployed_id: str) -> None: ...
