"""google_vertex_ai_endpoint and google_vertex_ai_deployment_resource_pool, against Vertex AI v1
(endpoints and deploymentResourcePools: create and delete as long-running operations, get,
and an endpoint's patch)."""

from __future__ import annotations

import re

from tf.schema import Block, Schema
from tf.types import Bool, Map, Number, String

from provider.common import SingleBlock, attr, known
from rehearsal.google_standin.base import SetBlock, StandInResource, camel_keys, single_block, snake_keys

_S, _B = String(), Bool()


class VertexAiEndpoint(StandInResource):
    @classmethod
    def get_name(cls):
        return "vertex_ai_endpoint"

    @classmethod
    def get_schema(cls):
        return Schema(
            version=0,
            attributes=[
                attr("name", _S, kind="required", replace=True),
                attr("display_name", _S, kind="required"),
                attr("description", _S, kind="optional"),
                attr("location", _S, kind="required", replace=True),
                attr("region", _S, kind="optional", replace=True),
                attr("project", _S, kind="optional+computed", replace=True),
                attr("labels", Map(_S), kind="optional"),
                attr("id", _S, kind="computed"),
            ],
            block_types=[
                single_block("encryption_spec", attr("kms_key_name", _S, kind="required")),
                SingleBlock(
                    "predict_request_response_logging_config",
                    Block(
                        attributes=[
                            attr("enabled", _B, kind="optional"),
                            attr("sampling_rate", Number(), kind="optional"),
                        ],
                        block_types=[single_block("bigquery_destination", attr("output_uri", _S, kind="optional"))],
                    ),
                ),
            ],
        )

    def _path(self, state: dict) -> str:
        project = state.get("project") if known(state.get("project")) else self.provider.settings["project"]
        return f"projects/{project}/locations/{state['location']}/endpoints/{state['name']}"

    @staticmethod
    def _logging_to_api(config: dict | None) -> dict:
        if not config:
            return {}
        rate = config.get("sampling_rate")
        out: dict[str, object] = {
            "enabled": bool(config.get("enabled")),
            "samplingRate": None if rate is None else float(rate),
        }
        if (config.get("bigquery_destination") or {}).get("output_uri"):
            out["bigqueryDestination"] = {"outputUri": config["bigquery_destination"]["output_uri"]}
        return {k: v for k, v in out.items() if v is not None}

    @staticmethod
    def _logging_from_api(found: dict, prior: dict) -> dict | None:
        config = found.get("predictRequestResponseLoggingConfig")
        if not config or (not config.get("enabled") and not prior.get("predict_request_response_logging_config")):
            return None  # off, as a config without the block says
        destination = config.get("bigqueryDestination")
        return {
            "enabled": bool(config.get("enabled")),
            "sampling_rate": config.get("samplingRate"),
            "bigquery_destination": {"output_uri": destination.get("outputUri")} if destination else None,
        }

    def _state(self, found: dict, prior: dict) -> dict:
        return {
            **prior,
            "display_name": found.get("displayName"),
            "description": found.get("description"),
            "predict_request_response_logging_config": self._logging_from_api(found, prior),
            "labels": found.get("labels") or (prior.get("labels") if prior.get("labels") == {} else None),
            "project": prior.get("project") if known(prior.get("project")) else self.provider.settings["project"],
            "id": self._path(prior),
        }

    def create(self, ctx, planned):
        def work():
            parent = self._path(planned).rsplit("/endpoints/", 1)[0]
            body = {
                "displayName": planned["display_name"],
                "description": planned.get("description") or "",
                "labels": planned.get("labels") or {},
            }
            if planned.get("encryption_spec"):
                body["encryptionSpec"] = {"kmsKeyName": planned["encryption_spec"]["kms_key_name"]}
            if planned.get("predict_request_response_logging_config"):
                body["predictRequestResponseLoggingConfig"] = self._logging_to_api(
                    planned["predict_request_response_logging_config"]
                )
            op = self.provider.call(
                "POST", self.provider.vertex(f"{parent}/endpoints"), body=body, params={"endpointId": planned["name"]}
            )
            self.provider.wait(op)
            return self._state(self.provider.call("GET", self.provider.vertex(self._path(planned))), planned)

        return self.run(ctx, work)

    def read(self, ctx, current):
        def work():
            found = self.provider.call("GET", self.provider.vertex(self._path(current)))
            return None if found is None else self._state(found, current)

        return self.run(ctx, work)

    def _update(self, current, planned):
        mask = [
            api
            for key, api in (
                ("display_name", "displayName"),
                ("description", "description"),
                ("labels", "labels"),
                ("predict_request_response_logging_config", "predictRequestResponseLoggingConfig"),
            )
            if planned.get(key) != current.get(key)
        ]
        body = {
            "displayName": planned["display_name"],
            "description": planned.get("description") or "",
            "labels": planned.get("labels") or {},
            # Turned off: enabled false (resource_vertex_ai_endpoint.go sends the block as configured).
            "predictRequestResponseLoggingConfig": self._logging_to_api(
                planned.get("predict_request_response_logging_config")
            )
            or {"enabled": False},
        }
        self.provider.call(
            "PATCH", self.provider.vertex(self._path(current)), body=body, params={"updateMask": ",".join(mask)}
        )
        return self._state(self.provider.call("GET", self.provider.vertex(self._path(current))), planned)

    def delete(self, ctx, current):
        def work():
            self.provider.wait(self.provider.call("DELETE", self.provider.vertex(self._path(current))))

        return self.run(ctx, work)

    def import_(self, ctx, id):
        match = re.fullmatch(r"projects/([^/]+)/locations/([^/]+)/endpoints/([^/]+)", id)
        if not match:
            ctx.diagnostics.add_error(f"cannot import {id!r}", "Give projects/P/locations/L/endpoints/NAME.")
            return None
        project, location, name = match.groups()
        prior = {
            "project": project,
            "location": location,
            "name": name,
            "region": None,
            "encryption_spec": None,
            "predict_request_response_logging_config": None,
        }
        found = self.run(ctx, self.provider.call, "GET", self.provider.vertex(self._path(prior)))
        if not found:
            ctx.diagnostics.add_error(f"cannot import {id!r}: no such endpoint", "")
            return None
        return self._state(found, prior)


