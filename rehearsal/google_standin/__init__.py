"""A stand-in for the google Terraform provider (`registry.terraform.io/hashicorp/google`), for
offline runs where the real one cannot be downloaded: the resource types the stacks use, with the
attribute names and kinds of the google provider's schema for the attributes the stacks set,
against the emulators. It reads the endpoints from the variables the real provider reads
(GOOGLE_STORAGE_CUSTOM_ENDPOINT, GOOGLE_VERTEX_AI_CUSTOM_ENDPOINT, ...), so a stack runs unchanged
on either. The only IAM stood in for is an Artifact Registry repository's member.

Modules: `provider` (the provider block, HTTP, operations), `base` (what the resources share),
`storage` (bucket, object), `vertex` (endpoint, deployment resource pool), `registry` (repository,
its IAM member), `bigquery` (dataset), `monitoring` (alert policy), `project` (data google_project).

Written in the framework our own provider uses (`tf`), run from the provider's virtualenv;
installed into a filesystem mirror by `install()`, beside ours.
"""

from __future__ import annotations

import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE = "registry.terraform.io/hashicorp/google"
VERSION = "8.7.0"  # what cdktn-provider-google 21.1 requires (stacks' required_providers)


def install_with_eevertex(mirror: Path, cli_config: Path, python: str) -> Path:
    """Our provider and the stand-in in `mirror`, and a CLI config (`cli_config`) taking both from
    it; `python` has the provider extra. Returns the CLI config, for TF_CLI_CONFIG_FILE."""
    from provider.install import install as install_eevertex

    mirror, cli_config = mirror.resolve(), cli_config.resolve()
    install_eevertex(mirror, cli_config, python)
    install(mirror, python)
    cli_config.write_text(cli_config_text(mirror))
    return cli_config


def install(mirror: Path, python: str) -> Path:
    """The launcher in `mirror`; pair it with `cli_config_text(mirror)`."""
    from provider.install import platform_dir

    launcher = mirror / SOURCE / VERSION / platform_dir() / f"terraform-provider-google_v{VERSION}"
    launcher.parent.mkdir(parents=True, exist_ok=True)
    launcher.write_text(
        "#!/bin/sh\n# stand-in google provider (rehearsal/google_standin)\n"
        f"PYTHONPATH={shlex.quote(str(ROOT))}${{PYTHONPATH:+:$PYTHONPATH}}\nexport PYTHONPATH\n"
        f'exec {shlex.quote(python)} -P -m rehearsal.google_standin "$@"\n'
    )
    launcher.chmod(0o755)
    return launcher


def cli_config_text(mirror: Path) -> str:
    """A Terraform CLI config taking ours and the stand-in from `mirror`, nothing from a registry."""
    return (
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f'    path    = "{mirror}"\n'
        f'    include = ["ee-vertex.local/*/*", "{SOURCE}"]\n'
        "  }\n"
        "}\n"
    )
