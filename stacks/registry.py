"""The Artifact Registry repository our serving image is pushed to, in the target's project
and region, and Vertex AI's read access to it.

- docker format, CMEK with the target's `kms_key`, immutable tags (a tag, once pushed,
  always names the same digest);
- cleanup: images older than 90 days are deleted, except the 10 most recent and every image
  a model version of this config uses, kept by its tag (immutable, so the tag always names
  that digest). KEEP wins over DELETE (Artifact Registry, "Cleanup policy overview": "If an
  artifact version matches criteria in both a delete policy and a keep policy, Artifact
  Registry applies the keep policy");
- `deletion_policy = "ABANDON"`: destroying the stack leaves the repository and its images;
- the Vertex AI service agent (`service-<project number>@gcp-sa-aiplatform.iam.gserviceaccount.com`)
  may read it. Within one project Vertex AI can read without the grant; it keeps the access
  explicit in the plan, and it is what a registry in another project needs.
"""

from __future__ import annotations

from cdktn import TerraformOutput
from cdktn_provider_google.artifact_registry_repository import (
    ArtifactRegistryRepository,
)
from cdktn_provider_google.artifact_registry_repository import (
    ArtifactRegistryRepositoryCleanupPolicies as Policy,
)
from cdktn_provider_google.artifact_registry_repository import (
    ArtifactRegistryRepositoryCleanupPoliciesCondition as Condition,
)
from cdktn_provider_google.artifact_registry_repository import (
    ArtifactRegistryRepositoryCleanupPoliciesMostRecentVersions as MostRecent,
)
from cdktn_provider_google.artifact_registry_repository_iam_member import ArtifactRegistryRepositoryIamMember
from cdktn_provider_google.data_google_project import DataGoogleProject
from cdktn_provider_google.provider import GoogleProvider
from constructs import Construct

from stacks.base import BaseStack
from stacks.wiring import RegistryConfig

CLEANUP_AFTER = "7776000s"  # 90 days
KEEP_MOST_RECENT = 10


class RegistryStack(BaseStack):
    def __init__(self, scope: Construct, id: str, *, config: RegistryConfig) -> None:
        super().__init__(scope, id, backend=config.backend)
        GoogleProvider(self, "google", project=config.project, region=config.region)
        repository = ArtifactRegistryRepository(
            self,
            "registry",
            project=config.project,
            location=config.region,
            repository_id=config.repository_id,
            format="DOCKER",
            description="Serving images for Earth Engine's Vertex AI models (ee-vertex-cdktf), pushed by digest.",
            labels=config.labels,
            kms_key_name=config.kms_key,
            docker_config={"immutable_tags": True},
            cleanup_policy_dry_run=False,
            cleanup_policies=[
                Policy(
                    id="keep-served-images",
                    action="KEEP",
                    condition=Condition(tag_state="TAGGED", tag_prefixes=list(config.keep_tags)),
                ),
                Policy(
                    id="keep-most-recent", action="KEEP", most_recent_versions=MostRecent(keep_count=KEEP_MOST_RECENT)
                ),
                Policy(
                    id="delete-older-than-90-days",
                    action="DELETE",
                    condition=Condition(tag_state="ANY", older_than=CLEANUP_AFTER),
                ),
            ],
            deletion_policy="ABANDON",
        )
        project = DataGoogleProject(self, "project", project_id=config.project)
        ArtifactRegistryRepositoryIamMember(
            self,
            "vertex_ai_reader",
            project=config.project,
            location=config.region,
            repository=repository.repository_id,
            role="roles/artifactregistry.reader",
            member=f"serviceAccount:service-{project.number}@gcp-sa-aiplatform.iam.gserviceaccount.com",
        )
        TerraformOutput(
            self,
            "repository",
            value=config.uri,
            description="Push our serving images here (`nox -s push -- CONFIG TARGET`).",
        )
        TerraformOutput(
            self,
            "images",
            value=list(config.images),
            description="The serving images the model versions use, by digest.",
        )
