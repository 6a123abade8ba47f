"""`eevertex_traffic_split`: the endpoint's whole traffic split, as a resource and as a data
source (what the endpoint serves now). With `verification`, a deployed model that takes
traffic must first answer its golden tile right, or the split goes back (provider/verification.py).

API: GetEndpoint, UpdateEndpoint `PATCH endpoints/E?updateMask=trafficSplit`. endpoint.py
Endpoint.traffic_split: "The traffic percentage values must add up to 100, or map must be empty
if the Endpoint is to not accept any traffic at a moment"; an ID not in the map receives no traffic.
"""

from __future__ import annotations

import re

from tf.iface import (
    CreateContext,
    DeleteContext,
    ImportContext,
    PlanContext,
    ReadContext,
    ReadDataContext,
    State,
    UpdateContext,
)
from tf.types import Map, Number, String, Unknown
from tf.utils import Diagnostics

from provider import verification as golden
from provider.client import VertexError, log, report
from provider.common import (
    PROJECT_REGION_DOC,
    TIMEOUTS,
    MapOf,
    ProviderDataSource,
    ProviderResource,
    attr,
    import_parts,
    keep_timeouts,
    known,
    rule,
    validate_common,
    with_project,
)

_S = String()
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
        "split",
        Map(Number()),
        kind="required",
        doc="deployed_model_id -> percent (whole numbers summing to 100). Updated in place. Read back as "
        "Vertex AI has it: every deployed model with its share (0 included), nothing for one not deployed.",
    ),
    attr(
        "verification",
        MapOf(_S),
        kind="optional",
        doc=(
            "deployed_model_id -> its golden tile, `gs://BUCKET/OBJECT#sha256=HEX` (the build's golden.json). When "
            "a create or update gives one of these deployed models traffic it had not (or a new golden tile), the "
            "golden request goes through the endpoint's predict, as Earth Engine sends it, until that model "
            "answers; an answer off by more than the tile's tolerance, an error or no answer within the "
            "timeouts (default 5 minutes) puts the split back as it was and fails the apply, naming the "
            "endpoint, the model version and the difference."
        ),
    ),
    attr(
        "verified",
        Map(_S),
        kind="computed",
        doc="deployed_model_id -> sha256 of the golden tile it answered right (those with traffic).",
    ),
    attr("id", _S, kind="computed", doc="`projects/P/locations/R/endpoints/E`."),
]


def endpoint_name(state: State) -> str:
    return f"projects/{state['project']}/locations/{state['region']}/endpoints/{state['endpoint_id']}"


def split_errors(split: dict) -> str | None:
    """Why this split is not one Vertex AI accepts (None when it is, or not known yet)."""
    if any(v is Unknown for v in split.values()):
        return None
    shown = ", ".join(f"{k} = {v}" for k, v in sorted(split.items()))
    if not split:
        return "split is empty: give every deployment's share, summing to 100"
    bad = [k for k, v in split.items() if not (isinstance(v, int) or float(v).is_integer()) or not 0 <= v <= 100]
    if bad:
        return f"split values must be whole numbers in 0..100; got {shown}"
    if sum(split.values()) != 100:
        return f"split must sum to 100, got {sum(split.values()):g} ({shown})"
    bad_ids = [k for k in split if not re.fullmatch(r"[0-9]+", k)]
    if bad_ids:
        return f"split keys must be deployed model IDs (digits); got {', '.join(sorted(bad_ids))}"
    return None


