"""Sessions: build, synth (the main job), tests, lint, docs, plan, review, scan, earth-engine-check,
verify, rehearse, bench.

Every session but `scan` runs in ONE shared virtualenv, `.nox/project`, holding all of the
project's pinned dependencies: it is created on first use (pip shows its progress) and
reused untouched while pyproject.toml's pins stay the same. checkov (`.nox/scan`) and our
Terraform provider (`.nox/provider`) have their own small ones: their pins clash with
TensorFlow's (checkov needs packaging<24, the provider framework protobuf<6).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nox

nox.needs_version = ">=2024.10.9"
# The environments are ours (below), shared between sessions; nox makes none per session.
nox.options.default_venv_backend = "none"
nox.options.sessions = ["synth", "tests"]


class _NoUvProbeNotice(logging.Filter):
    """nox looks for uv before every session and says when it is missing; these sessions use
    pip in their own virtualenvs, so the notice is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "uv binary not found."


logging.getLogger("nox").addFilter(_NoUvProbeNotice())

PYTHON = "3.11"
CDKTF_CLI = "cdktf-cli@0.21.0"
PYPROJECT = nox.project.load_toml("pyproject.toml")
ROOT = Path(__file__).resolve().parent
ENVS = ROOT / ".nox"
# Extras with their own virtualenv; every other extra goes into the shared one.
SEPARATE_EXTRAS = ("scan", "provider", "lint")
# Installed into the shared environment without their dependencies: tensorflow-serving-api
# (the gRPC stubs of TensorFlow Serving's API) requires the `tensorflow` distribution, which
# would install TensorFlow a second time beside tensorflow-cpu (the same module).
NO_DEPS = ("tensorflow-serving-api==2.21.0",)
ENV = {
    # cdktn runs through jsii on the machine's Node.js; silence its Node 20 banner.
    "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    # TensorFlow's start-up lines (absl, oneDNN, CPU features): oneDNN's notice goes only
    # with oneDNN's custom CPU kernels off, which only these local runs use.
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "GRPC_VERBOSITY": "ERROR",
    "PYTHONHASHSEED": "0",
    "PIP_DISABLE_PIP_VERSION_CHECK": "1",
}


