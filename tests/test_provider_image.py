"""eevertex_image through real Terraform: our serving image pushed by digest from the build's
OCI layout into a registry (Debian's docker-registry on a loopback port here), an empty plan
after, drift when the registry loses it, and a destroy that keeps it; and Artifact Registry's
token exchange, against a registry that asks for it."""

from __future__ import annotations

import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from provider_support import Workspace, changes, emulators  # noqa: F401

pytestmark = pytest.mark.slow
REPOSITORY = "us-central1-docker.pkg.dev/acme-dev/ee-serving"


@pytest.fixture(scope="module")
def image():
    """A small real image layout: the Debian base the image builds start from, as a layout."""
    from config.images import OWN_IMAGES
    from serving import image as images

    try:
        images.builder()
    except images.ImageError as error:
        pytest.skip(f"SKIPPED: {error}")
    return images.build_image(OWN_IMAGES[("pytorch", "cpu")], log=lambda *_: None)


def manifest_in(registry_host: str, name: str, reference: str) -> int:
    request = urllib.request.Request(
        f"http://{registry_host}/v2/acme-dev/ee-serving/{name}/manifests/{reference}",
        method="HEAD",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.fixture(scope="module")
def workspace(emulators, provider_cli_config, image, tmp_path_factory):  # noqa: F811
    from serving.image import ROOT

    if emulators.registry is None:
        pytest.skip("SKIPPED: docker-registry is not installed (the loopback registry)")
    ws = Workspace(tmp_path_factory.mktemp("image"), provider_cli_config, emulators.vertex_url)
    body = {
        "repository": REPOSITORY,
        "name": image.name,
        "digest": image.digest,
        "tag": image.tag,
        "source": str(ROOT / image.layout),
    }
    ws.write(
        {"eevertex_image": {"image": body}},
        provider={
            "api_endpoint": emulators.vertex_url,
            "credentials": "none",
            "registry_endpoint": f"http://{emulators.registry_host}",
        },
    )
    ws.init()
    return ws, body


def test_the_image_is_pushed_by_digest_and_then_the_plan_is_empty(workspace, emulators, image):  # noqa: F811
    ws, _ = workspace
    assert changes(ws.plan()) == {"eevertex_image.image": ["create"]}
    ws.apply()
    assert manifest_in(emulators.registry_host, image.name, image.digest) == 200
    assert manifest_in(emulators.registry_host, image.name, image.tag) == 200
    assert ws.state("eevertex_image.image")["id"] == f"{REPOSITORY}/{image.name}@{image.digest}"
    assert changes(ws.plan()) == {}


def test_a_moved_layout_is_an_in_place_change_that_pushes_nothing(workspace, image, tmp_path):
    ws, body = workspace
    import shutil

    moved = tmp_path / "layout"
    shutil.copytree(body["source"], moved)
    ws.write(
        {"eevertex_image": {"image": {**body, "source": str(moved)}}},
        provider=json.loads((ws.path / "main.tf.json").read_text())["provider"]["eevertex"],
    )
    assert changes(ws.plan()) == {"eevertex_image.image": ["update"]}
    ws.apply()
    ws.write(
        {"eevertex_image": {"image": body}},
        provider=json.loads((ws.path / "main.tf.json").read_text())["provider"]["eevertex"],
    )
    ws.apply()


def test_a_digest_not_in_the_layout_is_refused_before_anything_is_pushed(workspace, emulators, image):  # noqa: F811
    ws, body = workspace
    other = "sha256:" + "0" * 64
    provider = json.loads((ws.path / "main.tf.json").read_text())["provider"]["eevertex"]
    ws.write({"eevertex_image": {"image": body, "other": {**body, "digest": other}}}, provider=provider)
    result = ws.tf("apply", "-input=false", "-no-color", "-auto-approve", ok=False)
    assert f"does not hold {other}: the image is not built here" in result.stderr
    assert manifest_in(emulators.registry_host, image.name, other) == 404
    ws.write({"eevertex_image": {"image": body}}, provider=provider)
    ws.apply()


def test_a_bad_digest_is_a_plan_time_error(workspace):
    ws, body = workspace
    provider = json.loads((ws.path / "main.tf.json").read_text())["provider"]["eevertex"]
    ws.write({"eevertex_image": {"image": {**body, "digest": "latest"}}}, provider=provider)
    assert "digest: 'latest'; allowed: 'sha256:' and 64 lowercase hex digits" in ws.plan_error()
    ws.write({"eevertex_image": {"image": body}}, provider=provider)


def test_destroy_keeps_the_image_in_the_registry(workspace, emulators, image):  # noqa: F811
    ws, _ = workspace
    ws.destroy()
    assert manifest_in(emulators.registry_host, image.name, image.digest) == 200


class TokenRegistry(BaseHTTPRequestHandler):
    """A registry that asks for Docker token authentication, as Artifact Registry does."""

    seen: ClassVar[list] = []

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self.seen.append((self.path, self.headers.get("Authorization")))
        if self.path.startswith("/token"):
            return self.send_response(405)
        if self.headers.get("Authorization") != "Bearer registry-token":
            self.send_response(401)
            self.send_header(
                "WWW-Authenticate",
                f'Bearer realm="http://127.0.0.1:{self.server.server_port}/token",service="us-central1-docker.pkg.dev"',
            )
            self.end_headers()
            return
        self.send_response(200)
        self.end_headers()

    def do_GET(self):
        self.seen.append((self.path, self.headers.get("Authorization")))
        import base64

        expected = "Basic " + base64.b64encode(b"oauth2accesstoken:adc-access-token").decode()
        ok = self.path.startswith("/token") and self.headers.get("Authorization") == expected
        data = json.dumps({"token": "registry-token"}).encode() if ok else b"{}"
        self.send_response(200 if ok else 403)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_artifact_registrys_token_exchange():
    from provider.registry import Registry

    server = ThreadingHTTPServer(("127.0.0.1", 0), TokenRegistry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        registry = Registry(f"http://127.0.0.1:{server.server_port}", lambda: "adc-access-token")
        assert registry.exists(
            "us-central1-docker.pkg.dev", "acme-dev/ee-serving/ee-serving-pytorch-cpu", "sha256:" + "a" * 64
        )
    finally:
        server.shutdown()
    token_call = next(path for path, _ in TokenRegistry.seen if path.startswith("/token"))
    assert "scope=repository%3Aacme-dev%2Fee-serving%2Fee-serving-pytorch-cpu%3Apull" in token_call
    assert "service=us-central1-docker.pkg.dev" in token_call
    assert TokenRegistry.seen[-1][1] == "Bearer registry-token"
