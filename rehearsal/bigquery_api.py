"""BigQuery v2 datasets (`/bigquery/v2/...`), emulated beside Vertex AI (the same process and
state): what the google provider's `google_bigquery_dataset` calls, and the tables Vertex AI's
request-response logging creates in them (`Emulator._logging_config`).

Rules, each from its source: [bq] = gcloud 528's generated BigQuery v2 messages
(`googlecloudsdk/generated_clients/apis/bigquery/v2/bigquery_v2_messages.py`); [cmek] =
BigQuery, "Customer-managed Cloud KMS keys" (https://cloud.google.com/bigquery/docs/customer-managed-encryption).
| rule | source |
|---|---|
| datasetId: only letters, digits and `_`, at most 1,024 characters; an existing ID is 409 ALREADY_EXISTS | [bq] DatasetReference.datasetId |
| delete: a dataset that holds tables only with deleteContents=true ("If False and the dataset contains tables, the request will fail") | [bq] BigqueryDatasetsDeleteRequest.deleteContents |
| defaultEncryptionConfiguration.kmsKeyName: a key in the dataset's location | [cmek] ("the key ring location must match the dataset location") |
| location: immutable after creation | [bq] Dataset.location ("The geographic location where the dataset should reside"; no update path) |
"""  # noqa: E501 - the rules are a Markdown table: one row per line, however long

from __future__ import annotations

import copy
import hashlib
import re

DATASET_ID = re.compile(r"[A-Za-z0-9_]{1,1024}")
KMS_LOCATION = re.compile(r"projects/[^/]+/locations/([^/]+)/keyRings/[^/]+/cryptoKeys/[^/]+")
MUTABLE = ("description", "friendlyName", "labels", "defaultEncryptionConfiguration", "defaultTableExpirationMs")


def _millis(timestamp: str) -> str:
    """BigQuery's creationTime/lastModifiedTime: milliseconds since the epoch, as a string."""
    import datetime

    moment = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return str(int(moment.timestamp() * 1000))


