"""`eevertex_deployment`: one model version deployed on an endpoint.

API (aiplatform_v1 EndpointService, REST v1): GetEndpoint `GET endpoints/E`, DeployModel
`POST endpoints/E:deployModel` (LRO), MutateDeployedModel `POST endpoints/E:mutateDeployedModel`
(LRO; only replica counts (min, max, required), autoscaling_metric_specs and
disable_container_logging are mutable: endpoint_service.py MutateDeployedModelRequest; spot and
enable_access_logging are not: "To update the settings for access logs, you must undeploy your
model, and then redeploy", https://cloud.google.com/ai-platform-unified/docs/predictions/online-prediction-logging),
UndeployModel `POST endpoints/E:undeployModel` (LRO). The request and answer JSON: provider/deployment_api.py.
"""

from __future__ import annotations

import re

from tf.iface import CreateContext, DeleteContext, ImportContext, PlanContext, ReadContext, State, UpdateContext
from tf.types import Bool, Number, String, Unknown
from tf.utils import Diagnostics

from config import machines, rules
from provider.client import VertexError, log, report
from provider.common import (
    PROJECT_REGION_DOC,
    TIMEOUTS,
    ProviderResource,
    attr,
    differences,
    import_parts,
    keep_timeouts,
    known,
    replaced_attributes,
    rule,
    same_resource,
    validate_common,
    with_project,
)
from provider.deployment_api import (
    DEDICATED_ONLY,
    DEFAULT_TARGET,
    FIELDS,
    METRICS,
    MUTABLE,
    deploy_body,
    endpoint_name,
    from_api,
    mutate_body,
    undeploy_body,
)

_S, _N, _B = String(), Number(), Bool()
_ATTRIBUTES = [
    attr("project", _S, kind="required", replace=True, doc=PROJECT_REGION_DOC["project"]),
    attr("region", _S, kind="required", replace=True, doc=PROJECT_REGION_DOC["region"]),
    attr(
        "endpoint_id",
        _S,
        kind="required",
        replace=True,
        doc="The endpoint's ID (not its path): any ID Vertex AI gave it, e.g. 19 digits.",
    ),
    attr(
        "model",
        _S,
        kind="required",
        replace=True,
        doc="Model version to deploy: `projects/P/locations/R/models/M@V` (an `eevertex_model`'s `id`) or "
        "`.../models/M@ALIAS`; the two name the same deployment while the alias is on the deployed version.",
    ),
    attr(
        "deployed_model_id",
        _S,
        kind="required",
        replace=True,
        doc="Deterministic ID: 1-10 digits for a new deployment (longer: Vertex-generated, imported).",
    ),
    attr(
        "display_name",
        _S,
        kind="optional+computed",
        replace=True,
        doc="Unset: Vertex AI's (the model's display name), or what an adopted deployment has. Vertex AI cannot "
        "change it on a deployed model (MutateDeployedModelRequest): a change deploys anew.",
    ),
    attr(
        "machine_type",
        _S,
        kind="optional",
        replace=True,
        doc="e.g. `n1-standard-4`; required unless `shared_resources` (the pool's machines serve then).",
    ),
    attr("accelerator_type", _S, kind="optional", replace=True, doc="e.g. `NVIDIA_TESLA_T4`."),
    attr(
        "accelerator_count",
        _N,
        kind="optional",
        replace=True,
        doc="Accelerators per replica (MachineSpec.acceleratorCount); with `accelerator_type`.",
    ),
    attr(
        "spot",
        _B,
        kind="optional",
        replace=True,
        doc="Spot VMs (DedicatedResources.spot). Not mutable in Vertex AI: a change deploys anew.",
    ),
    attr(
        "min_replica_count",
        _N,
        kind="optional",
        doc="Required unless `shared_resources`. Updated in place (mutateDeployedModel).",
    ),
    attr(
        "max_replica_count",
        _N,
        kind="optional",
        doc="Required unless `shared_resources`. Updated in place (mutateDeployedModel).",
    ),
    attr(
        "required_replica_count",
        _N,
        kind="optional",
        doc="Replicas that must be available for the deploy or mutate to succeed, 1 to min_replica_count; "
        "unset: min_replica_count (DedicatedResources.required_replica_count). Updated in place.",
    ),
    attr(
        "autoscaling_cpu_utilization_target",
        _N,
        kind="optional+computed",
        doc=f"Percent; Vertex AI's default {DEFAULT_TARGET}. Updated in place.",
    ),
    attr(
        "autoscaling_accelerator_duty_cycle_target",
        _N,
        kind="optional+computed",
        doc=f"Percent; Vertex AI's default {DEFAULT_TARGET} with accelerators. Updated in place.",
    ),
    attr(
        "autoscaling_request_count_per_minute_target",
        _N,
        kind="optional",
        doc="Requests per minute per replica; unset: not scaled on requests. Updated in place.",
    ),
    attr(
        "service_account",
        _S,
        kind="optional+computed",
        replace=True,
        doc="DeployedModel.serviceAccount: the service account the container runs as (unset: Vertex AI's own; "
        "the caller needs `iam.serviceAccounts.actAs` on it).",
    ),
    attr("disable_container_logging", _B, kind="optional+computed", doc="Updated in place."),
    attr(
        "enable_access_logging",
        _B,
        kind="optional+computed",
        replace=True,
        doc="Not mutable in Vertex AI: a change redeploys.",
    ),
    attr(
        "shared_resources",
        _S,
        kind="optional",
        replace=True,
        doc="Deploy into this shared pool, `projects/P/locations/R/deploymentResourcePools/ID` in the endpoint's "
        "region, instead of machines of its own (DeployedModel.shared_resources, a oneof with "
        "dedicated_resources): machine, accelerator, spot, replicas and autoscaling stay unset.",
    ),
    attr(
        "model_version_id",
        _S,
        kind="computed",
        doc="The version ID Vertex AI deployed (DeployedModel.model_version_id), whichever way `model` names it.",
    ),
    attr("id", _S, kind="computed", doc="`projects/P/locations/R/endpoints/E/deployedModels/D`."),
]


