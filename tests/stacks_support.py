"""Readers of a synthesized stack's Terraform JSON shared by the tests/test_stacks_*.py modules."""

from __future__ import annotations


def resource(config: dict, kind: str, name: str) -> dict:
    return config["resource"][kind][name]


def of_type(config: dict, kind: str) -> list[dict]:
    """Resources of one type, in name order."""
    found = config["resource"].get(kind, {})
    return [found[k] for k in sorted(found)]


def only(config: dict, kind: str) -> dict:
    (found,) = of_type(config, kind)
    return found


def attributes(resource: dict) -> dict:
    """A resource's attributes, without cdktf's metadata and Terraform meta-arguments."""
    return {k: v for k, v in resource.items() if k not in ("//", "lifecycle", "depends_on")}