class BigQueryApi:
    """State lives in the emulator's `state["bigquery"]`: `project:dataset` -> dataset, with its tables."""

    def __init__(self, emulator):
        self.emulator = emulator

    @property
    def datasets(self) -> dict:
        return self.emulator.state.setdefault("bigquery", {})

    def error(self, status: str, message: str):
        return self.emulator.error(status, message)

    def handle(self, method: str, rest: str, query: dict, body: dict) -> dict:
        if m := re.fullmatch(r"projects/([^/]+)/datasets", rest):
            if method == "POST":
                return self.create(m.group(1), body)
            if method == "GET":
                prefix = m.group(1) + ":"
                return {
                    "kind": "bigquery#datasetList",
                    "datasets": [
                        {"id": k, "datasetReference": d["datasetReference"], "location": d["location"]}
                        for k, d in sorted(self.datasets.items())
                        if k.startswith(prefix)
                    ],
                }
        if m := re.fullmatch(r"projects/([^/]+)/datasets/([^/]+)", rest):
            project, dataset = m.groups()
            if method == "GET":
                return self.view(self.dataset(project, dataset))
            if method in ("PATCH", "PUT"):
                return self.patch(project, dataset, body)
            if method == "DELETE":
                return self.delete(project, dataset, (query.get("deleteContents") or ["false"])[0] == "true")
        if m := re.fullmatch(r"projects/([^/]+)/datasets/([^/]+)/tables(?:/([^/]+))?", rest):
            project, dataset, table = m.groups()
            found = self.dataset(project, dataset)
            if method == "GET" and table is None:
                return {
                    "kind": "bigquery#tableList",
                    "tables": [self.view(t) for _, t in sorted(found["_tables"].items())],
                }
            if method == "GET":
                if table not in found["_tables"]:
                    raise self.error("NOT_FOUND", f"Not found: Table {project}:{dataset}.{table}")
                return self.view(found["_tables"][table])
        raise self.error("NOT_FOUND", f"no route {method} /bigquery/v2/{rest}")

    def dataset(self, project: str, dataset: str) -> dict:
        found = self.datasets.get(f"{project}:{dataset}")
        if found is None:
            raise self.error("NOT_FOUND", f"Not found: Dataset {project}:{dataset}")
        return found

    def view(self, dataset: dict) -> dict:
        return {k: copy.deepcopy(v) for k, v in dataset.items() if not k.startswith("_")}

    def _check_key(self, body: dict, location: str) -> None:
        key = (body.get("defaultEncryptionConfiguration") or {}).get("kmsKeyName")
        if not key:
            return
        match = KMS_LOCATION.fullmatch(key)
        if not match:
            raise self.error("INVALID_ARGUMENT", f"Invalid KMS key name {key!r}")
        if match.group(1).lower() != location.lower():
            raise self.error(
                "INVALID_ARGUMENT",
                f"Cloud KMS key {key} is in {match.group(1)} but the dataset is in "
                f"{location}; the key must be in the dataset's location",
            )

    def create(self, project: str, body: dict) -> dict:
        reference = body.get("datasetReference") or {}
        dataset_id = reference.get("datasetId")
        if not isinstance(dataset_id, str) or not DATASET_ID.fullmatch(dataset_id):
            raise self.error(
                "INVALID_ARGUMENT",
                f"Invalid dataset ID {dataset_id!r}. Dataset IDs must be alphanumeric "
                "(plus underscores) and must be at most 1024 characters long.",
            )
        if reference.get("projectId", project) != project:
            raise self.error(
                "INVALID_ARGUMENT",
                f"datasetReference.projectId {reference['projectId']!r} is not {project!r}, the project of the request",
            )
        key = f"{project}:{dataset_id}"
        if key in self.datasets:
            raise self.error("ALREADY_EXISTS", f"Already Exists: Dataset {key}")
        location = body.get("location") or "US"
        self._check_key(body, location)
        created = _millis(self.emulator.now())
        dataset = {k: copy.deepcopy(body[k]) for k in MUTABLE if body.get(k) is not None}
        dataset.update(
            {
                "kind": "bigquery#dataset",
                "id": key,
                "location": location,
                "type": "DEFAULT",
                "datasetReference": {"datasetId": dataset_id, "projectId": project},
                "creationTime": created,
                "lastModifiedTime": created,
                "selfLink": f"https://bigquery.googleapis.com/bigquery/v2/projects/{project}/datasets/{dataset_id}",
                "_tables": {},
            }
        )
        self._etag(dataset)
        self.datasets[key] = dataset
        self.emulator.count("bigquery.datasets.insert", key)
        self.emulator.save()
        return self.view(dataset)

    def patch(self, project: str, dataset_id: str, body: dict) -> dict:
        dataset = self.dataset(project, dataset_id)
        if body.get("location") and body["location"].lower() != dataset["location"].lower():
            raise self.error(
                "INVALID_ARGUMENT",
                f"Cannot change the location of dataset {dataset['id']} ({dataset['location']} -> {body['location']})",
            )
        self._check_key(body, dataset["location"])
        for key in MUTABLE:
            if key in body:
                if body[key] in (None, {}):
                    dataset.pop(key, None)
                else:
                    dataset[key] = copy.deepcopy(body[key])
        dataset["lastModifiedTime"] = _millis(self.emulator.now())
        self._etag(dataset)
        self.emulator.count("bigquery.datasets.patch", dataset["id"])
        self.emulator.save()
        return self.view(dataset)

    def delete(self, project: str, dataset_id: str, delete_contents: bool) -> dict:
        dataset = self.dataset(project, dataset_id)
        if dataset["_tables"] and not delete_contents:
            raise self.error(
                "FAILED_PRECONDITION",
                f"Dataset {dataset['id']} is still in use (it holds tables "
                f"{sorted(dataset['_tables'])}); delete them or pass deleteContents",
            )
        del self.datasets[dataset["id"]]
        self.emulator.count("bigquery.datasets.delete", dataset["id"])
        self.emulator.save()
        return {}

    def create_table(self, project: str, dataset_id: str, table_id: str, schema: list[dict], owner: str) -> dict:
        """A table made by another service (Vertex AI's request-response logging), kept with its owner."""
        dataset = self.dataset(project, dataset_id)
        created = _millis(self.emulator.now())
        table = {
            "kind": "bigquery#table",
            "id": f"{project}:{dataset_id}.{table_id}",
            "tableReference": {"projectId": project, "datasetId": dataset_id, "tableId": table_id},
            "schema": {"fields": schema},
            "creationTime": created,
            "type": "TABLE",
            "_owner": owner,
        }
        if dataset.get("defaultEncryptionConfiguration"):
            table["encryptionConfiguration"] = copy.deepcopy(dataset["defaultEncryptionConfiguration"])
        dataset["_tables"][table_id] = table
        return self.view(table)

    @staticmethod
    def _etag(dataset: dict) -> None:
        body = {k: v for k, v in dataset.items() if k not in ("etag", "_tables")}
        dataset["etag"] = hashlib.sha256(repr(sorted(body.items())).encode()).hexdigest()[:16]
