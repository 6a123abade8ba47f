"""Helpers the resources share: schema shorthands and Read normalization."""

from __future__ import annotations

import re

from tf.iface import Resource
from tf.schema import Attribute
from tf.types import List, Map, Unknown

PROJECT_REGION_DOC = {
    "project": "Google Cloud project ID.",
    "region": "Vertex AI region, e.g. `us-central1`.",
}


def attr(name: str, type_, *, kind: str, replace: bool = False, doc: str = "") -> Attribute:
    """kind: `required`, `optional`, `computed`, or `optional+computed`."""
    return Attribute(
        name, type_, description=doc or None,
        required=kind == "required", optional=kind.startswith("optional"),
        computed=kind.endswith("computed"), requires_replace=replace or None,
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


def known(value) -> bool:
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


class ProviderResource(Resource):
    """A resource with the provider (for its client) at hand."""

    def __init__(self, provider):
        self.provider = provider

    @property
    def client(self):
        if self.provider.client is None:
            raise RuntimeError("the eevertex provider was not configured")
        return self.provider.client


def differences(planned: dict, actual: dict, keys) -> list[str]:
    """Attributes whose planned (known) value the actual resource does not have."""
    def same(a, b) -> bool:
        if isinstance(a, (list, dict)) or isinstance(b, (list, dict)):
            return (a or None) == (b or None)
        return a == b

    return [k for k in keys if planned.get(k) is not Unknown and not same(planned.get(k), actual.get(k))]


def replaced_attributes(attributes: list[Attribute]) -> list[str]:
    return [a.name for a in attributes if a.requires_replace]
