"""docs/ is generated from the code (docs/generate.py) and current; the stacks' typed constructs
for our provider (stacks/vertex.py) declare exactly the provider's schema."""

from __future__ import annotations

import inspect
import json
import subprocess

import pytest
from provider_support import PROVIDER_PYTHON

from stacks import vertex

ROOT = vertex.__file__.rsplit("/stacks/", 1)[0]
pytestmark = pytest.mark.skipif(
    not PROVIDER_PYTHON.exists(), reason=f"no provider virtualenv at {PROVIDER_PYTHON} (set EEV_PROVIDER_PYTHON)"
)


def test_the_generated_pages_are_current_and_every_attribute_is_described():
    done = subprocess.run(
        [str(PROVIDER_PYTHON), "-m", "docs.generate", "--check"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def schema() -> dict:
    done = subprocess.run(
        [
            str(PROVIDER_PYTHON),
            "-c",
            "import json; from docs.generate import schema_summary; print(json.dumps(schema_summary()))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(done.stdout)


CONSTRUCTS = [vertex.EeVertexProvider, vertex.Image, vertex.Model, vertex.Deployment, vertex.TrafficSplit]
NOT_ATTRIBUTES = {"self", "scope", "id", "create_before_destroy", "depends_on", "import_from", "provider"}


@pytest.mark.parametrize("construct", CONSTRUCTS, ids=lambda c: c.__name__)
def test_each_construct_takes_exactly_the_providers_arguments(schema, construct):
    name = "provider" if construct is vertex.EeVertexProvider else construct.TYPE
    attributes = schema[name]
    arguments = {a: spec["type"] for a, spec in attributes.items() if spec["required"] or spec["optional"]}
    assert arguments == construct.SCHEMA
    parameters = {
        p.name: p
        for p in inspect.signature(construct.__init__).parameters.values()
        if p.name not in NOT_ATTRIBUTES and p.kind is p.KEYWORD_ONLY
    }
    assert set(parameters) == set(arguments)
    required = {a for a, spec in attributes.items() if spec["required"]}
    assert {p for p, param in parameters.items() if param.default is inspect.Parameter.empty} == required


@pytest.mark.parametrize("construct", CONSTRUCTS[1:], ids=lambda c: c.__name__)
def test_each_constructs_getters_read_computed_attributes(schema, construct):
    getters = [n for n, v in vars(construct).items() if isinstance(v, property)] + ["id"]
    computed = {a for a, spec in schema[construct.TYPE].items() if spec["computed"]}
    assert {g.rstrip("_") for g in getters} <= computed


def _anchors(text: str) -> set[str]:
    """GitHub's heading anchors of a markdown page (fenced code skipped)."""
    import re

    found, fenced = set(), False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        heading = re.match(r"^#+ (.*)", line)
        if heading and not fenced:
            found.add(re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower().replace("`", "")).replace(" ", "-"))
    return found


def test_every_link_between_the_pages_resolves():
    """README.md and docs/: every relative link names a file that exists, and a heading in it."""
    import re
    from pathlib import Path

    root = Path(ROOT)
    pages = [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
    broken = []
    for page in pages:
        text = page.read_text()
        for target in re.findall(
            r"\]\(([^)\s]+)\)", re.sub(r"`[^`\n]*`", "", re.sub(r"```.*?```", "", text, flags=re.S))
        ):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                broken.append(f"{page.relative_to(root)}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked.read_text()):
                broken.append(f"{page.relative_to(root)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)
