"""Start the local GCS (gcp-storage-emulator), container registry and Vertex AI emulators as
child processes.

The registry stands in for Artifact Registry: Debian's `docker-registry` (the CNCF
distribution registry) on a loopback port, images pushed to `127.0.0.1:PORT/<project>/<repo>`
by digest (`serving.image.push`), and a containers-registries.conf that makes every
`<region>-docker.pkg.dev` pull come from it, so the emulator runs a model's image by the very
name the stacks upload.

`python -m rehearsal.emulators [--workdir DIR] [--offline-google]` starts both, prints the
variables that point synthesized stacks at them (our provider's, and the google provider's own),
and runs until Ctrl-C: a plan or apply by hand against them needs nothing else. With
`--offline-google`, where the google provider cannot be downloaded, it also writes a Terraform
CLI config taking ours and the stand-in google provider (rehearsal/google_standin) from a
filesystem mirror, and prints TF_CLI_CONFIG_FILE for it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from config.images import registry_host
from config.regions import PREDICTION_REGIONS
from serving.local import free_port, http_json, registry_mirror_conf

ROOT = Path(__file__).resolve().parent.parent


class Emulators:
    """GCS on one loopback port, Vertex AI on another; state under `workdir`."""

    def __init__(self, workdir: Path, *, project_numbers: bool = False, serving: bool = True):
        self.workdir = workdir.resolve()
        self.project_numbers = project_numbers
        self.serving = serving
        self.gcs_port = free_port()
        self.vertex_port = free_port()
        self.registry_port = free_port()
        self.gcs: subprocess.Popen | None = None
        self.vertex: subprocess.Popen | None = None
        self.registry: subprocess.Popen | None = None
        self.registries_conf: Path | None = None

    @property
    def gcs_url(self) -> str:
        return f"http://127.0.0.1:{self.gcs_port}"

    @property
    def vertex_url(self) -> str:
        return f"http://127.0.0.1:{self.vertex_port}"

    @property
    def registry_host(self) -> str:
        """Where images are pushed: `<this>/<project>/<repository>/<name>`."""
        return f"127.0.0.1:{self.registry_port}"

    def start_registry(self) -> None:
        """A loopback registry, and the registries.conf that mirrors Artifact Registry to it;
        skipped (no registry, so no images of ours run) where docker-registry is missing."""
        import shutil

        program = shutil.which("docker-registry")
        if not program:
            return
        config = self.workdir / "registry.yml"
        config.write_text(
            f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {self.workdir / 'registry'}\n"
            f"http:\n  addr: 127.0.0.1:{self.registry_port}\nlog:\n  level: warn\n"
        )
        self.registry = self._spawn("registry", [program, "serve", str(config)])
        self._wait(f"http://{self.registry_host}/v2/", self.registry)
        self.registries_conf = registry_mirror_conf(
            self.workdir, {registry_host(region): self.registry_host for region in PREDICTION_REGIONS}
        )

    def __enter__(self) -> Emulators:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.gcs = self._spawn(
            "gcs",
            [
                sys.executable,
                "-m",
                "gcp_storage_emulator",
                "-d",
                str(self.workdir / "gcs"),
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.gcs_port),
                "-q",
            ],
        )
        self._wait(f"{self.gcs_url}/storage/v1/b?project=rehearsal", self.gcs)
        self.start_registry()
        self.start_vertex()
        return self

    def start_vertex(self) -> None:
        self.vertex = self._spawn(
            "vertex",
            [
                sys.executable,
                "-m",
                "rehearsal.vertex_emulator",
                "--port",
                str(self.vertex_port),
                "--data-dir",
                str(self.workdir / "vertex"),
                "--storage",
                self.gcs_url,
                *(["--project-numbers"] if self.project_numbers else []),
                *([] if self.serving else ["--no-serving"]),
                *(["--registries-conf", str(self.registries_conf)] if self.registries_conf else []),
            ],
        )
        self._wait(f"{self.vertex_url}/emulator/health", self.vertex, timeout=300)

    def stop_vertex(self) -> None:
        _stop(self.vertex)
        self.vertex = None

    def restart_vertex(self) -> None:
        self.stop_vertex()
        self.start_vertex()

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        with open(self.workdir / f"{name}.log", "a") as log:  # the child keeps its own copy of the descriptor
            return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def _wait(self, url: str, process: subprocess.Popen, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"emulator exited ({process.returncode}); see {self.workdir}/*.log")
            try:
                if http_json(url, timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{url} did not answer in {timeout:.0f}s")

    def environment(self) -> dict[str, str]:
        """What points the synthesized stacks at these emulators, unchanged: our provider's
        variables, and those the google provider reads (its registry docs, "Provider Reference":
        storage_custom_endpoint, vertex_ai_custom_endpoint, artifact_registry_custom_endpoint,
        resource_manager_custom_endpoint, big_query_custom_endpoint (google/services/bigquery/
        product.go), monitoring_custom_endpoint, access_token)."""
        return {
            "EEVERTEX_API_ENDPOINT": self.vertex_url,
            "EEVERTEX_CREDENTIALS": "none",
            "EEVERTEX_STORAGE_ENDPOINT": self.gcs_url,
            **({"EEVERTEX_REGISTRY_ENDPOINT": f"http://{self.registry_host}"} if self.registry else {}),
            "GOOGLE_STORAGE_CUSTOM_ENDPOINT": f"{self.gcs_url}/storage/v1/",
            "GOOGLE_VERTEX_AI_CUSTOM_ENDPOINT": f"{self.vertex_url}/v1/",
            "GOOGLE_ARTIFACT_REGISTRY_CUSTOM_ENDPOINT": f"{self.vertex_url}/artifactregistry/v1/",
            "GOOGLE_RESOURCE_MANAGER_CUSTOM_ENDPOINT": f"{self.vertex_url}/cloudresourcemanager/v1/",
            "GOOGLE_BIG_QUERY_CUSTOM_ENDPOINT": f"{self.vertex_url}/bigquery/v2/",
            "GOOGLE_MONITORING_CUSTOM_ENDPOINT": f"{self.vertex_url}/monitoring/",
            "GOOGLE_OAUTH_ACCESS_TOKEN": "emulator",
        }

    def fault(self, **faults: str) -> None:
        status, body = http_json(f"{self.vertex_url}/emulator/faults", faults)
        assert status == 200, body

    def hold(self, method: str, resource: str) -> None:
        """Hold the answer to the next `method` call on a resource whose name holds `resource`,
        once it has taken effect, until `release()`."""
        status, body = http_json(f"{self.vertex_url}/emulator/hold", {"method": method, "resource": resource})
        assert status == 200, body

    def held(self) -> bool:
        return bool(self._emulator_json("hold").get("held"))

    def release(self) -> None:
        status, body = http_json(f"{self.vertex_url}/emulator/release", {})
        assert status == 200, body

    def _emulator_json(self, what: str) -> dict:
        """GET /emulator/<what> of the Vertex AI emulator: its JSON object."""
        status, body = http_json(f"{self.vertex_url}/emulator/{what}")
        if not isinstance(body, dict):
            raise RuntimeError(f"emulator /emulator/{what} answered HTTP {status}, not a JSON object: {body[:200]!r}")
        return body

    def calls(self) -> dict[str, int]:
        return self._emulator_json("calls")

    def journal(self) -> list[dict]:
        """Every mutating Vertex AI call so far, in order: method, resource, detail."""
        return self._emulator_json("journal")["journal"]

    def traffic(self) -> list[dict]:
        """After every change of an endpoint, in order: `endpoint`, `at`, and `serving`, the
        deployed models that take its traffic (empty: nothing served at that instant)."""
        return self._emulator_json("traffic")["traffic"]

    def state(self) -> dict:
        """The Vertex AI emulator's whole state (models, endpoints, operations)."""
        return self._emulator_json("state")

    def __exit__(self, *exc) -> None:
        _stop(self.vertex)
        _stop(self.gcs)
        _stop(self.registry)


def _stop(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import shlex

    parser = argparse.ArgumentParser(
        prog="python -m rehearsal.emulators", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workdir", type=Path, default=Path(".emulators"), help="state and logs (kept)")
    parser.add_argument(
        "--offline-google",
        action="store_true",
        help="also install the stand-in google provider and print TF_CLI_CONFIG_FILE",
    )
    args = parser.parse_args(argv)
    with Emulators(args.workdir) as emulators:
        env = emulators.environment()
        if args.offline_google:
            from rehearsal.google_standin import install_with_eevertex
            from rehearsal.prerequisites import provider_python

            env["TF_CLI_CONFIG_FILE"] = str(
                install_with_eevertex(
                    args.workdir / "provider-mirror", args.workdir / "terraform.rc", str(provider_python())
                )
            )
        print(
            f"# GCS emulator {emulators.gcs_url}, Vertex AI emulator {emulators.vertex_url}; state and logs in "
            f"{emulators.workdir}. In the shell that runs terraform:"
        )
        for name, value in env.items():
            print(f"export {name}={shlex.quote(value)}")
        print("# ready; Ctrl-C stops them", flush=True)
        signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop them on SIGTERM too
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
