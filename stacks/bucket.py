"""The artifact bucket and the artifact's objects under a content-addressed prefix."""

from __future__ import annotations

from cdktn import TerraformOutput
from cdktn_provider_google.provider import GoogleProvider
from cdktn_provider_google.storage_bucket import StorageBucket
from cdktn_provider_google.storage_bucket_object import StorageBucketObject
from constructs import Construct

from stacks.base import BaseStack
from stacks.wiring import BucketConfig


class BucketStack(BaseStack):
    def __init__(self, scope: Construct, id: str, *, config: BucketConfig) -> None:
        super().__init__(scope, id, backend=config.backend)
        GoogleProvider(self, "google", project=config.project, region=config.region)
        bucket = StorageBucket(
            self,
            "artifacts",
            name=config.bucket,
            project=config.project,
            location=config.region.upper(),
            uniform_bucket_level_access=True,
            public_access_prevention="enforced",
            versioning={"enabled": True},
            # A bucket that still holds artifacts is never deleted by Terraform.
            force_destroy=False,
            labels=config.labels,
            encryption={"default_kms_key_name": config.kms_key} if config.kms_key else None,
            logging=(
                {"log_bucket": config.access_log_bucket, "log_object_prefix": f"{config.bucket}/"}
                if config.access_log_bucket
                else None
            ),
        )
        for index, obj in enumerate(config.objects):
            StorageBucketObject(
                self,
                f"artifact_{index}",
                bucket=bucket.name,
                name=obj.name,
                source=obj.source,
                # Destroying the stack, or moving to a new artifact, leaves the uploaded
                # object in place: artifacts are only ever added.
                deletion_policy="ABANDON",
            )
        TerraformOutput(self, "bucket_name", value=bucket.name, description="Artifact bucket name.")
        TerraformOutput(
            self,
            "artifact_objects",
            value=[o.name for o in config.objects],
            description="Object names of the current artifact (content-addressed by its sha256).",
        )
