"""Cloud Monitoring v3 alert policies (`/monitoring/v3/projects/P/alertPolicies`), emulated
beside Vertex AI (the same process and state): what the google provider's
`google_monitoring_alert_policy` calls: create, get, list, patch (updateMask, or the whole
policy), delete.

Rules, each from its source: [mon] = gcloud 528's generated Monitoring v3 messages
(`googlecloudsdk/generated_clients/apis/monitoring/v3/monitoring_v3_messages.py`); [metrics] =
Google Cloud metrics, aiplatform (https://cloud.google.com/monitoring/api/metrics_gcp_a_b#gcp-aiplatform).
| rule | source |
|---|---|
| displayName: 1-512 characters; 1 to 6 conditions; more than one needs a combiner (AND, OR, AND_WITH_MATCHING_RESOURCE) | [mon] AlertPolicy.displayName, .conditions, .combiner |
| a condition has a displayName and exactly one condition type | [mon] Condition |
| conditionThreshold.filter: required, at most 2048 characters, names metric.type and resource.type; denominatorFilter: at most 2048, names metric.type | [mon] MetricThreshold.filter, .denominatorFilter |
| comparison: COMPARISON_GT or COMPARISON_LT ("Only COMPARISON_LT and COMPARISON_GT are supported currently"); duration a multiple of 60 s | [mon] MetricThreshold.comparison, .duration |
| aggregations: an aligner other than ALIGN_NONE needs alignmentPeriod, 60 s to 90,000 s for alerting; a crossSeriesReducer needs an aligner; ratios: aggregations and denominatorAggregations with the same alignment period and labels | [mon] Aggregation.alignmentPeriod, .crossSeriesReducer; MetricThreshold.denominatorAggregations |
| aiplatform metric types: those listed, with their kind; ALIGN_PERCENTILE_* only on DELTA or GAUGE distributions | [metrics]; [mon] Aggregation.PerSeriesAlignerValueValuesEnum (ALIGN_PERCENTILE_99: "valid for GAUGE and DELTA metrics with distribution values") |
| notificationChannels: `projects/P/notificationChannels/ID` (their existence is not emulated) | [mon] AlertPolicy.notificationChannels |
| userLabels: at most 64 | [mon] AlertPolicy.userLabels |
"""  # noqa: E501 - the rules are a Markdown table: one row per line, however long

from __future__ import annotations

import copy
import re

