"""The Vertex AI endpoint Earth Engine calls, and who may call it."""

from __future__ import annotations

from cdktn import TerraformOutput
from cdktn_provider_google.bigquery_dataset import BigqueryDataset
from cdktn_provider_google.monitoring_alert_policy import (
    MonitoringAlertPolicy,
    MonitoringAlertPolicyConditions,
)
from cdktn_provider_google.monitoring_alert_policy import (
    MonitoringAlertPolicyConditionsConditionThreshold as Threshold,
)
from cdktn_provider_google.monitoring_alert_policy import (
    MonitoringAlertPolicyConditionsConditionThresholdAggregations as Aggregation,
)
from cdktn_provider_google.monitoring_alert_policy import (
    MonitoringAlertPolicyConditionsConditionThresholdDenominatorAggregations as DenominatorAggregation,
)
from cdktn_provider_google.project_iam_custom_role import ProjectIamCustomRole
from cdktn_provider_google.project_iam_member import ProjectIamMember
from cdktn_provider_google.provider import GoogleProvider
from cdktn_provider_google.vertex_ai_deployment_resource_pool import VertexAiDeploymentResourcePool
from cdktn_provider_google.vertex_ai_endpoint import VertexAiEndpoint
from cdktn_provider_google_beta.google_vertex_ai_endpoint_iam_member import GoogleVertexAiEndpointIamMember
from cdktn_provider_google_beta.provider import GoogleBetaProvider
from constructs import Construct

from stacks.base import BaseStack
from stacks.wiring import AlertPolicy, EndpointConfig

# Earth Engine calls the endpoint with the credentials of whoever runs the computation,
# so those principals need exactly this permission: on this endpoint (predict_scope
# "endpoint", the default) or on every endpoint of the project ("project").
PREDICT_PERMISSIONS = ["aiplatform.endpoints.predict"]

# Cloud Monitoring's online-prediction metrics (https://cloud.google.com/monitoring/api/metrics_gcp_a_b
# #gcp-aiplatform), on the monitored resource aiplatform.googleapis.com/Endpoint.
ENDPOINT_RESOURCE = "aiplatform.googleapis.com/Endpoint"
RESPONSE_COUNT = "aiplatform.googleapis.com/prediction/online/response_count"
LATENCIES = "aiplatform.googleapis.com/prediction/online/prediction_latencies"


def alert_conditions(policy: AlertPolicy, endpoint_id: str) -> list[MonitoringAlertPolicyConditions]:
    """Two filter-based threshold conditions (Google's support for MQL ended 2025-07-22): the
    ratio of 5xx responses to all responses (response_count's response_code label, "1xx" ..
    "5xx", matched by prefix), and the p99 of the total latency per deployed model
    (prediction_latencies is a distribution in ms, which ALIGN_PERCENTILE_99 takes)."""
    window = f"{policy.window_seconds}s"
    responses = (
        f'metric.type="{RESPONSE_COUNT}" AND resource.type="{ENDPOINT_RESOURCE}" AND '
        f'resource.label.endpoint_id="{endpoint_id}"'
    )
    # Numerator and denominator grouped alike ("the same periodicity and labels": MetricThreshold
    # .denominator_aggregations, monitoring_v3_messages.py).
    per_endpoint = {
        "alignment_period": window,
        "per_series_aligner": "ALIGN_RATE",
        "cross_series_reducer": "REDUCE_SUM",
        "group_by_fields": ["resource.label.endpoint_id"],
    }
    return [
        MonitoringAlertPolicyConditions(
            display_name=f"5xx responses above {policy.error_rate:.2%}",
            condition_threshold=Threshold(
                filter=f'{responses} AND metric.label.response_code=starts_with("5")',
                denominator_filter=responses,
                aggregations=[Aggregation(**per_endpoint)],
                denominator_aggregations=[DenominatorAggregation(**per_endpoint)],
                comparison="COMPARISON_GT",
                threshold_value=policy.error_rate,
                duration=window,
            ),
        ),
        MonitoringAlertPolicyConditions(
            display_name=f"p99 latency above {policy.p99_latency_ms} ms",
            condition_threshold=Threshold(
                filter=(
                    f'metric.type="{LATENCIES}" AND resource.type="{ENDPOINT_RESOURCE}" AND '
                    f'resource.label.endpoint_id="{endpoint_id}" AND metric.label.latency_type="total"'
                ),
                aggregations=[
                    Aggregation(
                        alignment_period=window,
                        per_series_aligner="ALIGN_PERCENTILE_99",
                        cross_series_reducer="REDUCE_MAX",
                        group_by_fields=["metric.label.deployed_model_id"],
                    )
                ],
                comparison="COMPARISON_GT",
                threshold_value=policy.p99_latency_ms,
                duration=window,
            ),
        ),
    ]


class EndpointStack(BaseStack):
    def __init__(self, scope: Construct, id: str, *, config: EndpointConfig) -> None:
        super().__init__(scope, id, backend=config.backend)
        GoogleProvider(self, "google", project=config.project, region=config.region)
        logging, dataset = None, None
        if config.request_logging:
            # The dataset must exist and the table must not: Vertex AI creates the table
            # (io.py BigQueryDestination.output_uri, endpoint.py PredictRequestResponseLoggingConfig).
            dataset = BigqueryDataset(
                self,
                "request_logs",
                dataset_id=config.request_logging.dataset_id,
                project=config.project,
                location=config.region,
                description="Request-response logs of the Earth Engine Vertex AI endpoint (table made by Vertex AI).",
                labels=config.labels,
                default_encryption_configuration={"kms_key_name": config.kms_key} if config.kms_key else None,
                # The logs outlive the stack, as the artifacts do: a destroy only forgets the dataset
                # (which BigQuery would refuse anyway while Vertex AI's table is in it).
                deletion_policy="ABANDON",
            )
            logging = {
                "enabled": True,
                "sampling_rate": config.request_logging.sampling_rate,
                "bigquery_destination": {"output_uri": config.request_logging.output_uri(config.project)},
            }
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
            predict_request_response_logging_config=logging,
            depends_on=[dataset] if dataset else None,
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
        if config.resource_pool:
            pool = config.resource_pool
            machine: dict[str, str | int | None] = {"machine_type": pool.machine_type}
            if pool.accelerator_type:
                machine.update(accelerator_type=pool.accelerator_type, accelerator_count=pool.accelerator_count)
            # Every attribute forces a new pool (the google provider's schema): one with models
            # deployed cannot go, so change the machines by moving to a new pool ID.
            VertexAiDeploymentResourcePool(
                self,
                "resource_pool",
                name=pool.pool_id,
                project=config.project,
                region=config.region,
                dedicated_resources={
                    "machine_spec": machine,
                    "min_replica_count": pool.min_replica_count,
                    "max_replica_count": pool.max_replica_count,
                },
            )
        if config.alert_policy:
            MonitoringAlertPolicy(
                self,
                "alert_policy",
                project=config.project,
                display_name=config.alert_policy.display_name,
                combiner="OR",
                enabled=True,
                conditions=alert_conditions(config.alert_policy, config.endpoint_id),
                notification_channels=list(config.alert_policy.notification_channels) or None,
                user_labels=config.labels,
                documentation={
                    "mime_type": "text/markdown",
                    "content": (
                        f"Vertex AI endpoint `{config.endpoint_id}` ({config.display_name}), called by Earth Engine: "
                        "5xx responses or p99 latency above the rollout config's `monitoring` thresholds."
                    ),
                },
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
