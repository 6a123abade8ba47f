"""The deployment of the model on the endpoint, and its traffic share.

Two terraform_data resources: `deployment` holds what cannot change without a redeploy
(model, machine spec, service account) and is replaced when that changes; `traffic`
holds the traffic share and replica bounds, which the hook changes in place.
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
        deployment = TerraformResource(
            self,
            "deployment",
            terraform_resource_type="terraform_data",
            provisioners=[
                hook("deploy", config.hooks),
                hook("undeploy", config.hooks, when="destroy"),
            ],
            # The new deployment serves before the old one is undeployed.
            lifecycle={"create_before_destroy": True},
        )
        deployment.add_override("input", config.deployment_input)
        deployment.add_override(
            "triggers_replace", {k: v for k, v in config.deployment_input.items() if k not in IN_PLACE}
        )
        traffic = TerraformResource(
            self,
            "traffic",
            terraform_resource_type="terraform_data",
            provisioners=[hook("traffic", config.hooks)],
            depends_on=[deployment],
        )
        traffic.add_override("input", config.traffic_input)
        traffic.add_override("triggers_replace", config.traffic_input)
        TerraformOutput(
            self,
            "deployed_model_id",
            value=config.deployment_input["deployed_model_id"],
            description="ID of this model's deployment on the endpoint.",
        )
