"""google_storage_bucket and google_storage_bucket_object, against the Cloud Storage JSON API
(buckets insert/get/delete, objects media upload/get/delete)."""

from __future__ import annotations

from pathlib import Path

from tf.schema import Schema
from tf.types import Bool, Map, String

from provider.common import attr, known
from rehearsal.google_standin.base import Failed, StandInResource, single_block

_S, _B = String(), Bool()


class StorageBucket(StandInResource):
    @classmethod
    def get_name(cls):
        return "storage_bucket"

    @classmethod
    def get_schema(cls):
        return Schema(
            version=0,
            attributes=[
                attr("name", _S, kind="required", replace=True),
                attr("location", _S, kind="required", replace=True),
                attr("project", _S, kind="optional+computed", replace=True),
                attr("force_destroy", _B, kind="optional"),
                attr("labels", Map(_S), kind="optional"),
                attr("public_access_prevention", _S, kind="optional+computed"),
                attr("uniform_bucket_level_access", _B, kind="optional+computed"),
                attr("id", _S, kind="computed"),
                attr("url", _S, kind="computed"),
            ],
            block_types=[
                single_block("versioning", attr("enabled", _B, kind="required")),
                single_block(
                    "logging", attr("log_bucket", _S, kind="required"), attr("log_object_prefix", _S, kind="optional")
                ),
                single_block("encryption", attr("default_kms_key_name", _S, kind="required")),
            ],
        )

    def _state(self, found: dict, planned: dict) -> dict:
        return {
            **planned,
            "id": found["name"],
            "url": f"gs://{found['name']}",
            "project": planned["project"] if known(planned.get("project")) else self.provider.settings["project"],
            "location": planned["location"],
            "labels": found.get("labels") or planned.get("labels"),
            "public_access_prevention": planned.get("public_access_prevention") or "inherited",
            "uniform_bucket_level_access": bool(planned.get("uniform_bucket_level_access")),
        }

    def create(self, ctx, planned):
        def work():
            body = {
                "name": planned["name"],
                "location": planned["location"],
                "labels": planned.get("labels") or {},
                "versioning": {"enabled": bool((planned.get("versioning") or {}).get("enabled"))},
                "iamConfiguration": {
                    "uniformBucketLevelAccess": {"enabled": bool(planned.get("uniform_bucket_level_access"))}
                },
            }
            found = self.provider.call(
                "POST",
                self.provider.storage("b"),
                body=body,
                params={"project": planned.get("project") or self.provider.settings["project"]},
            )
            return self._state(found, planned)

        return self.run(ctx, work)

    def read(self, ctx, current):
        def work():
            found = self.provider.call("GET", self.provider.storage(f"b/{current['name']}"))
            return None if found is None else self._state(found, current)

        return self.run(ctx, work)

    def delete(self, ctx, current):
        def work():
            # Cloud Storage refuses to delete a bucket that holds objects (409), and these never
            # go (deletion_policy ABANDON): the artifacts outlive the stack.
            objects = self.provider.call("GET", self.provider.storage(f"b/{current['name']}/o")) or {}
            if objects.get("items") and not current.get("force_destroy"):
                raise Failed(
                    f"Error trying to delete bucket {current['name']} containing objects without "
                    "`force_destroy` set to true"
                )
            self.provider.call("DELETE", self.provider.storage(f"b/{current['name']}"))

        return self.run(ctx, work)


class StorageBucketObject(StandInResource):
    @classmethod
    def get_name(cls):
        return "storage_bucket_object"

    @classmethod
    def get_schema(cls):
        return Schema(
            version=0,
            attributes=[
                attr("name", _S, kind="required", replace=True),
                attr("bucket", _S, kind="required", replace=True),
                attr("source", _S, kind="optional", replace=True),
                attr("deletion_policy", _S, kind="optional"),
                attr("md5hash", _S, kind="computed"),
                attr("id", _S, kind="computed"),
            ],
        )

    def create(self, ctx, planned):
        def work():
            data = Path(planned["source"]).read_bytes()
            found = self.provider.call(
                "POST",
                self.provider.upload(f"b/{planned['bucket']}/o"),
                data=data,
                params={"uploadType": "media", "name": planned["name"]},
            )
            return {**planned, "md5hash": found.get("md5Hash"), "id": f"{planned['bucket']}-{planned['name']}"}

        return self.run(ctx, work)

    def _object(self, state: dict) -> str:
        from urllib.parse import quote

        return self.provider.storage(f"b/{state['bucket']}/o/{quote(state['name'], safe='')}")

    def read(self, ctx, current):
        def work():
            found = self.provider.call("GET", self._object(current))
            return None if found is None else {**current, "md5hash": found.get("md5Hash")}

        return self.run(ctx, work)

    def delete(self, ctx, current):
        if current.get("deletion_policy") == "ABANDON":
            return None  # the object stays in the bucket: only forgotten

        def work():
            self.provider.call("DELETE", self._object(current))

        return self.run(ctx, work)