def _interpreter(session: nox.Session) -> str:
    """A Python 3.11 to build the virtualenvs with."""
    for candidate in (shutil.which(f"python{PYTHON}"), sys.executable):
        if candidate:
            version = subprocess.run(
                [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True
            ).stdout.strip()
            if version == PYTHON:
                return candidate
    session.error(
        f"Python {PYTHON} is required (python{PYTHON} on PATH, or run nox with it); found {sys.version.split()[0]}"
    )
    raise AssertionError  # session.error raises


def _ensure_env(session: nox.Session, name: str, requirements: list[str], no_deps: tuple[str, ...] = ()) -> Path:
    """.nox/<name> with exactly these pins: created or updated only when they change."""
    env = ENVS / name
    python = env / "bin" / "python"
    stamp = env / ".pins"
    wanted = "\n".join([f"python {PYTHON}", *sorted(requirements), *(f"{r} (no deps)" for r in no_deps)]) + "\n"
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        session.log(f"reusing .nox/{name} (pins unchanged)")
        return env
    if not python.exists():
        session.log(f"creating .nox/{name} (Python {PYTHON})")
        session.run(_interpreter(session), "-m", "venv", str(env), external=True, silent=True)
    session.log(
        f"installing {len(requirements)} pinned packages into .nox/{name} "
        "(first run: a few minutes; later runs reuse it)"
    )
    # No wheel cache: the environment itself is kept, and the cache would double the disk.
    session.run(
        str(python),
        "-m",
        "pip",
        "install",
        "--no-cache-dir",
        "--progress-bar",
        "on",
        *requirements,
        external=True,
        env=ENV,
    )
    if no_deps:
        session.run(
            str(python),
            "-m",
            "pip",
            "install",
            "--no-cache-dir",
            "--no-deps",
            *no_deps,
            external=True,
            env=ENV,
            silent=True,
        )
    stamp.write_text(wanted)
    return env


def _requirements(*extras: str) -> list[str]:
    optional = PYPROJECT["project"]["optional-dependencies"]
    requirements = list(PYPROJECT["project"]["dependencies"])
    for extra in extras:
        requirements += [r for r in optional[extra] if r not in requirements]
    return requirements


def install(session: nox.Session, *extras: str) -> None:
    """Make the shared environment `.nox/project` this session's `python`. It holds every
    extra of pyproject.toml except checkov's and the provider's (`extras` is documentation:
    what this session uses of it)."""
    shared = [e for e in PYPROJECT["project"]["optional-dependencies"] if e not in SEPARATE_EXTRAS]
    unknown = sorted(set(extras) - set(shared))
    if unknown:
        session.error(f"unknown extra(s) {', '.join(unknown)}; allowed: {', '.join(shared)}")
    env = _ensure_env(session, "project", _requirements(*shared), NO_DEPS)
    # nox finds `python` on the process PATH when it manages no virtualenv itself.
    os.environ["PATH"] = f"{env / 'bin'}{os.pathsep}{os.environ['PATH']}"
    os.environ["VIRTUAL_ENV"] = str(env)


def checkov_env(session: nox.Session) -> str:
    """checkov in `.nox/scan` (its own pins); returns its executable."""
    return str(_ensure_env(session, "scan", _requirements("scan")) / "bin" / "checkov")


def provider_env(session: nox.Session) -> dict[str, str]:
    """Our Terraform provider (provider/, Python) in its own virtualenv `.nox/provider` (the
    provider framework `tf` needs protobuf<6, TensorFlow 6), installed as a user installs it
    (`python -m provider.install`) into `.nox/provider-mirror`. Returns the environment that
    makes Terraform find it (TF_CLI_CONFIG_FILE) and tells tests and the rehearsal its Python."""
    env = _ensure_env(session, "provider", _requirements("provider"))
    python = env / "bin" / "python"
    cli_config = ENVS / "provider.tfrc"
    session.run(
        str(python),
        "-m",
        "provider.install",
        "--mirror",
        str(ENVS / "provider-mirror"),
        "--cli-config",
        str(cli_config),
        external=True,
        env=ENV,
        silent=True,
    )
    return {"TF_CLI_CONFIG_FILE": str(cli_config), "EEV_PROVIDER_PYTHON": str(python)}


def require(session: nox.Session, program: str, why: str) -> None:
    """Stop with one line when a program this session needs is missing."""
    if shutil.which(program) is None:
        session.error(f"{program} not found on PATH: {why}")


def require_builder(session: nox.Session) -> None:
    """Our serving images need an OCI builder (serving/image.py takes the first it finds)."""
    if not any(shutil.which(b) for b in ("buildah", "podman", "docker")):
        session.error(
            "none of buildah, podman, docker is on PATH: building our serving image needs one "
            "(Debian/Ubuntu: `sudo apt-get install buildah mmdebstrap`)"
        )


def _configs(session: nox.Session) -> list[str]:
    return [a for a in session.posargs if not a.startswith("--")] or ["rollout.toml"]


def _synth(session: nox.Session, config: str) -> None:
    session.run("python", "-m", "build_hooks", config, env=ENV)
    session.run("python", "main.py", env={**ENV, "ROLLOUT_CONFIG": config})


@nox.session
def build(session: nox.Session) -> None:
    """Export the model(s) of the given rollout configs (default rollout.toml) to deterministic artifacts."""
    install(session, "build")
    require_builder(session)
    session.run("python", "-m", "build_hooks", *_configs(session), env=ENV)


@nox.session
def synth(session: nox.Session) -> None:
    """Build the artifact, then synthesize exactly the config's stacks into cdktf.out/ (drops stale ones)."""
    install(session, "build", "synth")
    require_builder(session)
    for config in _configs(session):
        _synth(session, config)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite, with checkov and the cdktf CLI (--hcl) when available (pytest args after --)."""
    install(session, "build", "synth", "deploy", "serve", "test", "earthengine")
    require(session, "java", "TorchServe (tests, verify, rehearse) needs Java 11+; install a JDK, e.g. openjdk-17")
    require_builder(session)
    for program in ("skopeo", "docker-registry"):
        require(
            session,
            program,
            "the rehearsal pushes our images to a loopback registry "
            "(Debian/Ubuntu: `sudo apt-get install skopeo docker-registry`)",
        )
    env = {**ENV, "CHECKOV": checkov_env(session), **provider_env(session)}
    if shutil.which("npm"):
        # The cdktf CLI, for the `cdktf synth --hcl` way-out test (tests/test_hcl.py).
        prefix = ENVS / "cdktf-cli"
        cli = prefix / "node_modules" / ".bin" / "cdktf"
        if not cli.exists():
            session.log(f"installing {CDKTF_CLI} with npm into .nox/cdktf-cli")
            cache = Path(session.create_tmp()) / "npm-cache"
            session.run(
                "npm",
                "install",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(prefix),
                CDKTF_CLI,
                external=True,
                env={"npm_config_cache": str(cache)},
            )
            shutil.rmtree(cache, ignore_errors=True)
        env["CDKTF_CLI"] = str(cli)
    else:
        session.log("npm not found: tests/test_hcl.py (cdktf synth --hcl) will be skipped")
    session.run("python", "-m", "pytest", *_workers(session.posargs), *session.posargs, env=env)


def _workers(args: list[str]) -> list[str]:
    """pytest-xdist workers, unless the arguments choose (`-n 0` runs in this process). A test
    mostly waits on a container, Terraform or an emulator, so the workers outnumber the cores.
    Each worker takes whole modules (their tests share fixtures), the longest first
    (tests/conftest.py). Not `--dist loadgroup`: pytest-xdist 3.8 renames a grouped test's
    `_nodeid`, which pytest 9 no longer reads (`Node.nodeid` is `str(self._id)`), so its groups
    are silently ignored."""
    if any(a == "-n" or a.startswith(("-n", "--numprocesses", "--dist")) or a == "no:xdist" for a in args):
        return []
    # --no-loadscope-reorder: in our order, not pytest-xdist's (the modules with most tests first).
    return ["-n", str(max(2, (os.cpu_count() or 1) + 1)), "--dist", "loadfile", "--no-loadscope-reorder"]


@nox.session(default=False)
def plan(session: nox.Session) -> None:
    """Synthesize, then terraform init/validate/plan every stack: per target what is created, changed, replaced, destroyed."""  # noqa: E501 - `nox -l` shows a session's docstring up to its first line break
    install(session, "build", "synth", "deploy")
    config = _configs(session)[0]
    _synth(session, config)
    session.run("python", "-m", "plan.terraform", "plan", "cdktf.out", env={**ENV, **provider_env(session)})


@nox.session(default=False)
def verify(session: nox.Session) -> None:
    """Serve the built artifacts locally as the first target would (our image, or a prebuilt image's server) and check Earth Engine-shaped requests against the framework model."""  # noqa: E501 - `nox -l` shows a session's docstring up to its first line break
    install(session, "build", "serve")
    require_builder(session)
    require(session, "java", "TorchServe needs Java 11+; install a JDK, e.g. openjdk-17")
    for config in list(session.posargs) or ["rollout.toml", "examples/tensorflow.toml"]:
        session.run("python", "-m", "build_hooks", config, env=ENV)
        session.run("python", "-m", "build_hooks.verify", config, env=ENV)


@nox.session(default=False)
def serve(session: nox.Session) -> None:
    """Build, then serve the artifact on 127.0.0.1 as the first target's container would (our image, run here), with a sample Earth Engine request; Ctrl-C stops it."""  # noqa: E501 - `nox -l` shows a session's docstring up to its first line break
    install(session, "build", "serve")
    require_builder(session)
    require(
        session,
        "skopeo",
        "our image runs from the builder's store, copied there from the build's OCI layout "
        "(Debian/Ubuntu: `sudo apt-get install skopeo`)",
    )
    config = _configs(session)[0]
    session.run("python", "-m", "build_hooks", config, env=ENV)
    session.run("python", "-m", "build_hooks.serve", config, env=ENV)


@nox.session(default=False)
def starter(session: nox.Session) -> None:
    """Write a starter rollout config for your model: -- MODULE:FACTORY [--out FILE]."""
    install(session, "build")
    session.run("python", "-m", "build_hooks.starter", *session.posargs, env=ENV)


@nox.session(default=False)
def rehearse(session: nox.Session) -> None:
    """The whole rollout offline (scenarios 1-8, then the gcloud scenario): emulators, real Terraform, our provider (configs, --max-targets N, --scenario after --)."""  # noqa: E501 - `nox -l` shows a session's docstring up to its first line break
    install(session, "build", "synth", "deploy", "serve", "rehearse")
    require_builder(session)
    for program in ("skopeo", "docker-registry"):
        require(
            session,
            program,
            "the rehearsal pushes our images to a loopback registry "
            "(Debian/Ubuntu: `sudo apt-get install skopeo docker-registry`)",
        )
    # The rehearsal installs the provider into its own work folder; it needs the provider's Python.
    provider = provider_env(session)["EEV_PROVIDER_PYTHON"]
    args = list(session.posargs) or ["rollout.toml", "examples/tensorflow.toml"]
    session.run("python", "-m", "rehearsal", *args, env={**ENV, "EEV_PROVIDER_PYTHON": provider})


@nox.session(default=False)
def emulators(session: nox.Session) -> None:
    """Start the GCS and Vertex AI emulators and print the variables that point synthesized stacks at them, for a plan or apply by hand (-- --offline-google: and the stand-in google provider); Ctrl-C stops them."""  # noqa: E501 - `nox -l` shows a session's docstring up to its first line break
    install(session, "rehearse")
    provider = provider_env(session)["EEV_PROVIDER_PYTHON"]
    session.run("python", "-m", "rehearsal.emulators", *session.posargs, env={**ENV, "EEV_PROVIDER_PYTHON": provider})


@nox.session(default=False)
def review(session: nox.Session) -> None:
    """Synthesize CONFIG, plan every stack, print a short summary per target, write the detail and PR_COMMENT.md to review/, then checkov (--local-state: no remote state)."""  # noqa: E501 - `nox -l` shows a session's docstring up to its first line break
    install(session, "build", "synth", "deploy")
    config = _configs(session)[0]
    flags = [a for a in session.posargs if a.startswith("--")]
    _synth(session, config)
    env = {**ENV, "CHECKOV": checkov_env(session), **provider_env(session)}
    session.run("python", "-m", "plan.review", "cdktf.out", "--out", "review", "--scan", *flags, env=env)


@nox.session(name="earth-engine-check", default=False)
def earth_engine_check(session: nox.Session) -> None:
    """Run the last synth's ee.Model.fromVertexAi call for TARGET against its project (-- TARGET [--point LON,LAT]); SKIPPED, exit 0, without earthengine-api or credentials."""  # noqa: E501 - `nox -l` shows a session's docstring up to its first line break
    install(session, "earthengine")
    session.run("python", "-m", "plan.earth_engine", *session.posargs, env=ENV)


@nox.session(default=False)
def scan(session: nox.Session) -> None:
    """checkov on the stacks of the last synth in cdktf.out/ (run synth first): any failed check fails, named."""
    checkov = checkov_env(session)
    if not (ROOT / "cdktf.out" / "manifest.json").exists():
        session.error("cdktf.out/manifest.json is missing: run `nox -s synth -- CONFIG` first")
    python = str(ENVS / "scan" / "bin" / "python")
    session.run(
        python,
        "-m",
        "plan.scan",
        "cdktf.out",
        "--out",
        "review/checkov.json",
        env={**ENV, "CHECKOV": checkov},
        external=True,
    )


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Serving (forward passes, handler overhead, our image vs TorchServe vs Google's example over HTTP, cold start, load), synth time for 1/10/50 targets, unchanged vs first build, our provider's start-up and plan time, as side-by-side ratios (-- --write puts them into docs/guides/benchmarks.md)."""  # noqa: E501 - `nox -l` shows a session's docstring up to its first line break
    install(session, "build", "synth", "serve")
    session.run("python", "-m", "benchmarks", *session.posargs, env={**ENV, **provider_env(session)})


@nox.session(default=False)
def docs(session: nox.Session) -> None:
    """Regenerate docs/'s reference pages from config/ and provider/ (-- --check: fail when one is stale)."""
    python = _ensure_env(session, "provider", _requirements("provider")) / "bin" / "python"
    session.run(str(python), "-m", "docs.generate", *session.posargs, external=True, env=ENV)


@nox.session(default=False)
def lint(session: nox.Session) -> None:
    """ruff (lint and format check) and mypy over the project, as CI runs them."""
    env = _ensure_env(session, "lint", _requirements("lint"))
    session.run(str(env / "bin" / "ruff"), "check", ".", external=True)
    session.run(str(env / "bin" / "ruff"), "format", "--check", ".", external=True)
    session.run(str(env / "bin" / "mypy"), external=True)
