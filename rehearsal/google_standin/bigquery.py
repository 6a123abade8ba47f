"""google_bigquery_dataset, against BigQuery v2 (datasets insert/get/patch/delete)."""

from __future__ import annotations

from tf.schema import Schema
from tf.types import Bool, Map, Number, String

from provider.common import attr, known
from rehearsal.google_standin.base import StandInResource, single_block

_S, _B = String(), Bool()


class BigqueryDataset(StandInResource):
    @classmethod
    def get_name(cls):
        return "bigquery_dataset"

    @classmethod
    def get_schema(cls):
        return Schema(
            version=0,
            attributes=[
                attr("dataset_id", _S, kind="required", replace=True),
                attr("project", _S, kind="optional+computed", replace=True),
                attr("location", _S, kind="optional+computed", replace=True),
                attr("description", _S, kind="optional"),
                attr("friendly_name", _S, kind="optional"),
                attr("labels", Map(_S), kind="optional"),
                attr("delete_contents_on_destroy", _B, kind="optional"),
                attr("deletion_policy", _S, kind="optional"),
                attr("id", _S, kind="computed"),
                attr("etag", _S, kind="computed"),
                attr("self_link", _S, kind="computed"),
                attr("creation_time", Number(), kind="computed"),
            ],
            block_types=[single_block("default_encryption_configuration", attr("kms_key_name", _S, kind="required"))],
        )

    def _path(self, state: dict) -> str:
        project = state.get("project") if known(state.get("project")) else self.provider.settings["project"]
        return f"projects/{project}/datasets/{state['dataset_id']}"

    def _body(self, planned: dict) -> dict:
        body = {
            "description": planned.get("description"),
            "friendlyName": planned.get("friendly_name"),
            "labels": planned.get("labels") or {},
        }
        key = planned.get("default_encryption_configuration")
        body["defaultEncryptionConfiguration"] = {"kmsKeyName": key["kms_key_name"]} if key else None
        return body

    def _state(self, found: dict, prior: dict) -> dict:
        key = (found.get("defaultEncryptionConfiguration") or {}).get("kmsKeyName")
        return {
            **prior,
            "project": self._path(prior).split("/")[1],
            "location": found.get("location"),
            "description": found.get("description"),
            "friendly_name": found.get("friendlyName"),
            "labels": found.get("labels") or (prior.get("labels") if prior.get("labels") == {} else None),
            "default_encryption_configuration": {"kms_key_name": key} if key else None,
            "id": self._path(prior),
            "etag": found.get("etag"),
            "self_link": found.get("selfLink"),
            "creation_time": int(found.get("creationTime") or 0),
        }

    def create(self, ctx, planned):
        def work():
            project = self._path(planned).split("/")[1]
            body = {
                **{k: v for k, v in self._body(planned).items() if v is not None},
                "datasetReference": {"datasetId": planned["dataset_id"], "projectId": project},
                "location": planned.get("location") if known(planned.get("location")) else "US",
            }
            found = self.provider.call(
                "POST", self.provider.endpoint("big_query_custom_endpoint", f"projects/{project}/datasets"), body=body
            )
            return self._state(found, planned)

        return self.run(ctx, work)

    def read(self, ctx, current):
        def work():
            found = self.provider.call("GET", self.provider.endpoint("big_query_custom_endpoint", self._path(current)))
            return None if found is None else self._state(found, current)

        return self.run(ctx, work)

    def _update(self, current, planned):
        found = self.provider.call(
            "PATCH", self.provider.endpoint("big_query_custom_endpoint", self._path(current)), body=self._body(planned)
        )
        return self._state(found, planned)

    def delete(self, ctx, current):
        if current.get("deletion_policy") == "ABANDON":
            return None  # the dataset and its tables stay: only forgotten

        def work():
            self.provider.call(
                "DELETE",
                self.provider.endpoint("big_query_custom_endpoint", self._path(current)),
                params={"deleteContents": "true" if current.get("delete_contents_on_destroy") else "false"},
            )

        return self.run(ctx, work)