# [metrics] the online-prediction metrics on aiplatform.googleapis.com/Endpoint: (kind, value type).
AIPLATFORM_METRICS = {
    "aiplatform.googleapis.com/prediction/online/response_count": ("DELTA", "INT64"),
    "aiplatform.googleapis.com/prediction/online/error_count": ("DELTA", "INT64"),
    "aiplatform.googleapis.com/prediction/online/prediction_count": ("DELTA", "INT64"),
    "aiplatform.googleapis.com/prediction/online/prediction_latencies": ("DELTA", "DISTRIBUTION"),
    "aiplatform.googleapis.com/prediction/online/private/prediction_latencies": ("DELTA", "DISTRIBUTION"),
    "aiplatform.googleapis.com/prediction/online/private/response_count": ("DELTA", "INT64"),
    "aiplatform.googleapis.com/prediction/online/replicas": ("GAUGE", "INT64"),
    "aiplatform.googleapis.com/prediction/online/target_replicas": ("GAUGE", "INT64"),
    "aiplatform.googleapis.com/prediction/online/cpu/utilization": ("GAUGE", "DOUBLE"),
}
ALIGNERS = (
    "ALIGN_NONE",
    "ALIGN_DELTA",
    "ALIGN_RATE",
    "ALIGN_INTERPOLATE",
    "ALIGN_NEXT_OLDER",
    "ALIGN_MIN",
    "ALIGN_MAX",
    "ALIGN_MEAN",
    "ALIGN_COUNT",
    "ALIGN_SUM",
    "ALIGN_STDDEV",
    "ALIGN_COUNT_TRUE",
    "ALIGN_COUNT_FALSE",
    "ALIGN_FRACTION_TRUE",
    "ALIGN_PERCENTILE_99",
    "ALIGN_PERCENTILE_95",
    "ALIGN_PERCENTILE_50",
    "ALIGN_PERCENTILE_05",
    "ALIGN_PERCENT_CHANGE",
)
REDUCERS = (
    "REDUCE_NONE",
    "REDUCE_MEAN",
    "REDUCE_MIN",
    "REDUCE_MAX",
    "REDUCE_SUM",
    "REDUCE_STDDEV",
    "REDUCE_COUNT",
    "REDUCE_COUNT_TRUE",
    "REDUCE_COUNT_FALSE",
    "REDUCE_FRACTION_TRUE",
    "REDUCE_PERCENTILE_99",
    "REDUCE_PERCENTILE_95",
    "REDUCE_PERCENTILE_50",
    "REDUCE_PERCENTILE_05",
)
COMBINERS = ("AND", "OR", "AND_WITH_MATCHING_RESOURCE")
CONDITION_TYPES = (
    "conditionThreshold",
    "conditionAbsent",
    "conditionMatchedLog",
    "conditionMonitoringQueryLanguage",
    "conditionPrometheusQueryLanguage",
    "conditionSql",
)
CHANNEL = re.compile(r"projects/[^/]+/notificationChannels/[^/]+")
METRIC_TYPE = re.compile(r'metric\.type\s*=\s*"([^"]+)"')
RESOURCE_TYPE = re.compile(r'resource\.type\s*=\s*"([^"]+)"')
SECONDS = re.compile(r"([0-9]+)(?:\.0+)?s")
MUTABLE = (
    "displayName",
    "documentation",
    "userLabels",
    "conditions",
    "combiner",
    "enabled",
    "notificationChannels",
    "alertStrategy",
    "severity",
)


def _seconds(value, field: str, error) -> int:
    match = SECONDS.fullmatch(str(value or ""))
    if not match:
        raise error("INVALID_ARGUMENT", f"{field}: {value!r} is not a duration in seconds such as '300s'")
    return int(match.group(1))


