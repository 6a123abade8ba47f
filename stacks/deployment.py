"""The deployments of the model on the endpoint, and the endpoint's traffic split.

- `deployment_<deployed-model ID>`, one per deployment (the current artifact, and the
  previous one while a canary runs): deploys on create, idempotently.
- `traffic`: the whole split and the replica bounds. It depends on every deployment, so it
  runs once they all serve; it moves the traffic and then undeploys what the config no
  longer declares. Undeploying there, not in each deployment's destroy hook, is what makes
  a new artifact serve before the old one is let go, whatever order Terraform picks for
  creating the new deployment and destroying the old one.
- `release`: on destroy of the stack, undeploys every deployment of the model from the
  endpoint (before the model stack, which depends on nothing here, deletes the models).
"""

from __future__ import annotations

from cdktn import TerraformOutput, TerraformResource
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
                provisioners=[hook("deploy", config.hooks)],
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
        )
        traffic.add_override("input", config.traffic_input)
        traffic.add_override("triggers_replace", config.traffic_input)
        release = TerraformResource(
            self,
            "release",
            terraform_resource_type="terraform_data",
            provisioners=[hook("release", config.hooks, when="destroy")],
        )
        release.add_override("input", config.release_input)
        release.add_override("triggers_replace", config.release_input)
        TerraformOutput(
            self,
            "traffic_split",
            value=config.traffic_input["split"],
            description="Deployed-model ID -> percent of the endpoint's traffic.",
        )
