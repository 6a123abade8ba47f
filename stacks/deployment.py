"""The deployments of the model on the endpoint, and the endpoint's traffic split.

- `deployment_<version alias>`, one per model version that serves (the current artifact,
  and the previous one while a canary runs). A new version, machine or service account
  is a new deployment, created before the old one is undeployed; replicas change in place.
- `traffic`: the whole split, changed in place once every deployment it names serves.
  Terraform updates it before it destroys a deployment the config dropped (the split
  depended on it), so traffic leaves a deployment before the deployment goes. When the
  current artifact's deployment takes traffic, the provider first checks it answers the
  build's golden tile (`verification`); if not, the split goes back and the apply fails, so
  the old deployment is not destroyed either.
"""

from __future__ import annotations

from cdktn import TerraformOutput
from constructs import Construct

from stacks.base import BaseStack, vertex_provider
from stacks.vertex import Deployment, TrafficSplit
from stacks.wiring import DeploymentConfig


class DeploymentStack(BaseStack):
    def __init__(self, scope: Construct, id: str, *, config: DeploymentConfig) -> None:
        super().__init__(scope, id, backend=config.backend)
        vertex_provider(self, config.provider)
        deployments = []
        for spec in config.deployments:
            deployment = Deployment(self, spec.resource_id, **spec.attributes())
            if spec.import_id:
                deployment.import_from(spec.import_id)
            deployments.append(deployment)
        traffic = TrafficSplit(
            self,
            "traffic",
            project=config.project,
            region=config.region,
            endpoint_id=config.endpoint_id,
            split=config.split,
            verification=config.verification,
            depends_on=deployments,
        )
        if config.traffic_import_id:
            traffic.import_from(config.traffic_import_id)
        TerraformOutput(
            self,
            "traffic_split",
            value=config.split,
            description="Deployed-model ID -> percent of the endpoint's traffic.",
        )