class TrafficSplit(ProviderResource):
    EXAMPLE = """
resource "eevertex_traffic_split" "traffic" {
  project     = "acme-geo-dev"
  region      = "us-central1"
  endpoint_id = "123456789"
  split = {
    (eevertex_deployment.deployment_v1a2b3c.deployed_model_id) = 90
    (eevertex_deployment.deployment_v0f9e8d.deployed_model_id) = 10
  }
}
"""

    IMPORT = """
`projects/P/locations/R/endpoints/E` (the project as ID or number), or the short `P/R/E`.
"""

    NAME = "traffic_split"
    DESCRIPTION = (
        "The traffic split of a Vertex AI endpoint across its deployments (in place). "
        "Deleting it only forgets it: deleting a deployment undeploys it."
    )
    ATTRIBUTES = _ATTRIBUTES
    BLOCKS = [TIMEOUTS]

    def validate(self, diags: Diagnostics, type_name: str, config: State) -> None:
        super().validate(diags, type_name, config)
        validate_common(diags, config, self.provider.allow_unlisted_regions)
        split = config.get("split")
        if known(split):
            problem = split_errors(split)
            if problem:
                diags.add_error(f"Invalid traffic split: {problem}", "", path=["split"])
        checks = config.get("verification")
        if known(checks):
            for deployed_id, reference in checks.items():
                if known(reference):
                    rule(diags, "verification", golden.reference_error(deployed_id, reference))

    def plan(self, ctx: PlanContext, current: State | None, planned: State) -> State:
        """Only updates come here (the framework plans creates itself, Terraform replans a
        replacement as a create)."""
        if current is None:
            return planned
        self.keep_prior_project(current, planned, endpoint_name)
        unchanged = all((planned.get(key) or None) == (current.get(key) or None) for key in ("split", "verification"))
        planned["verified"] = current.get("verified") if unchanged else Unknown
        return planned

    def _apply(self, ctx, planned: State, kind: str, current: State | None = None) -> State | None:
        with self.change(planned, kind, locked=endpoint_name(planned)):
            return keep_timeouts(self._set(ctx, planned, (current or {}).get("verified") or {}), planned)

    def _set(self, ctx, planned: State, verified_before: dict) -> State | None:
        name = endpoint_name(planned)
        split = {k: int(v) for k, v in planned["split"].items()}
        checks = dict(planned.get("verification") or {})
        try:
            endpoint = self.client.get(name, what=f"get {name}")
            if endpoint is None:
                ctx.diagnostics.add_error(f"endpoint {name} does not exist", "", path=["endpoint_id"])
                return None
            deployed = {d["id"] for d in endpoint.get("deployedModels") or []}
            missing = sorted(set(split) - deployed)
            if missing:
                ctx.diagnostics.add_error(
                    f"split names deployed model(s) {', '.join(missing)}, not deployed on {name}",
                    f"Deployed there: {', '.join(sorted(deployed)) or 'nothing'}.",
                    path=["split"],
                )
                return None
            current = {k: int(v) for k, v in (endpoint.get("trafficSplit") or {}).items() if int(v)}
            if current != {k: v for k, v in split.items() if v}:
                log(f"{name}: traffic split {current} -> {split}")
                self.client.request(
                    "PATCH",
                    name,
                    body={"trafficSplit": split},
                    params={"updateMask": "trafficSplit"},
                    what=f"set traffic split of {name}",
                )
            verified = self._verify(ctx, name, endpoint, split, current, checks, verified_before)
            if verified is None:
                return None
            endpoint = self.client.get(name, what=f"get {name}")
        except VertexError as error:
            report(ctx.diagnostics, error, {"trafficSplit": "split"}, "split")
            return None
        state = from_api(endpoint, planned)
        state["verification"] = planned.get("verification")
        state["verified"] = verified
        return state

    def _verify(
        self, ctx, name: str, endpoint: dict, split: dict, before: dict, checks: dict, verified_before: dict
    ) -> dict | None:
        """Send each golden tile of a deployed model that takes traffic now and had none before
        (or had another golden tile); the verified map, or None after putting the split back
        to `before` (an error names the endpoint, the version and the difference)."""
        verified = {}
        for deployed_id, share in sorted(split.items()):
            if not share or deployed_id not in checks:
                continue
            _, sha256 = golden.parse_reference(checks[deployed_id])
            if before.get(deployed_id) and verified_before.get(deployed_id) == sha256:
                verified[deployed_id] = sha256
                continue
            record = next(d for d in endpoint.get("deployedModels") or [] if d["id"] == deployed_id)
            version = with_project(f"{record['model']}@{record.get('modelVersionId', '')}", endpoint_project(name))
            try:
                tile = golden.load(self.client, checks[deployed_id])
                left = self.client.time_left()
                answer = golden.probe(
                    self.client,
                    name,
                    deployed_id,
                    tile,
                    None if left is None else max(1.0, min(golden.DEFAULT_WAIT_SECONDS, left - 30)),
                )
                problem = golden.difference(tile, answer.get("predictions"))
            except (golden.VerificationFailed, VertexError) as error:
                problem = str(error)
            if problem:
                self._put_back(ctx, name, split, before, deployed_id, version, problem)
                return None
            log(f"{name}: deployed model {deployed_id} ({version}) answers golden tile {sha256[:12]} right")
            verified[deployed_id] = sha256
        return verified

    def _put_back(
        self, ctx, name: str, split: dict, before: dict, deployed_id: str, version: str, problem: str
    ) -> None:
        back = {k: v for k, v in before.items() if v}
        try:
            if back == {k: v for k, v in split.items() if v}:
                # The only deployment of an endpoint takes 100% as it is deployed (DeployModelRequest
                # traffic_split): there is nothing else to serve.
                outcome = f"the traffic split stays {back}: nothing else was serving to go back to"
            else:
                # Not bounded by the apply's timeouts: serving goes back whatever time is left.
                with self.client.deadline(None, "verification"):
                    self.client.request(
                        "PATCH",
                        name,
                        body={"trafficSplit": back},
                        params={"updateMask": "trafficSplit"},
                        what=f"put back traffic split of {name}",
                    )
                outcome = f"the traffic split is back to {back or 'empty (nothing served before)'}"
        except VertexError as error:
            outcome = f"putting the traffic split back to {back} FAILED ({error}); set it by hand"
        log(f"{name}: verification of deployed model {deployed_id} failed: {problem}; {outcome}")
        ctx.diagnostics.add_error(
            f"Verification failed: deployed model {deployed_id} ({version}) on {name} does not answer its golden tile",
            f"{problem}.\n{outcome}; not promoted. (attribute: verification)",
            path=["verification"],
        )

    def create(self, ctx: CreateContext, planned: State) -> State | None:
        return self._apply(ctx, planned, "create")

    def update(self, ctx: UpdateContext, current: State, planned: State) -> State | None:
        return self._apply(ctx, planned, "update", current) or current

    def read(self, ctx: ReadContext, current: State) -> State | None:
        name = endpoint_name(current)
        try:
            endpoint = self.client.get(name, what=f"get {name}")
        except VertexError as error:
            report(ctx.diagnostics, error, {}, "endpoint_id")
            return current
        if endpoint is None:
            return None
        state = from_api(endpoint, current)
        # What was checked is known only to this resource: kept as the last apply left it.
        state["verification"], state["verified"] = current.get("verification"), current.get("verified")
        return keep_timeouts(state, current)

    def delete(self, ctx: DeleteContext, current: State) -> None:
        # Only forgotten: the deployments' deletes undeploy (and move their traffic).
        return None

    def import_(self, ctx: ImportContext, id: str) -> State | None:
        parts = import_parts(id, "endpoints/{}")
        if not parts:
            ctx.diagnostics.add_error(
                f"cannot import {id!r}",
                (
                    "Give projects/P/locations/R/endpoints/E (the project as ID or number, E as gcloud prints it), "
                    "or the short P/R/E."
                ),
            )
            return None
        project, region, (endpoint_id,) = parts
        prior = {"project": project, "region": region, "endpoint_id": endpoint_id, "split": None}
        try:
            endpoint = self.client.get(endpoint_name(prior), what=f"get {id}")
        except VertexError as error:
            report(ctx.diagnostics, error, {}, "id")
            return None
        if endpoint is None:
            ctx.diagnostics.add_error(f"cannot import {id!r}: no such endpoint", "")
            return None
        state = from_api(endpoint, prior)
        state["verification"], state["verified"] = None, {}
        return keep_timeouts(state, None)