class MonitoringApi:
    """State lives in the emulator's `state["alertPolicies"]`: name -> policy."""

    def __init__(self, emulator):
        self.emulator = emulator

    @property
    def policies(self) -> dict:
        return self.emulator.state.setdefault("alertPolicies", {})

    def error(self, status: str, message: str):
        return self.emulator.error(status, message)

    def handle(self, method: str, rest: str, query: dict, body: dict) -> dict:
        if m := re.fullmatch(r"projects/([^/]+)/alertPolicies", rest):
            if method == "POST":
                return self.create(m.group(1), body)
            if method == "GET":
                prefix = f"projects/{m.group(1)}/alertPolicies/"
                return {
                    "alertPolicies": [
                        copy.deepcopy(p) for n, p in sorted(self.policies.items()) if n.startswith(prefix)
                    ]
                }
        if re.fullmatch(r"projects/[^/]+/alertPolicies/[^/]+", rest):
            if method == "GET":
                return copy.deepcopy(self._policy(rest))
            if method == "PATCH":
                mask = [p for p in ",".join(query.get("updateMask") or []).split(",") if p]
                return self.patch(rest, mask, body)
            if method == "DELETE":
                self._policy(rest)
                del self.policies[rest]
                self.emulator.count("monitoring.alertPolicies.delete", rest)
                self.emulator.save()
                return {}
        raise self.error("NOT_FOUND", f"no route {method} /monitoring/v3/{rest}")

    def _policy(self, name: str) -> dict:
        if name not in self.policies:
            raise self.error("NOT_FOUND", f"Requested entity was not found: {name}")
        return self.policies[name]

    def create(self, project: str, body: dict) -> dict:
        if body.get("name"):
            raise self.error(
                "INVALID_ARGUMENT", "alertPolicies.create: do not include the name field (Cloud Monitoring assigns it)"
            )
        self.check(body)
        name = f"projects/{project}/alertPolicies/{self.emulator._generated_id()}"
        record = {"mutateTime": self.emulator.now(), "mutatedBy": "emulator"}
        policy = {k: copy.deepcopy(body[k]) for k in MUTABLE if k in body}
        policy.setdefault("enabled", True)
        for condition in policy["conditions"]:
            condition["name"] = f"{name}/conditions/{self.emulator._generated_id()}"
        policy.update({"name": name, "creationRecord": record, "mutationRecord": record})
        self.policies[name] = policy
        self.emulator.count("monitoring.alertPolicies.create", name)
        self.emulator.save()
        return copy.deepcopy(policy)

    def patch(self, name: str, mask: list[str], body: dict) -> dict:
        policy = self._policy(name)
        # [mon] UpdateAlertPolicyRequest: "If this field is empty, then the supplied alerting
        # policy replaces the existing policy."
        fields = {re.sub(r"_([a-z])", lambda m: m.group(1).upper(), p.split(".")[0]) for p in mask} or set(MUTABLE)
        wrong = sorted(fields - set(MUTABLE))
        if wrong:
            raise self.error("INVALID_ARGUMENT", f"update_mask paths {wrong} cannot be updated")
        updated = copy.deepcopy(policy)
        for field in fields:
            if field in body:
                updated[field] = copy.deepcopy(body[field])
            else:
                updated.pop(field, None)
        updated.setdefault("enabled", True)
        self.check(updated)
        updated["mutationRecord"] = {"mutateTime": self.emulator.now(), "mutatedBy": "emulator"}
        self.policies[name] = updated
        self.emulator.count("monitoring.alertPolicies.patch", name)
        self.emulator.save()
        return copy.deepcopy(updated)

    def check(self, policy: dict) -> None:
        bad = lambda message: self.error("INVALID_ARGUMENT", message)  # noqa: E731
        name = policy.get("displayName")
        if not isinstance(name, str) or not 1 <= len(name) <= 512:
            raise bad(f"displayName {name!r}: 1-512 characters are required")
        conditions = policy.get("conditions") or []
        if not 1 <= len(conditions) <= 6:
            raise bad(f"{len(conditions)} conditions: a policy can have from one to six conditions")
        if len(conditions) > 1 and policy.get("combiner") not in COMBINERS:
            raise bad(
                f"combiner {policy.get('combiner')!r}: with {len(conditions)} conditions one of "
                f"{', '.join(COMBINERS)} is required"
            )
        for channel in policy.get("notificationChannels") or []:
            if not CHANNEL.fullmatch(str(channel)):
                raise bad(f"notificationChannels: {channel!r} is not projects/P/notificationChannels/ID")
        if len(policy.get("userLabels") or {}) > 64:
            raise bad("userLabels: at most 64 entries")
        for index, condition in enumerate(conditions):
            where = f"conditions[{index}]"
            if not condition.get("displayName"):
                raise bad(f"{where}.displayName is required")
            kinds = [k for k in CONDITION_TYPES if condition.get(k)]
            if len(kinds) != 1:
                raise bad(f"{where}: exactly one condition type is required; got {kinds or 'none'}")
            if kinds[0] == "conditionThreshold":
                self._threshold(condition["conditionThreshold"], f"{where}.conditionThreshold")

    def _threshold(self, threshold: dict, where: str) -> None:
        bad = lambda message: self.error("INVALID_ARGUMENT", message)  # noqa: E731
        text = threshold.get("filter")
        if not text:
            raise bad(f"{where}.filter is required")
        metric = self._filter(text, f"{where}.filter", resource_required=True)
        denominator = threshold.get("denominatorFilter")
        if denominator:
            self._filter(denominator, f"{where}.denominatorFilter", resource_required=False)
        if "thresholdValue" in threshold:
            # A double: proto3 JSON takes a number or a string that holds one, and answers a number.
            try:
                threshold["thresholdValue"] = float(threshold["thresholdValue"])
            except (TypeError, ValueError):
                raise bad(f"{where}.thresholdValue {threshold['thresholdValue']!r} is not a number") from None
        if threshold.get("comparison") not in ("COMPARISON_GT", "COMPARISON_LT"):
            raise bad(
                f"{where}.comparison {threshold.get('comparison')!r}: only COMPARISON_GT and COMPARISON_LT "
                "are supported"
            )
        if _seconds(threshold.get("duration", "0s"), f"{where}.duration", self.error) % 60:
            raise bad(f"{where}.duration {threshold['duration']!r}: only multiples of a minute are supported")
        aggregations = threshold.get("aggregations") or []
        for index, aggregation in enumerate(aggregations):
            self._aggregation(aggregation, metric, f"{where}.aggregations[{index}]")
        if denominator:
            others = threshold.get("denominatorAggregations") or []
            for index, aggregation in enumerate(others):
                self._aggregation(aggregation, None, f"{where}.denominatorAggregations[{index}]")

            def shape(items):
                return [
                    (
                        a.get("alignmentPeriod"),
                        a.get("crossSeriesReducer"),
                        sorted(a.get("groupByFields") or []),
                    )
                    for a in items
                ]

            if shape(aggregations) != shape(others):
                raise bad(
                    f"{where}: aggregations and denominatorAggregations must use the same alignment period "
                    "and produce time series with the same labels"
                )

    def _filter(self, text: str, where: str, *, resource_required: bool) -> str:
        bad = lambda message: self.error("INVALID_ARGUMENT", message)  # noqa: E731
        if len(text) > 2048:
            raise bad(f"{where}: {len(text)} characters; at most 2048")
        metric = METRIC_TYPE.search(text)
        if not metric:
            raise bad(f'{where} must specify the metric type (metric.type="...")')
        if resource_required and not RESOURCE_TYPE.search(text):
            raise bad(f'{where} must specify the resource type (resource.type="...")')
        if metric.group(1).startswith("aiplatform.googleapis.com/") and metric.group(1) not in AIPLATFORM_METRICS:
            raise self.error("NOT_FOUND", f'{where}: cannot find metric(s) that match type = "{metric.group(1)}"')
        return metric.group(1)

    def _aggregation(self, aggregation: dict, metric: str | None, where: str) -> None:
        bad = lambda message: self.error("INVALID_ARGUMENT", message)  # noqa: E731
        aligner = aggregation.get("perSeriesAligner", "ALIGN_NONE")
        reducer = aggregation.get("crossSeriesReducer", "REDUCE_NONE")
        if aligner not in ALIGNERS:
            raise bad(f"{where}.perSeriesAligner {aligner!r}; allowed: {', '.join(ALIGNERS)}")
        if reducer not in REDUCERS:
            raise bad(f"{where}.crossSeriesReducer {reducer!r}; allowed: {', '.join(REDUCERS)}")
        if reducer != "REDUCE_NONE" and aligner == "ALIGN_NONE":
            raise bad(f"{where}: crossSeriesReducer {reducer} needs a perSeriesAligner other than ALIGN_NONE")
        if aligner != "ALIGN_NONE":
            if "alignmentPeriod" not in aggregation:
                raise bad(f"{where}.alignmentPeriod is required with perSeriesAligner {aligner}")
            period = _seconds(aggregation["alignmentPeriod"], f"{where}.alignmentPeriod", self.error)
            if not 60 <= period <= 90_000:
                raise bad(f"{where}.alignmentPeriod {period}s: allowed for alerting policies: 60s to 90000s")
        kind = AIPLATFORM_METRICS.get(metric or "")
        if kind and aligner.startswith("ALIGN_PERCENTILE") and kind[1] != "DISTRIBUTION":
            raise bad(f"{where}: {aligner} is valid only for distribution metrics; {metric} is {kind[0]} {kind[1]}")
