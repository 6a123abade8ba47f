"""Deterministic names and IDs, all from one place.

Every name the stacks use is derived here from the config and the artifact hash,
never drawn at random, so a re-synth or a re-apply addresses the very same resources.
"""

from __future__ import annotations

import hashlib

STACK_KINDS = ("bucket", "registry", "model", "endpoint", "deployment")


def stack_name(target: str, kind: str) -> str:
    """`dev-bucket`, `dev-registry`, `dev-model`, ...: the stack names are part of the state layout."""
    if kind not in STACK_KINDS:
        raise ValueError(f"unknown stack kind {kind!r}; allowed: {', '.join(STACK_KINDS)}")
    return f"{target}-{kind}"


def _numeric_id(*parts: str, digits: int) -> str:
    """A decimal ID of exactly `digits` digits, no leading zero, stable for the same parts."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    low = 10 ** (digits - 1)
    return str(low + int.from_bytes(digest[:8], "big") % (9 * low))


def endpoint_id(project: str, region: str, model_name: str) -> str:
    """Vertex endpoint ID for the model in one project and region: 9 digits, the most a
    numeric endpoint ID may have."""
    return _numeric_id("endpoint", project, region, model_name, digits=9)


def deployed_model_id(endpoint: str, model: str) -> str:
    """ID of one model's deployment on one endpoint: 10 digits (DeployedModel.id allows 1-10)."""
    return _numeric_id("deployed-model", endpoint, model, digits=10)


def artifact_prefix(model_name: str, sha256: str) -> str:
    """Content-addressed folder in the bucket: a new artifact never overwrites an old one."""
    return f"models/{model_name}/{sha256}"


def default_labels(model_name: str, target: str) -> dict[str, str]:
    """Labels every resource carries, besides the target's own."""
    return {"managed-by": "ee-vertex-cdktf", "ee-model": model_name, "rollout-target": target}


def request_log_dataset(model_name: str) -> str:
    """Default BigQuery dataset for an endpoint's request-response logs (BigQuery IDs take '_', not '-')."""
    return f"{model_name.replace('-', '_')}_requests"


def alert_policy_name(model_name: str, target: str) -> str:
    """Display name of the endpoint's alert policy (Cloud Monitoring gives the policy its ID)."""
    return f"{model_name}-{target} endpoint errors and latency"


def resource_pool_name(project: str, region: str, pool_id: str) -> str:
    return f"projects/{project}/locations/{region}/deploymentResourcePools/{pool_id}"
