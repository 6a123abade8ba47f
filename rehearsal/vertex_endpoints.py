"""The Vertex AI emulator's endpoints API: create, update, delete, deployModel, undeployModel,
mutateDeployedModel (v1 `projects.locations.endpoints`), strict as the rule table says.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re

from config.images import prebuilt
from rehearsal.vertex_common import (
    BQ_URI,
    CO_HOSTING_DOC,
    DEFAULT_MACHINE_TYPE,
    DEPLOYED_MODEL_ID,
    ENDPOINT_ID,
    LOGGING_SCHEMA,
    MUTABLE_DEPLOYED,
    ApiError,
    Host,
    check_dedicated,
    check_split,
    now,
    snake,
)


class EndpointsApi(Host):
    """`projects.locations.endpoints.*` but predict, on the Emulator's state."""

    def _endpoint(self, name: str) -> dict:
        endpoint = self.state["endpoints"].get(self.canon(name))
        if endpoint is None:
            raise ApiError("NOT_FOUND", f"Endpoint {self.canon(name)} is not found.")
        return endpoint

    def _touch(self, endpoint: dict) -> None:
        self.state.setdefault("traffic", []).append(
            {
                "endpoint": endpoint["name"],
                "at": now(),
                "serving": sorted(k for k, v in endpoint["trafficSplit"].items() if v > 0),
            }
        )
        endpoint["updateTime"] = now()
        body = {k: v for k, v in endpoint.items() if k != "etag"}
        endpoint["etag"] = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:24]

    def create_endpoint(self, parent: str, endpoint_id: str | None, body: dict) -> dict:
        parent = self.canon(parent)
        if endpoint_id is not None and not ENDPOINT_ID.fullmatch(endpoint_id):
            raise ApiError(
                "INVALID_ARGUMENT",
                f"endpoint_id {endpoint_id!r} is invalid; allowed: a number of at most "
                "9 digits without a leading zero, or up to 63 of [a-z0-9-] starting "
                "with a letter and ending with a letter or digit",
            )
        endpoint_id = endpoint_id or self._generated_id()
        if not body.get("displayName"):
            raise ApiError("INVALID_ARGUMENT", "endpoint.display_name is required.")
        name = f"{parent}/endpoints/{endpoint_id}"
        if name in self.state["endpoints"]:
            raise ApiError("ALREADY_EXISTS", f"Endpoint {name} already exists.")
        created = now()
        endpoint = {
            k: v
            for k, v in body.items()
            if k not in ("name", "deployedModels", "trafficSplit", "etag", "createTime", "updateTime")
        }
        endpoint.update({"name": name, "deployedModels": [], "trafficSplit": {}, "createTime": created})
        if body.get("predictRequestResponseLoggingConfig"):
            endpoint["predictRequestResponseLoggingConfig"] = self._logging_config(
                endpoint, body["predictRequestResponseLoggingConfig"]
            )
        self._touch(endpoint)
        self.state["endpoints"][name] = endpoint
        self.count("createEndpoint", name)
        return self.operation(name, "CreateEndpoint", lambda: self.endpoint_view(endpoint), "Endpoint")

    def endpoint_view(self, endpoint: dict) -> dict:
        """An endpoint as GetEndpoint returns it: empty maps and lists are left out."""
        view = copy.deepcopy(endpoint)
        for key in ("deployedModels", "trafficSplit"):
            if not view.get(key):
                view.pop(key, None)
        return view

    def list_endpoints(self, parent: str) -> dict:
        prefix = self.canon(parent) + "/endpoints/"
        return {
            "endpoints": [
                self.endpoint_view(e) for k, e in sorted(self.state["endpoints"].items()) if k.startswith(prefix)
            ]
        }

    def delete_endpoint(self, name: str) -> dict:
        endpoint = self._endpoint(name)
        if endpoint["deployedModels"]:
            raise ApiError(
                "FAILED_PRECONDITION",
                f"Endpoint {endpoint['name']} has deployed models "
                f"{[d['id'] for d in endpoint['deployedModels']]}; undeploy them "
                "first",
            )
        del self.state["endpoints"][endpoint["name"]]
        self.count("deleteEndpoint", endpoint["name"])
        return self.operation(endpoint["name"], "Delete", lambda: {}, "google.protobuf.Empty")

    def update_endpoint(self, name: str, mask: list[str], body: dict) -> dict:
        endpoint = self._endpoint(name)
        if not mask:
            raise ApiError("INVALID_ARGUMENT", "update_mask is required.")
        keys = {
            "display_name": "displayName",
            "description": "description",
            "labels": "labels",
            "traffic_split": "trafficSplit",
            "predict_request_response_logging_config": "predictRequestResponseLoggingConfig",
        }
        wrong = sorted(set(mask) - set(keys))
        if wrong:
            raise ApiError(
                "INVALID_ARGUMENT",
                f"update_mask paths {wrong} cannot be updated here; allowed: {', '.join(sorted(keys))}",
            )
        if "display_name" in mask and not body.get("displayName"):
            raise ApiError("INVALID_ARGUMENT", "endpoint.display_name is required.")
        if "traffic_split" in mask:
            split = check_split(
                body.get("trafficSplit"), {d["id"] for d in endpoint["deployedModels"]}, "endpoint.traffic_split"
            )
        for path in mask:
            key = keys[path]
            if path == "traffic_split":
                endpoint["trafficSplit"] = split
            elif path == "predict_request_response_logging_config" and body.get(key):
                endpoint[key] = self._logging_config(endpoint, body[key])
            elif body.get(key):
                endpoint[key] = copy.deepcopy(body[key])
            else:
                endpoint.pop(key, None)
        self._touch(endpoint)
        self.count("updateEndpoint", endpoint["name"], json.dumps(endpoint["trafficSplit"], sort_keys=True))
        self.save()
        return self.endpoint_view(endpoint)

    @staticmethod
    def _check_dedicated(resources: dict) -> None:
        # MachineSpec.machine_type: "For DeployedModel this field is optional, and the default
        # value is n1-standard-2" (gcloud's deploy-model sends none without --machine-type).
        machine = resources["machineSpec"] = dict(resources.get("machineSpec") or {})
        machine["machineType"] = machine.get("machineType") or DEFAULT_MACHINE_TYPE
        low = int(resources.get("minReplicaCount") or 0)
        if low < 1:
            raise ApiError("INVALID_ARGUMENT", "deployed_model.dedicated_resources.min_replica_count must be >= 1.")
        high = int(resources.get("maxReplicaCount") or low)
        if high < low:
            raise ApiError(
                "INVALID_ARGUMENT",
                f"dedicated_resources.max_replica_count ({high}) must be >= min_replica_count ({low}).",
            )
        resources["minReplicaCount"], resources["maxReplicaCount"] = low, high

    def _shared_pool(self, endpoint_name: str, version: dict, pool_name: str) -> str:
        """The pool a deployment shares: one that exists in the endpoint's project and region, and
        a model co-hosting serves (Vertex AI's prebuilt TensorFlow or PyTorch container: "custom
        containers are not supported", CO_HOSTING_DOC)."""
        pool = self._pool(pool_name)
        if pool["name"].split("/deploymentResourcePools/")[0] != endpoint_name.split("/endpoints/")[0]:
            raise ApiError(
                "INVALID_ARGUMENT",
                f"deployed_model.shared_resources {pool_name} is not in the "
                f"endpoint's project and location ({endpoint_name})",
            )
        image = (version.get("containerSpec") or {}).get("imageUri", "")
        release = prebuilt(image)
        if release is None or release.family not in ("tf2", "pytorch"):
            raise ApiError(
                "INVALID_ARGUMENT",
                f"Model {version['name']} runs {image!r}, a custom container: model "
                "co-hosting supports only Vertex AI's prebuilt TensorFlow and PyTorch "
                f"containers ({CO_HOSTING_DOC})",
            )
        return pool["name"]

    def _logging_config(self, endpoint: dict, config: dict) -> dict:
        """endpoint.py PredictRequestResponseLoggingConfig, io.py BigQueryDestination: the rate a
        fraction in (0, 1]; the URI `bq://project[.dataset[.table]]`, at most 2000 characters; a full
        table reference needs the dataset to exist and the table not to; Vertex AI creates the table
        (`request_response_logging` when none is named; project only: dataset
        `logging_<display name>_<endpoint ID>` too)."""
        config = copy.deepcopy(config)
        if not config.get("enabled"):
            return config
        given = config.get("samplingRate")
        rate: float | None = None
        try:  # a double: proto3 JSON takes a number or a string that holds one, and answers a number
            if isinstance(given, (int, float, str)) and not isinstance(given, bool):
                rate = float(given)
        except ValueError:
            rate = None
        config["samplingRate"] = rate
        if rate is None or not 0 < rate <= 1:
            raise ApiError(
                "INVALID_ARGUMENT", f"predict_request_response_logging_config.sampling_rate {rate!r} must be in (0, 1]"
            )
        uri = (config.get("bigqueryDestination") or {}).get("outputUri") or ""
        match = BQ_URI.fullmatch(uri)
        if len(uri) > 2000 or not match:
            raise ApiError(
                "INVALID_ARGUMENT",
                f"bigquery_destination.output_uri {uri!r}: allowed: bq://projectId, "
                "bq://projectId.datasetId or bq://projectId.datasetId.tableId",
            )
        project, dataset, table = match.groups()
        endpoint_id = endpoint["name"].rsplit("/", 1)[1]
        table = table or "request_response_logging"
        if dataset is None:
            dataset = re.sub(r"[^A-Za-z0-9_]", "_", f"logging_{endpoint.get('displayName', '')}_{endpoint_id}")
            if f"{project}:{dataset}" not in self.bigquery_api.datasets:
                self.bigquery_api.create(
                    project,
                    {
                        "datasetReference": {"datasetId": dataset, "projectId": project},
                        "location": endpoint["name"].split("/")[3],
                    },
                )
        try:
            found = self.bigquery_api.dataset(project, dataset)
        except ApiError as error:
            raise ApiError(
                "FAILED_PRECONDITION",
                f"bigquery_destination.output_uri {uri}: dataset {project}:{dataset} "
                "does not exist; it must exist (Vertex AI creates only the table)",
            ) from error
        existing = found["_tables"].get(table)
        if existing is not None and existing.get("_owner") != endpoint["name"]:
            raise ApiError(
                "FAILED_PRECONDITION",
                f"bigquery_destination.output_uri {uri}: table {table} exists "
                "already; name a table that does not exist (Vertex AI creates it)",
            )
        if existing is None:
            self.bigquery_api.create_table(project, dataset, table, LOGGING_SCHEMA, owner=endpoint["name"])
        return config

    def deploy(self, name: str, body: dict) -> dict:
        endpoint = self._endpoint(name)
        name = endpoint["name"]
        deployed = copy.deepcopy(body.get("deployedModel") or {})
        if not deployed.get("model"):
            raise ApiError("INVALID_ARGUMENT", "deployed_model.model is required.")
        version = self._resolve(deployed["model"])
        kinds = [k for k in ("dedicatedResources", "automaticResources", "sharedResources") if deployed.get(k)]
        if len(kinds) > 1:
            raise ApiError(
                "INVALID_ARGUMENT",
                f"deployed_model sets {' and '.join(kinds)}; prediction_resources is a oneof: give one",
            )
        if deployed.get("automaticResources"):
            raise ApiError(
                "INVALID_ARGUMENT",
                f"Model {version['name']} supports only dedicated or shared resources; "
                "set deployed_model.dedicated_resources",
            )
        if deployed.get("sharedResources"):
            deployed["sharedResources"] = self._shared_pool(name, version, deployed["sharedResources"])
        resources = deployed.get("dedicatedResources")
        if deployed.get("sharedResources"):
            pass
        elif not resources:
            raise ApiError("INVALID_ARGUMENT", "deployed_model.dedicated_resources is required for this model.")
        else:
            self._check_dedicated(resources)
            check_dedicated(resources, "deployed_model.dedicated_resources")
        for key in ("disableContainerLogging", "enableAccessLogging"):
            if key in deployed and not isinstance(deployed[key], bool):
                raise ApiError("INVALID_ARGUMENT", f"deployed_model.{snake(key)}: {deployed[key]!r} is not a bool")
            if deployed.get(key) is False:
                del deployed[key]
        if deployed.get("id") not in (None, ""):
            deployed_id = str(deployed["id"])
            if not DEPLOYED_MODEL_ID.fullmatch(deployed_id):
                raise ApiError(
                    "INVALID_ARGUMENT", f"deployed_model.id {deployed_id!r} is invalid; allowed: 1-10 digits"
                )
        else:
            deployed_id = self._generated_id()
        if any(d["id"] == deployed_id for d in endpoint["deployedModels"]):
            raise ApiError("ALREADY_EXISTS", f"DeployedModel {deployed_id} already exists on {name}.")
        requested = {(deployed_id if k == "0" else k): v for k, v in (body.get("trafficSplit") or {}).items()}
        split = None
        if requested:
            split = check_split(
                requested, {d["id"] for d in endpoint["deployedModels"]} | {deployed_id}, "traffic_split"
            )
        for output_only in ("createTime", "modelVersionId"):
            deployed.pop(output_only, None)
        record = {
            **deployed,
            "id": deployed_id,
            "model": version["name"],
            "modelVersionId": version["versionId"],
            "createTime": now(),
        }
        fault = self.faults.pop("deployModel", None)
        self.count("deployModel", name, f"{deployed_id} <- {version['name']}@{version['versionId']}")

        def work():
            self._serve(name, record)
            if fault == "fail_after_serving":
                self._unserve(name, deployed_id)
                raise ApiError("INTERNAL", "injected fault: the deployment died after its container started")
            with self.lock:
                endpoint["deployedModels"].append(record)
                if split is not None:
                    endpoint["trafficSplit"] = split
                self._touch(endpoint)
            return {"deployedModel": copy.deepcopy(record)}

        return self.operation(name, "DeployModel", work, "DeployModelResponse")

    def undeploy(self, name: str, body: dict) -> dict:
        endpoint = self._endpoint(name)
        name = endpoint["name"]
        deployed_id = str(body.get("deployedModelId") or "")
        if not any(d["id"] == deployed_id for d in endpoint["deployedModels"]):
            raise ApiError("NOT_FOUND", f"DeployedModel {deployed_id!r} is not found on {name}.")
        rest = [d for d in endpoint["deployedModels"] if d["id"] != deployed_id]
        if body.get("trafficSplit"):
            split = check_split(body["trafficSplit"], {d["id"] for d in rest}, "traffic_split")
        elif not rest:
            split = {}
        elif endpoint["trafficSplit"].get(deployed_id):
            raise ApiError(
                "FAILED_PRECONDITION",
                f"DeployedModel {deployed_id} has {endpoint['trafficSplit'][deployed_id]}"
                "% of the traffic; give traffic_split for the remaining models",
            )
        else:
            split = {k: v for k, v in endpoint["trafficSplit"].items() if k != deployed_id}
        endpoint["deployedModels"] = rest
        endpoint["trafficSplit"] = split
        self._touch(endpoint)
        self.count("undeployModel", name, deployed_id)

        def work():
            self._unserve(name, deployed_id)
            return {}

        return self.operation(name, "UndeployModel", work, "UndeployModelResponse")

    def mutate(self, name: str, body: dict, mask: list[str]) -> dict:
        endpoint = self._endpoint(name)
        wanted = body.get("deployedModel") or {}
        record = next((d for d in endpoint["deployedModels"] if d["id"] == str(wanted.get("id"))), None)
        if record is None:
            raise ApiError("NOT_FOUND", f"DeployedModel {wanted.get('id')!r} is not found on {endpoint['name']}.")
        if not mask:
            raise ApiError("INVALID_ARGUMENT", "update_mask is required.")
        wrong = sorted(set(mask) - MUTABLE_DEPLOYED)
        if wrong:
            raise ApiError(
                "INVALID_ARGUMENT",
                f"update_mask paths {wrong} cannot be mutated; allowed: {', '.join(sorted(MUTABLE_DEPLOYED))}",
            )
        if record.get("sharedResources") and any(p.startswith("dedicated_resources.") for p in mask):
            raise ApiError(
                "INVALID_ARGUMENT",
                f"DeployedModel {record['id']} runs in the shared pool "
                f"{record['sharedResources']}: its dedicated_resources cannot be mutated",
            )
        if record.get("sharedResources"):
            if "disable_container_logging" in mask:
                record["disableContainerLogging"] = bool(wanted.get("disableContainerLogging"))
            self._touch(endpoint)
            self.count("mutateDeployedModel", endpoint["name"], record["id"])
            return self.operation(
                endpoint["name"],
                "MutateDeployedModel",
                lambda: {"deployedModel": copy.deepcopy(record)},
                "MutateDeployedModelResponse",
            )
        resources = copy.deepcopy(record.get("dedicatedResources") or {})
        given = wanted.get("dedicatedResources") or {}
        for path in mask:
            if path.startswith("dedicated_resources."):
                key = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), path.split(".", 1)[1])
                if key in given:
                    resources[key] = given[key]
                else:
                    resources.pop(key, None)
        low, high = int(resources.get("minReplicaCount") or 0), int(resources.get("maxReplicaCount") or 0)
        if low < 1 or high < low:
            raise ApiError(
                "INVALID_ARGUMENT", f"replica counts {low}-{high}: allowed: 1 <= min_replica_count <= max_replica_count"
            )
        check_dedicated(resources, "deployed_model.dedicated_resources")
        record["dedicatedResources"] = resources
        if "disable_container_logging" in mask:
            if wanted.get("disableContainerLogging"):
                record["disableContainerLogging"] = True
            else:
                record.pop("disableContainerLogging", None)
        self._touch(endpoint)
        self.count("mutateDeployedModel", endpoint["name"], record["id"])
        return self.operation(
            endpoint["name"],
            "MutateDeployedModel",
            lambda: {"deployedModel": copy.deepcopy(record)},
            "MutateDeployedModelResponse",
        )
