"""The deployments of the model on the endpoint, and the endpoint's traffic split.

One `terraform_data` per deployment, named by its deployed-model ID (the current artifact,
and the previous one while a canary runs), each deploying on create and undeploying on
destroy. `traffic` holds the whole split and the replica bounds; it depends on every
deployment and is created before the old one is destroyed, so a new artifact serves
before the old one is let go.
"""

from __future__ import annotations

from cdktf import TerraformOutput, TerraformResource
from constructs import Construct

from stacks.base import BaseStack, hook
from stacks.wiring import DeploymentConfig

# Settings the `traffic` hook changes on a live deployment; every other one redeploys.
IN_PLACE = ("traffic_percent", "min_replica_count", "max_replica_count")


class DeploymentStack(BaseStack):
    def __init__(self, scope: Construct, id: str, *, config: DeploymentConfig) -> None:
        super().__init__(scope, id, backend=config.backend)
        deployments = []
        for spec in config.deployments:
            deployment = TerraformResource(
                self,
                f"deployment_{spec['deployed_model_id']}",
                terraform_resource_type="terraform_data",
                provisioners=[
                    hook("deploy", config.hooks),
                    hook("undeploy", config.hooks, when="destroy"),
                ],
                lifecycle={"create_before_destroy": True},
            )
            deployment.add_override("input", spec)
            deployment.add_override("triggers_replace", {k: v for k, v in spec.items() if k not in IN_PLACE})
            deployments.append(deployment)
        traffic = TerraformResource(
            self,
            "traffic",
            terraform_resource_type="terraform_data",
            provisioners=[hook("traffic", config.hooks)],
            depends_on=deployments,
            # The new split is in place (and what is no longer declared undeployed) before
            # Terraform destroys the deployments that left the config.
            lifecycle={"create_before_destroy": True},
        )
        traffic.add_override("input", config.traffic_input)
        traffic.add_override("triggers_replace", config.traffic_input)
        TerraformOutput(
            self,
            "traffic_split",
            value=config.traffic_input["split"],
            description="Deployed-model ID -> percent of the endpoint's traffic.",
        )
