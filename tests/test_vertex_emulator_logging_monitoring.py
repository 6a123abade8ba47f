"""The Vertex AI emulator's rules, one test per rule of its table (rehearsal/vertex_emulator.py): BigQuery
datasets, request-response logging, alert policies.

The emulator runs in-process with an in-memory GCS emulator and no model servers, so
these tests take seconds; the rehearsals exercise serving.
"""

from __future__ import annotations

import requests
from vertex_emulator_support import (
    LOC,
    api,  # noqa: F401
    gcs,  # noqa: F401
)


def _bigquery(api, method: str, path: str, body: dict | None = None, **query) -> requests.Response:
    return requests.request(method, f"{api.url}/bigquery/v2/{path}", json=body, params=query, timeout=30)


def test_bigquery_dataset_rules(api):
    def make(dataset_id, **extra):
        return _bigquery(
            api,
            "POST",
            "projects/acme-geo-dev/datasets",
            {
                "datasetReference": {"datasetId": dataset_id, "projectId": "acme-geo-dev"},
                "location": "us-central1",
                **extra,
            },
        )

    for bad in ("with-dash", "dot.ted", "", "x" * 1025):
        assert make(bad).status_code == 400, bad
    key = {"kmsKeyName": "projects/acme-geo-dev/locations/europe-west4/keyRings/r/cryptoKeys/k"}
    assert make("elsewhere_key", defaultEncryptionConfiguration=key).status_code == 400
    created = make("ee_logs_1").json()
    assert (created["id"], created["location"], created["datasetReference"]) == (
        "acme-geo-dev:ee_logs_1",
        "us-central1",
        {"datasetId": "ee_logs_1", "projectId": "acme-geo-dev"},
    )
    assert make("ee_logs_1").status_code == 409
    patched = _bigquery(api, "PATCH", "projects/acme-geo-dev/datasets/ee_logs_1", {"labels": {"env": "dev"}}).json()
    assert patched["labels"] == {"env": "dev"} and patched["etag"] != created["etag"]
    assert _bigquery(api, "PATCH", "projects/acme-geo-dev/datasets/ee_logs_1", {"location": "EU"}).status_code == 400
    assert _bigquery(api, "DELETE", "projects/acme-geo-dev/datasets/ee_logs_1").status_code == 200
    assert _bigquery(api, "GET", "projects/acme-geo-dev/datasets/ee_logs_1").status_code == 404


def test_request_response_logging_rules(api):
    def config(uri, rate=0.5):
        return {
            "enabled": True,
            "samplingRate": rate,
            "bigqueryDestination": {"outputUri": uri},
        }

    def create(endpoint_id, logging):
        return api.call(
            "POST",
            f"{LOC}/endpoints",
            {
                "displayName": "ep",
                "predictRequestResponseLoggingConfig": logging,
            },
            endpointId=endpoint_id,
        )

    for rate in (0, 1.5, -0.1):
        assert create("1", config("bq://acme-geo-dev.logs.t", rate)).json()["error"]["status"] == "INVALID_ARGUMENT"
    assert create("1", config("gs://bucket/x")).json()["error"]["status"] == "INVALID_ARGUMENT"
    # The dataset must exist.
    assert "does not exist" in create("2", config("bq://acme-geo-dev.logs.requests")).json()["error"]["message"]
    _bigquery(
        api,
        "POST",
        "projects/acme-geo-dev/datasets",
        {"datasetReference": {"datasetId": "logs"}, "location": "us-central1"},
    )
    endpoint = api.done(
        "POST",
        f"{LOC}/endpoints",
        {"displayName": "ep", "predictRequestResponseLoggingConfig": config("bq://acme-geo-dev.logs.requests")},
        endpointId="3",
    )["name"]
    assert api.ok("GET", endpoint)["predictRequestResponseLoggingConfig"] == config("bq://acme-geo-dev.logs.requests")
    # Vertex AI made the table; another endpoint cannot take it, this one may change its rate.
    table = _bigquery(api, "GET", "projects/acme-geo-dev/datasets/logs/tables/requests").json()
    assert table["tableReference"]["tableId"] == "requests" and "_owner" not in table
    assert "exists already" in create("4", config("bq://acme-geo-dev.logs.requests")).json()["error"]["message"]
    api.ok(
        "PATCH",
        endpoint,
        {"predictRequestResponseLoggingConfig": config("bq://acme-geo-dev.logs.requests", 1)},
        updateMask="predictRequestResponseLoggingConfig",
    )
    assert api.ok("GET", endpoint)["predictRequestResponseLoggingConfig"]["samplingRate"] == 1
    # The dataset holds a table now: it goes only with deleteContents.
    assert _bigquery(api, "DELETE", "projects/acme-geo-dev/datasets/logs").status_code == 400
    assert _bigquery(api, "DELETE", "projects/acme-geo-dev/datasets/logs", deleteContents="true").status_code == 200


