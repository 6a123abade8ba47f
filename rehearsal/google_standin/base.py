"""What the stand-in's resources share: the error a failed call raises, the resource base class
(provider at hand, errors as diagnostics, no in-place updates unless a resource says so), the
block shorthands (one block, a set of blocks: the framework has no list nesting, so the real
provider's list blocks are sets here), and the conversion between a block's state (snake_case,
nulls) and the API's JSON (camelCase, absent)."""

from __future__ import annotations

import re

from tf.iface import Resource
from tf.schema import Attribute, Block, NestedBlock, NestMode

from provider.common import SingleBlock


class Failed(Exception):
    """A call an emulator refused, or a setting missing: reported to Terraform as an error."""


class StandInResource(Resource):
    """`run` reports a Failed as an error diagnostic; updates fail unless a resource overrides `_update`."""

    def __init__(self, provider):
        self.provider = provider

    def run(self, ctx, work, *args):
        try:
            return work(*args)
        except Failed as error:
            ctx.diagnostics.add_error(str(error), "")
            return None

    def update(self, ctx, current, planned):
        return self.run(ctx, self._update, current, planned)

    def _update(self, current, planned):
        raise Failed(f"{self.get_name()}: in-place updates of these attributes are not stood in for")


def single_block(name: str, *attributes: Attribute) -> SingleBlock:
    return SingleBlock(name, Block(attributes=list(attributes)))


class SetBlock(NestedBlock):
    """A block written any number of times, as a set (`cleanup_policies { ... }`)."""

    def __init__(self, type_name: str, block: Block):
        super().__init__(type_name, NestMode.Set, block)

    def encode(self, value):
        from tf.provider import _encode_state_d

        return None if value is None else [_encode_state_d(self._amap(), self._bmap(), v, None) for v in value]

    def decode(self, value):
        from tf.provider import _decode_state
        from tf.utils import Diagnostics

        return (
            None if value is None else [_decode_state(Diagnostics(), self._amap(), self._bmap(), v)[1] for v in value]
        )

    def semantically_equal(self, a, b) -> bool:
        key = lambda items: sorted(repr(sorted(i.items())) for i in (items or []))  # noqa: E731
        return key(a) == key(b)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def camel_keys(value):
    """A block's state (snake_case, nulls) as the API's JSON (camelCase, absent)."""
    if isinstance(value, dict):
        return {camel(k): camel_keys(v) for k, v in value.items() if v not in (None, [], {})}
    if isinstance(value, list):
        return [camel_keys(v) for v in value]
    return value


def _snake(name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def snake_keys(value, template):
    """The API's JSON back as a block's state, with the keys `template` (the planned state) has."""
    if isinstance(template, dict):
        value = value if isinstance(value, dict) else {}
        return {k: snake_keys(value.get(camel(k)), t) for k, t in template.items()}
    if isinstance(template, list) and template and isinstance(template[0], dict):
        return [snake_keys(v, template[0]) for v in (value or [])]
    if template is None and isinstance(value, (dict, list)):
        return _snake_all(value)
    return value


def _snake_all(value):
    if isinstance(value, dict):
        return {_snake(k): _snake_all(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_snake_all(v) for v in value]
    return value
