"""Helpers the resources share: schema shorthands, the `timeouts` block, import IDs, plan-time
validation (config/rules.py, the table the rollout config uses too) and Read normalization."""

from __future__ import annotations

import contextlib
import re
from typing import ClassVar, TypeVar

from tf.iface import DataSource, Resource
from tf.schema import Attribute, Block, NestedBlock, NestMode, Schema
from tf.types import List, Map, String, Unknown
from typing_extensions import TypeIs

from config import rules

_T = TypeVar("_T")

PROJECT_REGION_DOC = {
    "project": "Google Cloud project ID (or number, as an import from a name gcloud printed leaves it).",
    "region": "Vertex AI region, e.g. `us-central1`.",
}


def attr(name: str, type_, *, kind: str, replace: bool = False, doc: str = "") -> Attribute:
    """kind: `required`, `optional`, `computed`, or `optional+computed`."""
    return Attribute(
        name,
        type_,
        description=doc or None,
        required=kind == "required",
        optional=kind.startswith("optional"),
        computed=kind.endswith("computed"),
        requires_replace=replace or None,
    )


class _AbsentIsEmpty:
    """null and empty are the same value: a config's `[]` (or `{}`) against an imported
    resource's absent field is no change, and never forces a replacement."""

    def semantically_equal(self, a, b) -> bool:
        if a is Unknown or b is Unknown:
            return a is b
        return (a or None) == (b or None)


class ListOf(_AbsentIsEmpty, List):
    pass


class MapOf(_AbsentIsEmpty, Map):
    pass


def known(value: _T | None) -> TypeIs[_T]:
    """A value Terraform knows: neither null nor unknown (computed later)."""
    return value is not None and value is not Unknown


def empty_like(prior, value):
    """An empty API value read back as the prior state had it (absent == empty): None, [] or {}."""
    if value:
        return value
    if prior is not Unknown and prior is not None and not prior:
        return prior
    return None


def same_resource(a: str, b: str) -> bool:
    """Two resource names for the same thing: Vertex AI answers with the project NUMBER where
    the caller gave the project ID (or the reverse), so compare everything but the project."""
    strip = lambda name: re.sub(r"^projects/[^/]+/", "", name or "")  # noqa: E731
    return strip(a) == strip(b)


def with_project(name: str, project: str) -> str:
    """A name Vertex AI answered (with the project number) as the config writes it (its project)."""
    return re.sub(r"^projects/[^/]+/", f"projects/{project}/", name)


class _WithProvider:
    """The provider (for its client and settings) at hand, and the schema each resource and data
    source declares: its NAME (after the `eevertex_` prefix), DESCRIPTION, ATTRIBUTES, BLOCKS."""

    NAME: ClassVar[str]
    DESCRIPTION: ClassVar[str]
    ATTRIBUTES: ClassVar[list[Attribute]]
    BLOCKS: ClassVar[list[NestedBlock]] = []

    def __init__(self, provider):
        self.provider = provider

    @classmethod
    def get_name(cls) -> str:
        return cls.NAME

    @classmethod
    def get_schema(cls) -> Schema:
        return Schema(version=0, attributes=cls.ATTRIBUTES, block_types=cls.BLOCKS, description=cls.DESCRIPTION)

    @property
    def client(self):
        if self.provider.client is None:
            raise RuntimeError("the eevertex provider was not configured")
        return self.provider.client

    @contextlib.contextmanager
    def change(self, state: dict, kind: str, *, locked: str | None = None):
        """One `kind` of change (create, update, delete) within the deadline of the state's
        `timeouts` block; holding the provider's lock on the resource named `locked`, so that
        the changes to one Vertex AI resource in one apply go one at a time."""
        with contextlib.ExitStack() as held:
            if locked is not None:
                held.enter_context(self.provider.lock(locked))
            held.enter_context(self.client.deadline(timeout_of(state, kind), f"timeouts.{kind}"))
            yield

    def same_project(self, name_as_configured: str, name_in_state: str) -> bool:
        """Whether two names of one resource differ only in how the project is written (ID or
        number): Vertex AI answers a GET with the name as it stores it (with the number)."""
        if name_as_configured == name_in_state:
            return True
        if not same_resource(name_as_configured, name_in_state):
            return False
        try:
            a, b = self.client.get(name_as_configured), self.client.get(name_in_state)
        except Exception:  # noqa: BLE001 - cannot tell: treat as different (the plan shows it)
            return False
        return bool(a and b and a.get("name") == b.get("name"))

    def keep_prior_project(self, current: dict, planned: dict, name_of) -> None:
        """The project written as a number in state (an import from a name gcloud printed) and as
        the ID in the config: the same project, so the plan keeps the prior value (Terraform
        lets a provider keep a prior value that is functionally equal to the config's:
        internal/plans/objchange/plan_valid.go AssertPlanValid)."""
        if (
            known(planned.get("project"))
            and planned["project"] != current.get("project")
            and self.same_project(name_of(planned), name_of(current))
        ):
            planned["project"] = current["project"]