def endpoint_project(name: str) -> str:
    return name.split("/")[1]


def from_api(endpoint: dict, prior: State) -> State:
    """The split Vertex AI has: every share above 0, and a 0 the prior split names for a model
    that is deployed (an ID missing from Vertex AI's map takes no traffic). An ID that is not
    deployed is not in it: after an undeploy the split is empty, as Vertex AI shows it."""
    shares = {k: int(v) for k, v in (endpoint.get("trafficSplit") or {}).items()}
    deployed = {d["id"] for d in endpoint.get("deployedModels") or []}
    named = set(prior.get("split") or {}) if known(prior.get("split")) else set()
    split = {k: shares.get(k, 0) for k in sorted(named & deployed)}
    split.update({k: v for k, v in shares.items() if v})
    state = {key: prior[key] for key in ("project", "region", "endpoint_id")}
    state["split"] = split
    state["id"] = endpoint_name(state)
    return state


class TrafficSplitData(ProviderDataSource):
    """`data "eevertex_traffic_split"`: an endpoint's split as it is now, and what each deployed
    model serves."""

    EXAMPLE = """
data "eevertex_traffic_split" "now" {
  project     = "acme-geo-dev"
  region      = "us-central1"
  endpoint_id = "123456789"
}
"""

    NAME = "traffic_split"
    DESCRIPTION = "An endpoint's current traffic split and deployed models."
    ATTRIBUTES = [
        attr("project", _S, kind="required", doc=PROJECT_REGION_DOC["project"]),
        attr("region", _S, kind="required", doc=PROJECT_REGION_DOC["region"]),
        attr("endpoint_id", _S, kind="required", doc="The endpoint's ID (any Vertex AI gave it)."),
        attr(
            "split",
            Map(Number()),
            kind="computed",
            doc="deployed_model_id -> percent, every deployed model included (empty: nothing deployed).",
        ),
        attr(
            "deployed_models",
            Map(_S),
            kind="computed",
            doc="deployed_model_id -> the model version it serves (`projects/P/locations/R/models/M@VERSION_ID`).",
        ),
        attr("display_name", _S, kind="computed", doc="The endpoint's display name."),
        attr("id", _S, kind="computed", doc="`projects/P/locations/R/endpoints/E`."),
    ]

    def validate(self, diags: Diagnostics, type_name: str, config: State) -> None:
        super().validate(diags, type_name, config)
        validate_common(diags, config, self.provider.allow_unlisted_regions)

    def read(self, ctx: ReadDataContext, config: State) -> State | None:
        name = endpoint_name(config)
        try:
            endpoint = self.client.get(name, what=f"get {name}")
        except VertexError as error:
            report(ctx.diagnostics, error, {}, "endpoint_id")
            return None
        if endpoint is None:
            ctx.diagnostics.add_error(f"endpoint {name} does not exist", "", path=["endpoint_id"])
            return None
        state = from_api(endpoint, {**config, "split": {d["id"]: 0 for d in endpoint.get("deployedModels") or []}})
        state["deployed_models"] = {
            d["id"]: with_project(f"{d['model']}@{d['modelVersionId']}", config["project"])
            for d in endpoint.get("deployedModels") or []
        }
        state["display_name"] = endpoint.get("displayName")
        return state
