"""The Vertex AI endpoint Earth Engine calls, and who may call it."""

from __future__ import annotations

from cdktn import TerraformOutput
from constructs import Construct
from cdktn_provider_google.project_iam_custom_role import ProjectIamCustomRole
from cdktn_provider_google.project_iam_member import ProjectIamMember
from cdktn_provider_google.provider import GoogleProvider
from cdktn_provider_google.vertex_ai_endpoint import VertexAiEndpoint
from cdktn_provider_google_beta.google_vertex_ai_endpoint_iam_member import GoogleVertexAiEndpointIamMember
from cdktn_provider_google_beta.provider import GoogleBetaProvider

from stacks.base import BaseStack
from stacks.wiring import EndpointConfig


# Earth Engine calls the endpoint with the credentials of whoever runs the computation,
# so those principals need exactly this permission: on this endpoint (predict_scope
# "endpoint", the default) or on every endpoint of the project ("project").
PREDICT_PERMISSIONS = ["aiplatform.endpoints.predict"]


class EndpointStack(BaseStack):
    def __init__(self, scope: Construct, id: str, *, config: EndpointConfig) -> None:
        super().__init__(scope, id, backend=config.backend)
        GoogleProvider(self, "google", project=config.project, region=config.region)
        endpoint = VertexAiEndpoint(
            self,
            "endpoint",
            name=config.endpoint_id,
            display_name=config.display_name,
            description="Vertex AI endpoint called by Earth Engine (ee.Model.fromVertexAi).",
            location=config.region,
            region=config.region,
            project=config.project,
            labels=config.labels,
            encryption_spec={"kms_key_name": config.kms_key} if config.kms_key else None,
        )
        if config.import_id:
            # The google provider's import ID (google_vertex_ai_endpoint: "Import": projects/
            # {{project}}/locations/{{location}}/endpoints/{{name}}).
            endpoint.import_from(config.import_id)
        if config.predict_members:
            role = ProjectIamCustomRole(
                self,
                "predict_role",
                project=config.project,
                role_id=config.predict_role_id,
                title="Earth Engine Vertex AI predict",
                description="Call Vertex AI endpoints from Earth Engine (ee.Model.fromVertexAi).",
                permissions=PREDICT_PERMISSIONS,
            )
            if config.predict_scope == "project":
                for index, member in enumerate(config.predict_members):
                    ProjectIamMember(
                        self, f"predict_member_{index}", project=config.project, role=role.name, member=member
                    )
            else:
                # Endpoint-level IAM exists only in google-beta; the provider is passed
                # explicitly, else Terraform would look for a default-configured one.
                beta = GoogleBetaProvider(self, "google-beta", project=config.project, region=config.region)
                for index, member in enumerate(config.predict_members):
                    GoogleVertexAiEndpointIamMember(
                        self,
                        f"predict_endpoint_member_{index}",
                        provider=beta,
                        project=config.project,
                        location=config.region,
                        endpoint=endpoint.name,
                        role=role.name,
                        member=member,
                    )
        TerraformOutput(
            self,
            "endpoint_name",
            value=f"projects/{config.project}/locations/{config.region}/endpoints/{config.endpoint_id}",
            description="Pass this to ee.Model.fromVertexAi(endpoint=...).",
        )
        TerraformOutput(
            self,
            "earth_engine_model",
            value=config.earth_engine,
            description="ee.Model.fromVertexAi arguments for this endpoint (outputBands types are ee.PixelType "
                        "names; proj {crs, scale} is ee.Projection(crs).atScale(scale)).",
        )
        TerraformOutput(
            self,
            "earth_engine_snippet",
            value=config.earth_engine_snippet,
            description="Python to paste after ee.Initialize(): ee.Model.fromVertexAi with these arguments.",
        )
        self.endpoint = endpoint
