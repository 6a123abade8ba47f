"""Sessions: build, synth (the main job), tests, plan, verify, rehearse, bench, review."""

from __future__ import annotations

import shutil
from pathlib import Path

import nox

nox.needs_version = ">=2024.10.9"
nox.options.default_venv_backend = "venv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["synth", "tests"]

PYTHON = "3.11"
CDKTF_CLI = "cdktf-cli@0.21.0"
PYPROJECT = nox.project.load_toml("pyproject.toml")
ENV = {
    # cdktf 0.21 runs through jsii on the machine's Node.js; silence its Node 20 banner.
    "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "PYTHONHASHSEED": "0",
}


def install(session: nox.Session, *extras: str) -> None:
    """Install the project's pinned dependencies for these extras (the project itself runs
    from the checkout)."""
    optional = PYPROJECT["project"]["optional-dependencies"]
    requirements = list(PYPROJECT["project"]["dependencies"])
    for extra in extras:
        requirements += optional[extra]
    session.install(*requirements)


def _configs(session: nox.Session) -> list[str]:
    return list(session.posargs) or ["rollout.toml"]


@nox.session(python=PYTHON)
def build(session: nox.Session) -> None:
    """Export the model(s) of the given rollout configs (default rollout.toml) to artifacts."""
    install(session, "build")
    session.run("python", "-m", "build_hooks", *_configs(session), env=ENV)


@nox.session(python=PYTHON)
def synth(session: nox.Session) -> None:
    """Build the artifact, then synthesize every target's stacks into cdktf.out/."""
    install(session, "build", "synth")
    for config in _configs(session):
        session.run("python", "-m", "build_hooks", config, env=ENV)
        session.run("python", "main.py", env={**ENV, "ROLLOUT_CONFIG": config})


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """Run the test suite (pass pytest arguments after --)."""
    install(session, "build", "synth", "deploy", "serve", "test")
    env = dict(ENV)
    if shutil.which("npm"):
        # The cdktf CLI, for the `cdktf synth --hcl` way-out test (tests/test_hcl.py).
        prefix = Path(session.create_tmp()).resolve() / "cdktf-cli"
        session.run("npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(prefix),
                    CDKTF_CLI, external=True)
        env["CDKTF_CLI"] = str(prefix / "node_modules" / ".bin" / "cdktf")
    session.run("python", "-m", "pytest", *session.posargs, env=env)


@nox.session(python=PYTHON, default=False)
def plan(session: nox.Session) -> None:
    """Synthesize, then terraform init/validate/plan every stack (embedded Terraform)."""
    install(session, "build", "synth", "deploy")
    config = _configs(session)[0]
    session.run("python", "-m", "build_hooks", config, env=ENV)
    session.run("python", "main.py", env={**ENV, "ROLLOUT_CONFIG": config})
    session.run("python", "-m", "plan.terraform", "plan", "cdktf.out", env=ENV)


@nox.session(python=PYTHON, default=False)
def verify(session: nox.Session) -> None:
    """Serve the built artifacts locally (TorchServe, TensorFlow) and check them against
    the framework model on Earth Engine-shaped requests."""
    install(session, "build", "serve")
    for config in list(session.posargs) or ["rollout.toml", "examples/tensorflow.toml"]:
        session.run("python", "-m", "build_hooks", config, env=ENV)
        session.run("python", "-m", "build_hooks.verify", config, env=ENV)


def provider_python(session: nox.Session) -> str:
    """Python of a virtualenv of its own for our Terraform provider (its framework `tf`
    needs protobuf<6, TensorFlow needs 6), with the `provider` extra installed."""
    venv = Path(session.create_tmp()).resolve() / "provider-venv"
    python = venv / "bin" / "python"
    if not python.exists():
        session.run("python", "-m", "venv", str(venv))
    session.run(str(python), "-m", "pip", "install", "--quiet",
                *PYPROJECT["project"]["optional-dependencies"]["provider"], external=True)
    return str(python)


@nox.session(python=PYTHON, default=False)
def rehearse(session: nox.Session) -> None:
    """The whole rollout offline (issue 12 scenarios 1-8): local GCS and Vertex AI
    emulators, real Terraform with our provider; then the seed's gcloud commands with the
    real gcloud CLI and the parity check (skipped, saying why, without gcloud). Pass
    configs, --max-targets N, --scenario after --; default: both examples."""
    install(session, "build", "synth", "deploy", "serve", "rehearse")
    args = list(session.posargs) or ["rollout.toml", "examples/tensorflow.toml"]
    session.run("python", "-m", "rehearsal", *args, env={**ENV, "EEV_PROVIDER_PYTHON": provider_python(session)})


@nox.session(python=PYTHON, default=False)
def review(session: nox.Session) -> None:
    """Synthesize, then write each stack's plan JSON and a readable summary to review/;
    then the checkov scan (its own session: checkov's pins clash with TensorFlow's)."""
    install(session, "build", "synth", "deploy")
    config = _configs(session)[0]
    session.run("python", "-m", "build_hooks", config, env=ENV)
    session.run("python", "main.py", env={**ENV, "ROLLOUT_CONFIG": config})
    session.run("python", "-m", "plan.review", "cdktf.out", "--out", "review", env=ENV)
    session.notify("scan")


@nox.session(python=PYTHON, default=False)
def scan(session: nox.Session) -> None:
    """checkov on the synthesized stacks in cdktf.out (run `nox -s synth` or `review` first):
    no failed check allowed; then the scan's own tests (a weakened stack must fail)."""
    install(session, "scan")
    if not Path("cdktf.out/manifest.json").exists():
        session.error("cdktf.out/ is missing: run `nox -s synth` (or `nox -s review`) first")
    checkov = str(Path(session.bin) / "checkov")
    env = {**ENV, "CHECKOV": checkov, "EEV_SCAN_OUTDIR": "cdktf.out"}
    session.run("python", "-m", "plan.scan", "cdktf.out", "--out", "review/checkov.json", env=env)
    session.run("python", "-m", "pytest", "-q", "tests/test_scan.py", env=env)


@nox.session(python=PYTHON, default=False)
def bench(session: nox.Session) -> None:
    """Handler throughput, synth time for 1/10/50 targets, no-op rebuild vs full build,
    measured side by side and printed as ratios (`-- --readme` writes them into README.md)."""
    install(session, "build", "synth", "serve")
    session.run("python", "-m", "benchmarks", *session.posargs, env=ENV)