def _policy(**threshold) -> dict:
    base = {
        "filter": 'metric.type="aiplatform.googleapis.com/prediction/online/prediction_latencies" AND '
        'resource.type="aiplatform.googleapis.com/Endpoint"',
        "comparison": "COMPARISON_GT",
        "thresholdValue": 100,
        "duration": "300s",
        "aggregations": [
            {
                "alignmentPeriod": "300s",
                "perSeriesAligner": "ALIGN_PERCENTILE_99",
                "crossSeriesReducer": "REDUCE_MAX",
                "groupByFields": ["metric.label.deployed_model_id"],
            }
        ],
    }
    return {
        "displayName": "p",
        "combiner": "OR",
        "conditions": [{"displayName": "c", "conditionThreshold": {**base, **threshold}}],
    }


def test_alert_policy_rules(api):
    url = f"{api.url}/monitoring/v3/projects/acme-geo-dev/alertPolicies"
    post = lambda body: requests.post(url, json=body, timeout=30)  # noqa: E731
    responses = 'metric.type="aiplatform.googleapis.com/prediction/online/response_count"'
    bad = [
        _policy(filter="x" * 2049),
        _policy(filter='metric.type="aiplatform.googleapis.com/prediction/online/prediction_latencies"'),
        _policy(comparison="COMPARISON_GE"),
        _policy(duration="90s"),
        _policy(aggregations=[{"perSeriesAligner": "ALIGN_PERCENTILE_99"}]),
        _policy(aggregations=[{"alignmentPeriod": "30s", "perSeriesAligner": "ALIGN_RATE"}]),
        _policy(aggregations=[{"alignmentPeriod": "300s", "crossSeriesReducer": "REDUCE_SUM"}]),
        _policy(filter=f'{responses} AND resource.type="aiplatform.googleapis.com/Endpoint"'),  # p99 of a count
        _policy(
            denominatorFilter=responses,
            denominatorAggregations=[
                {  # grouped otherwise than the numerator
                    "alignmentPeriod": "300s",
                    "perSeriesAligner": "ALIGN_RATE",
                    "crossSeriesReducer": "REDUCE_SUM",
                }
            ],
        ),
        {**_policy(), "conditions": _policy()["conditions"] * 7},
        {**_policy(), "notificationChannels": ["channel-1"]},
    ]
    for body in bad:
        assert post(body).status_code == 400, body
    unknown = post(
        _policy(filter='metric.type="aiplatform.googleapis.com/prediction/online/nope" AND resource.type="x"')
    )
    assert unknown.status_code == 404
    created = post(_policy()).json()
    assert created["name"].startswith("projects/acme-geo-dev/alertPolicies/") and created["enabled"] is True
    patched = requests.patch(
        f"{api.url}/monitoring/v3/{created['name']}",
        json={"displayName": "renamed"},
        params={"updateMask": "displayName"},
        timeout=30,
    ).json()
    assert patched["displayName"] == "renamed" and patched["conditions"] == created["conditions"]
    assert requests.delete(f"{api.url}/monitoring/v3/{created['name']}", timeout=30).status_code == 200
    assert requests.get(f"{api.url}/monitoring/v3/{created['name']}", timeout=30).status_code == 404