class Deployment(ProviderResource):
    EXAMPLE = """
resource "eevertex_deployment" "deployment_v1a2b3c" {
  project           = "acme-geo-dev"
  region            = "us-central1"
  endpoint_id       = "123456789"
  model             = eevertex_model.model_v1a2b3c.id
  deployed_model_id = "1234567890"
  machine_type      = "n1-standard-4"
  min_replica_count = 1
  max_replica_count = 2
  lifecycle { create_before_destroy = true }
}
"""

    IMPORT = """
`projects/P/locations/R/endpoints/E/deployedModels/D` (the project as ID or number, E and D as
gcloud prints them), or the short `P/R/E/D`. An import never undeploys what it adopted.
"""

    NAME = "deployment"
    DESCRIPTION = (
        "One model version deployed on a Vertex AI endpoint. Replicas, autoscaling and container "
        "logging change in place; anything else deploys anew (use create_before_destroy)."
    )
    ATTRIBUTES = _ATTRIBUTES
    BLOCKS = [TIMEOUTS]

    def validate(self, diags: Diagnostics, type_name: str, config: State) -> None:
        super().validate(diags, type_name, config)
        validate_common(diags, config, self.provider.allow_unlisted_regions)
        if known(config.get("deployed_model_id")):
            rule(diags, "deployed_model_id", rules.deployed_model_id(config["deployed_model_id"], existing=True))
        model = config.get("model")
        if known(model) and not re.fullmatch(r"projects/[^/]+/locations/[^/]+/models/[^/@]+(@[^/@]+)?", model):
            diags.add_error(
                f"model: {model!r} is not a model version name; allowed: "
                "projects/P/locations/R/models/M@VERSION (an eevertex_model's id) or .../models/M@ALIAS",
                "",
                path=["model"],
            )
        pool = config.get("shared_resources")
        if pool is not None:
            if known(pool):
                region = config.get("region")
                rule(diags, "shared_resources", rules.shared_resources(pool, region=region if known(region) else None))
            given = [key for key in DEDICATED_ONLY if config.get(key) is not None]
            if given:
                diags.add_error(
                    f"{given[0]}: set together with shared_resources; allowed: either shared_resources "
                    f"(the pool's machines and replicas serve) or {', '.join(given)} and no "
                    "shared_resources (endpoint.py DeployedModel.prediction_resources is a oneof)",
                    "",
                    path=[given[0]],
                )
            return
        missing = [key for key in ("machine_type", "min_replica_count", "max_replica_count") if config.get(key) is None]
        if missing:
            diags.add_error(
                f"{missing[0]}: required; allowed: set machine_type, min_replica_count and "
                "max_replica_count, or shared_resources (a deployment resource pool)",
                "",
                path=[missing[0]],
            )
        spec = [config.get(k) for k in ("machine_type", "accelerator_type", "accelerator_count")]
        if all(v is not Unknown for v in spec) and spec[0] is not None:
            problem = machines.machine_spec(*spec)
            if problem:
                rule(diags, *problem)
        low, high = config.get("min_replica_count"), config.get("max_replica_count")
        problem = rules.replicas(low if known(low) else None, high if known(high) else None)
        if problem:
            rule(diags, f"{problem[0]}_replica_count", problem[1])
        required = config.get("required_replica_count")
        if known(required):
            rule(diags, "required_replica_count", rules.required_replicas(required, low if known(low) else None))
        for key, metric in METRICS.items():
            if known(config.get(key)):
                rule(diags, key, rules.autoscaling_target(metric, config[key]))
        duty, count = config.get("autoscaling_accelerator_duty_cycle_target"), config.get("accelerator_count")
        if known(duty) and count is not Unknown:
            rule(diags, "autoscaling_accelerator_duty_cycle_target", rules.duty_cycle_needs_accelerator(duty, count))

    def plan(self, ctx: PlanContext, current: State | None, planned: State) -> State:
        """Only updates come here (the framework plans creates itself, Terraform replans a
        replacement as a create)."""
        if current is None:
            return planned
        self.keep_prior_project(current, planned, endpoint_name)
        if (
            known(planned.get("model"))
            and planned["model"] != current.get("model")
            and self._same_version(planned["model"], current)
        ):
            # `M@alias` in the config, `M@1` in state (an import), or the reverse: one version, one
            # deployment. Terraform lets the plan keep the prior value of an attribute that is
            # functionally the same as the config's (plan_valid.go AssertPlanValid).
            planned["model"] = current["model"]
        replaced = sorted(
            k
            for k in replaced_attributes(_ATTRIBUTES)
            if planned.get(k) is not Unknown and planned.get(k) != current.get(k)
        )
        if replaced and planned.get("deployed_model_id") == current.get("deployed_model_id"):
            self._refuse_same_id_replacement(ctx, current, planned, replaced)
        return planned

    def _same_version(self, model: str, current: State) -> bool:
        """Whether `model` (as configured) names the version this deployment serves."""
        base, _, version = model.partition("@")
        deployed_base, _, deployed_version = (current.get("model") or "").partition("@")
        if not same_resource(base, deployed_base):
            return False
        served = current.get("model_version_id") or (deployed_version if deployed_version.isdigit() else None)
        if version.isdigit():
            return version == served
        try:
            found = self.client.get(f"{base}@{version or 'default'}", what=f"get {model}")
        except VertexError:
            return False
        return found is not None and found.get("versionId") == served

    def _refuse_same_id_replacement(self, ctx: PlanContext, current: State, planned: State, replaced: list[str]):
        """A replacement that keeps the deployed model ID cannot work: the create would find that
        ID deployed (adopt it, or fail on its other settings), and the destroy of the old one would
        then undeploy it, leaving the endpoint without it. Refused while nothing has changed."""
        me = current["deployed_model_id"]
        shown = ", ".join(f"{k} {current.get(k)!r} -> {planned.get(k)!r}" for k in replaced)
        ctx.diagnostics.add_error(
            f"deployed model {me} on {endpoint_name(current)} would be replaced under the same ID ({shown})",
            "Vertex AI cannot change these on a deployed model, and a new deployment with the same "
            "deployed_model_id would be undeployed by the destroy of the old one, taking the endpoint's traffic "
            f"with it. Allowed: keep these settings as deployed model {me} has them, or give the new deployment "
            "another deployed_model_id (with create_before_destroy, the old one is undeployed after it serves).",
            path=[replaced[0]],
        )

    # -- CRUD ---------------------------------------------------------------------------------

    def _model(self, wanted, deployed: dict, project: str) -> str:
        """The model version name to record: `wanted` (the configured spelling) while it names
        the deployed version, else `M@<versionId>` (a replace). Vertex AI answers with the project
        number where the config has the project ID; an alias (or no suffix: `default`) is
        resolved when deploying and may move later (DeployedModel.model: "may contain version id
        or version alias"), so it is resolved again here."""
        actual = with_project(f"{deployed.get('model', '')}@{deployed.get('modelVersionId', '')}", project)
        if not known(wanted):
            return actual
        base, _, version = wanted.partition("@")
        if not same_resource(base, deployed.get("model", "")):
            return actual
        if version.isdigit():
            return wanted if version == deployed.get("modelVersionId") else actual
        found = self.client.get(f"{base}@{version or 'default'}", what=f"get {wanted}")
        return wanted if found is not None and found.get("versionId") == deployed.get("modelVersionId") else actual

    def _state(self, deployed: dict, prior: State) -> State:
        return from_api(deployed, prior, self._model(prior.get("model"), deployed, prior["project"]))

    def _find(self, state: State) -> tuple[dict | None, dict | None]:
        endpoint = self.client.get(endpoint_name(state), what=f"get {endpoint_name(state)}")
        if endpoint is None:
            return None, None
        for deployed in endpoint.get("deployedModels") or []:
            if deployed.get("id") == state["deployed_model_id"]:
                return endpoint, deployed
        return endpoint, None

    def create(self, ctx: CreateContext, planned: State) -> State | None:
        # One change at a time per endpoint: each computes the split from what the endpoint holds.
        with self.change(planned, "create", locked=endpoint_name(planned)):
            return keep_timeouts(self._create(ctx, planned), planned)

    def _create(self, ctx: CreateContext, planned: State) -> State | None:
        name = endpoint_name(planned)
        what = f"deploy {planned['model']} on {name} as {planned['deployed_model_id']}"
        try:
            endpoint, deployed = self._find(planned)
            if endpoint is None:
                ctx.diagnostics.add_error(f"endpoint {name} does not exist", "", path=["endpoint_id"])
                return None
            if deployed is not None:
                actual = f"{deployed.get('model')}@{deployed.get('modelVersionId')}"
                found = self._state(deployed, planned)
                other = differences(planned, found, replaced_attributes(_ATTRIBUTES))
                if other:
                    shown = ", ".join(f"{k} = {found[k]!r} (config: {planned[k]!r})" for k in other)
                    ctx.diagnostics.add_error(
                        f"deployed model {planned['deployed_model_id']} on {name} exists with other settings",
                        f"{shown}. Undeploy it, or import it and let the plan replace it.",
                        path=[other[0]],
                    )
                    return None
                log(f"{name}: deployed model {planned['deployed_model_id']} exists ({actual}): adopted")
                self.provider.adopted.add((name, planned["deployed_model_id"]))
                if differences(planned, found, MUTABLE):
                    return self._update(ctx, found, planned)
            elif rules.deployed_model_id(planned["deployed_model_id"], existing=False):
                # Longer IDs are only those Vertex AI generates (imported deployments).
                ctx.diagnostics.add_error(
                    f"deployed_model_id: {planned['deployed_model_id']!r} is not deployed on {name}, and a new "
                    "deployment's ID has 1-10 digits (endpoint.py DeployedModel.id)",
                    "",
                    path=["deployed_model_id"],
                )
                return None
            else:
                log(what)
                self.client.operation("POST", f"{name}:deployModel", what, body=deploy_body(planned, endpoint))
                endpoint, deployed = self._find(planned)
                if deployed is None:
                    ctx.diagnostics.add_error(
                        f"{what}: finished, but the endpoint does not list it", "", path=["deployed_model_id"]
                    )
                    return None
        except VertexError as error:
            report(ctx.diagnostics, error, FIELDS, "model")
            return None
        return self._state(deployed, planned)

    def read(self, ctx: ReadContext, current: State) -> State | None:
        try:
            _, deployed = self._find(current)
        except VertexError as error:
            report(ctx.diagnostics, error, FIELDS, "endpoint_id")
            return current
        return None if deployed is None else keep_timeouts(self._state(deployed, current), current)

    def update(self, ctx: UpdateContext, current: State, planned: State) -> State | None:
        # One change at a time per endpoint: each computes the split from what the endpoint holds.
        with self.change(planned, "update", locked=endpoint_name(current)):
            return keep_timeouts(self._update(ctx, current, planned), planned)

    def _update(self, ctx: UpdateContext, current: State, planned: State) -> State | None:
        name = endpoint_name(current)
        changed = [key for key in MUTABLE if planned.get(key) is not Unknown and planned.get(key) != current.get(key)]
        mask = sorted({MUTABLE[key] for key in changed})
        try:
            if mask:
                what = f"update deployed model {current['deployed_model_id']} on {name} ({', '.join(changed)})"
                body = mutate_body(current, planned, mask)
                self.client.operation("POST", f"{name}:mutateDeployedModel", what, body=body)
            _, found = self._find(current)
        except VertexError as error:
            report(ctx.diagnostics, error, FIELDS, changed[0] if changed else "min_replica_count")
            return current
        if found is None:
            ctx.diagnostics.add_error(
                f"deployed model {current['deployed_model_id']} is gone from {name}", "", path=["deployed_model_id"]
            )
            return None
        return self._state(found, planned)

    def delete(self, ctx: DeleteContext, current: State) -> None:
        # One change at a time per endpoint: each computes the split from what the endpoint holds.
        with self.change(current, "delete", locked=endpoint_name(current)):
            return self._delete(ctx, current)

    def _delete(self, ctx: DeleteContext, current: State) -> None:
        name = endpoint_name(current)
        me = current["deployed_model_id"]
        try:
            endpoint, deployed = self._find(current)
            if endpoint is None or deployed is None:
                log(f"{name}: deployed model {me} is already gone")
                return None
            if (name, me) in self.provider.adopted:
                # A replacement under the same ID (created first, it adopted this deployment):
                # the deployment is the new object's now; undeploying it would empty its traffic.
                log(f"{name}: deployed model {me} belongs to its replacement (adopted in this apply): kept")
                return None
            body = undeploy_body(endpoint, me)
            what = f"undeploy {me} from {name}"
            log(what + (f" (traffic then {body['trafficSplit']})" if "trafficSplit" in body else ""))
            self.client.operation("POST", f"{name}:undeployModel", what, body=body)
        except VertexError as error:
            report(ctx.diagnostics, error, FIELDS, "deployed_model_id")
        return None

    def import_(self, ctx: ImportContext, id: str) -> State | None:
        parts = import_parts(id, "endpoints/{}/deployedModels/{}")
        if not parts:
            ctx.diagnostics.add_error(
                f"cannot import {id!r}",
                (
                    "Give projects/P/locations/R/endpoints/E/deployedModels/D (the project as ID or number, E and D "
                    "as gcloud prints them), or the short P/R/E/D."
                ),
            )
            return None
        project, region, (endpoint_id, deployed_id) = parts
        prior = {"project": project, "region": region, "endpoint_id": endpoint_id, "deployed_model_id": deployed_id}
        try:
            _, deployed = self._find(prior)
        except VertexError as error:
            report(ctx.diagnostics, error, FIELDS, "id")
            return None
        if deployed is None:
            ctx.diagnostics.add_error(f"cannot import {id!r}: not deployed", "")
            return None
        return keep_timeouts(from_api(deployed, prior, self._model(None, deployed, project)), None)