class ProviderResource(_WithProvider, Resource):
    pass


class ProviderDataSource(_WithProvider, DataSource):
    pass


def differences(planned: dict, actual: dict, keys) -> list[str]:
    """Attributes whose planned (known) value the actual resource does not have."""

    def same(a, b) -> bool:
        if isinstance(a, (list, dict)) or isinstance(b, (list, dict)):
            return (a or None) == (b or None)
        return a == b

    return [k for k in keys if planned.get(k) is not Unknown and not same(planned.get(k), actual.get(k))]


def replaced_attributes(attributes: list[Attribute]) -> list[str]:
    return [a.name for a in attributes if a.requires_replace]


# -- plan-time validation: config/rules.py --------------------------------------------------


def rule(diags, attribute: str, problem: str | None) -> None:
    """A rule's message as a plan-time error on `attribute`, worded as the rollout config words it."""
    if problem:
        diags.add_error(f"{attribute}: {problem}", "", path=[attribute])


def validate_common(diags, config: dict, allow_unlisted_regions: bool) -> None:
    """What every resource and data source has: project, region, and where present the endpoint
    ID (any Vertex AI gave an existing endpoint) and the timeouts block."""
    if known(config.get("project")):
        rule(diags, "project", rules.project(config["project"], number_allowed=True))
    if known(config.get("region")):
        rule(diags, "region", rules.region(config["region"], allow_unlisted=allow_unlisted_regions))
    if known(config.get("endpoint_id")):
        rule(diags, "endpoint_id", rules.endpoint_id(config["endpoint_id"], existing=True))
    validate_timeouts(diags, config)


# -- timeouts ---------------------------------------------------------------------------------


class SingleBlock(NestedBlock):
    """A block written at most once (`timeouts { ... }`): an object or null."""

    def __init__(self, type_name: str, block: Block):
        super().__init__(type_name, NestMode.Single, block)

    def encode(self, value):
        from tf.provider import _encode_state_d

        return None if value is None else _encode_state_d(self._amap(), self._bmap(), value, None)

    def decode(self, value):
        from tf.provider import _decode_state
        from tf.utils import Diagnostics

        return None if value is None else _decode_state(Diagnostics(), self._amap(), self._bmap(), value)[1]

    def semantically_equal(self, a, b) -> bool:
        return (a or None) == (b or None)


TIMEOUT_KINDS = ("create", "update", "delete")
TIMEOUTS = SingleBlock(
    "timeouts",
    Block(
        attributes=[
            Attribute(
                kind,
                String(),
                optional=True,
                description=(
                    f"Longest the {kind} may take, requests and long-running operations together, as a duration "
                    "(`30m`, `1h30m`, `90s`); default: the provider's operation_timeout_seconds per operation."
                ),
            )
            for kind in TIMEOUT_KINDS
        ],
        description="How long create, update and delete may take (Terraform's duration syntax).",
    ),
)
# Go's time.ParseDuration units, as Terraform's own timeouts take them.
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"(?:(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+")


def parse_duration(text: str) -> float | None:
    """Seconds in a Go duration string (`30m`, `1h30m`, `1.5h`), or None if it is not one."""
    if not isinstance(text, str) or not _DURATION.fullmatch(text):
        return None
    seconds = sum(float(n) * _UNITS[u] for n, u in re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", text))
    return seconds if seconds > 0 else None


def validate_timeouts(diags, config: dict) -> None:
    block = config.get("timeouts")
    if not known(block):
        return
    for kind in TIMEOUT_KINDS:
        value = block.get(kind)
        if known(value) and parse_duration(value) is None:
            diags.add_error(
                f"timeouts.{kind}: {value!r}; allowed: a duration such as '30m', '1h30m' or '90s'",
                "",
                path=["timeouts", kind],
            )


def timeout_of(state: dict | None, kind: str) -> float | None:
    block = (state or {}).get("timeouts")
    value = block.get(kind) if known(block) else None
    return parse_duration(value) if known(value) else None


def keep_timeouts(state: dict | None, prior: dict | None) -> dict | None:
    """Read answers what Vertex AI holds; the timeouts block is only the config's: keep it."""
    if state is not None:
        state["timeouts"] = (prior or {}).get("timeouts")
    return state


# -- import IDs -------------------------------------------------------------------------------


def import_parts(id: str, collection_path: str) -> tuple[str, str, list[str]] | None:
    """(project, region, the rest) of an import ID given as the full name gcloud prints
    (`projects/P/locations/R/<collection_path>`, e.g. `endpoints/{}/deployedModels/{}`) or as
    the short `P/R/<the same IDs>`; None when it is neither."""
    ids = collection_path.count("{}")
    full = re.escape(collection_path).replace(r"\{\}", "([^/]+)")
    match = re.fullmatch(rf"projects/([^/]+)/locations/([^/]+)/{full}", id)
    if not match:
        match = re.fullmatch(r"([^/]+)/([^/]+)" + r"/([^/]+)" * ids, id)
    if not match:
        return None
    project, region, *rest = match.groups()
    return project, region, rest