class VertexAiDeploymentResourcePool(StandInResource):
    """Every attribute forces a new pool (the real provider's schema: ForceNew throughout)."""

    @classmethod
    def get_name(cls):
        return "vertex_ai_deployment_resource_pool"

    @classmethod
    def get_schema(cls):
        _N = Number()
        machine = single_block(
            "machine_spec",
            attr("machine_type", _S, kind="optional", replace=True),
            attr("accelerator_type", _S, kind="optional", replace=True),
            attr("accelerator_count", _N, kind="optional", replace=True),
        )
        metrics = SetBlock(
            "autoscaling_metric_specs",
            Block(
                attributes=[
                    attr("metric_name", _S, kind="required", replace=True),
                    attr("target", _N, kind="optional", replace=True),
                ]
            ),
        )
        return Schema(
            version=0,
            attributes=[
                attr("name", _S, kind="required", replace=True),
                attr("region", _S, kind="optional+computed", replace=True),
                attr("project", _S, kind="optional+computed", replace=True),
                attr("deletion_policy", _S, kind="optional"),
                attr("id", _S, kind="computed"),
                attr("create_time", _S, kind="computed"),
            ],
            block_types=[
                SingleBlock(
                    "dedicated_resources",
                    Block(
                        attributes=[
                            attr("min_replica_count", _N, kind="required", replace=True),
                            attr("max_replica_count", _N, kind="optional", replace=True),
                        ],
                        block_types=[machine, metrics],
                    ),
                )
            ],
        )

    def _name(self, state: dict) -> str:
        project = state.get("project") if known(state.get("project")) else self.provider.settings["project"]
        region = state.get("region") if known(state.get("region")) else self.provider.settings["region"]
        return f"projects/{project}/locations/{region}/deploymentResourcePools/{state['name']}"

    def _state(self, found: dict, prior: dict) -> dict:
        name = self._name(prior)
        return {
            **prior,
            "project": name.split("/")[1],
            "region": name.split("/")[3],
            "id": name,
            "create_time": found.get("createTime"),
            "dedicated_resources": snake_keys(found.get("dedicatedResources"), prior.get("dedicated_resources")),
        }

    def create(self, ctx, planned):
        def work():
            parent = self._name(planned).rsplit("/deploymentResourcePools/", 1)[0]
            body = {
                "deploymentResourcePoolId": planned["name"],
                "deploymentResourcePool": {"dedicatedResources": camel_keys(planned.get("dedicated_resources"))},
            }
            self.provider.wait(
                self.provider.call("POST", self.provider.vertex(f"{parent}/deploymentResourcePools"), body=body)
            )
            return self._state(self.provider.call("GET", self.provider.vertex(self._name(planned))), planned)

        return self.run(ctx, work)

    def read(self, ctx, current):
        def work():
            found = self.provider.call("GET", self.provider.vertex(self._name(current)))
            return None if found is None else self._state(found, current)

        return self.run(ctx, work)

    def delete(self, ctx, current):
        if current.get("deletion_policy") == "ABANDON":
            return None

        def work():
            self.provider.wait(self.provider.call("DELETE", self.provider.vertex(self._name(current))))

        return self.run(ctx, work)
