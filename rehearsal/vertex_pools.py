"""The Vertex AI emulator's deployment resource pools (v1 `projects.locations.deploymentResourcePools`:
create, get, list, queryDeployedModels, delete), strict as the rule table says.
"""

from __future__ import annotations

import copy

from rehearsal.vertex_common import (
    POOL_ID,
    ApiError,
    Host,
    now,
)


class PoolsApi(Host):
    """`projects.locations.deploymentResourcePools.*`, on the Emulator's state."""

    @property
    def pools(self) -> dict:
        return self.state.setdefault("pools", {})

    def _pool(self, name: str) -> dict:
        pool = self.pools.get(self.canon(name))
        if pool is None:
            raise ApiError("NOT_FOUND", f"DeploymentResourcePool {self.canon(name)} is not found.")
        return pool

    def _pool_users(self, name: str) -> list[dict]:
        return [
            {"endpoint": e["name"], "deployedModelId": d["id"]}
            for e in self.state["endpoints"].values()
            for d in e.get("deployedModels", [])
            if d.get("sharedResources") == name
        ]

    def create_pool(self, parent: str, body: dict) -> dict:
        pool_id = body.get("deploymentResourcePoolId")
        if not isinstance(pool_id, str) or not POOL_ID.fullmatch(pool_id):
            raise ApiError(
                "INVALID_ARGUMENT",
                f"deployment_resource_pool_id {pool_id!r} is invalid; allowed: at most "
                "63 of [a-z0-9-], starting with a letter, not ending with '-'",
            )
        name = f"{self.canon(parent)}/deploymentResourcePools/{pool_id}"
        if name in self.pools:
            raise ApiError("ALREADY_EXISTS", f"DeploymentResourcePool {name} already exists.")
        given = copy.deepcopy(body.get("deploymentResourcePool") or {})
        resources = given.get("dedicatedResources")
        if not resources or not (resources.get("machineSpec") or {}).get("machineType"):
            raise ApiError("INVALID_ARGUMENT", "deployment_resource_pool.dedicated_resources.machine_spec is required.")
        self._check_dedicated(resources)
        pool = {
            k: v
            for k, v in given.items()
            if k in ("dedicatedResources", "encryptionSpec", "serviceAccount", "disableContainerLogging")
        }
        pool.update({"name": name, "createTime": now()})
        self.pools[name] = pool
        self.count("createDeploymentResourcePool", name)
        return self.operation(
            name, "CreateDeploymentResourcePool", lambda: copy.deepcopy(pool), "DeploymentResourcePool"
        )

    def query_pool(self, name: str) -> dict:
        users = self._pool_users(self._pool(name)["name"])
        return {
            "deployedModelRefs": users,
            "totalDeployedModelCount": len(users),
            "totalEndpointCount": len({u["endpoint"] for u in users}),
        }

    def delete_pool(self, name: str) -> dict:
        pool = self._pool(name)
        users = self._pool_users(pool["name"])
        if users:
            raise ApiError(
                "FAILED_PRECONDITION",
                f"DeploymentResourcePool {pool['name']} has deployed models "
                f"{[u['deployedModelId'] for u in users]}; undeploy them first",
            )
        del self.pools[pool["name"]]
        self.count("deleteDeploymentResourcePool", pool["name"])
        return self.operation(pool["name"], "DeleteOperation", lambda: {}, "google.protobuf.Empty")
