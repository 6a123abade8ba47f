"""The registry end of the OCI distribution API (v1.1, "Push": a blob's `HEAD`, then `POST
/v2/<name>/blobs/uploads/` and a monolithic `PUT <location>?digest=`; the manifest's `PUT
/v2/<name>/manifests/<tag>`), which Artifact Registry speaks. Authentication: Artifact
Registry's docker token exchange (the registry answers 401 with `WWW-Authenticate: Bearer
realm=...`; the token comes from the realm for the user `oauth2accesstoken` and an access token
from the provider's credentials). Plain Python, like `client.py`: `image.py` wraps it as a resource.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

from provider.client import log

MANIFEST_TYPES = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.index.v1+json",
)


class RegistryError(Exception):
    pass


class Registry:
    """The registry end of the OCI distribution API, for one provider (thread-safe)."""

    def __init__(self, endpoint: str | None, token_source):
        self.endpoint = endpoint.rstrip("/") if endpoint else None
        self.token_source = token_source
        self._tokens: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def _url(self, host: str, path: str) -> str:
        return f"{self.endpoint or 'https://' + host}{path}"

    def request(self, method: str, host: str, path: str, scope: str, *, url: str | None = None, **kwargs):
        import requests

        headers = dict(kwargs.pop("headers", {}))
        token = self._tokens.get((host, scope))
        if token:
            headers["Authorization"] = f"Bearer {token}"
        response = requests.request(method, url or self._url(host, path), headers=headers, timeout=600, **kwargs)
        if response.status_code == 401 and "www-authenticate" in response.headers:
            self._tokens[(host, scope)] = self._token(response.headers["www-authenticate"], scope)
            headers["Authorization"] = f"Bearer {self._tokens[(host, scope)]}"
            seek = getattr(kwargs.get("data"), "seek", None)  # a file body: send it again from its start
            if seek is not None:
                seek(0)
            response = requests.request(method, url or self._url(host, path), headers=headers, timeout=600, **kwargs)
        return response

    def _token(self, challenge: str, scope: str) -> str:
        """Docker's token authentication (distribution's docs/spec/auth/token.md), as Artifact
        Registry implements it: the realm gives a token for `oauth2accesstoken` and an access token."""
        import requests

        fields = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        if not challenge.lower().startswith("bearer") or "realm" not in fields:
            raise RegistryError(f"the registry asks for an authentication this provider does not speak: {challenge}")
        access = self.token_source()
        if not access:
            raise RegistryError('the registry needs credentials, and the provider has none (credentials = "none")')
        params = {"scope": scope, **({"service": fields["service"]} if "service" in fields else {})}
        answer = requests.get(fields["realm"], params=params, auth=("oauth2accesstoken", access), timeout=60)
        if answer.status_code != 200:
            raise RegistryError(
                f"the registry's token service ({fields['realm']}) answered HTTP {answer.status_code}: "
                f"{answer.text[:300]}"
            )
        body = answer.json()
        return body.get("token") or body.get("access_token")

    def exists(self, host: str, path: str, digest: str) -> bool:
        response = self.request(
            "HEAD",
            host,
            f"/v2/{path}/manifests/{digest}",
            f"repository:{path}:pull",
            headers={"Accept": ",".join(MANIFEST_TYPES)},
        )
        if response.status_code == 404:
            return False
        if response.status_code != 200:
            raise RegistryError(f"HEAD {path}@{digest}: HTTP {response.status_code}")
        return True

    def push(self, host: str, path: str, layout: Path, digest: str, tag: str) -> None:
        scope = f"repository:{path}:pull,push"
        blobs = layout / "blobs" / "sha256"
        manifest_bytes = (blobs / digest.split(":", 1)[1]).read_bytes()
        manifest = json.loads(manifest_bytes)
        for blob in [manifest["config"], *manifest.get("layers", [])]:
            self._push_blob(host, path, scope, blob["digest"], blobs / blob["digest"].split(":", 1)[1])
        media_type = manifest.get("mediaType") or MANIFEST_TYPES[0]
        response = self.request(
            "PUT", host, f"/v2/{path}/manifests/{tag}", scope, data=manifest_bytes, headers={"Content-Type": media_type}
        )
        if response.status_code not in (200, 201):
            raise RegistryError(f"PUT {path}:{tag}: HTTP {response.status_code}: {response.text[:300]}")
        pushed = response.headers.get("Docker-Content-Digest")
        if pushed and pushed != digest:
            raise RegistryError(f"the registry stored {path}:{tag} as {pushed}, not {digest}")

    def _push_blob(self, host: str, path: str, scope: str, digest: str, file: Path) -> None:
        if self.request("HEAD", host, f"/v2/{path}/blobs/{digest}", scope).status_code == 200:
            return
        started = self.request("POST", host, f"/v2/{path}/blobs/uploads/", scope)
        if started.status_code != 202 or "Location" not in started.headers:
            raise RegistryError(
                f"starting the upload of {digest[:19]} to {path}: HTTP {started.status_code}: {started.text[:300]}"
            )
        location = started.headers["Location"]
        if location.startswith("/"):
            location = self._url(host, location)
        log(f"pushing {digest[:19]} ({file.stat().st_size / 1e6:.0f} MB) to {host}/{path}")
        with file.open("rb") as data:
            done = self.request(
                "PUT",
                host,
                "",
                scope,
                url=location,
                params={"digest": digest},
                data=data,
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(file.stat().st_size)},
            )
        if done.status_code != 201:
            raise RegistryError(f"uploading {digest[:19]} to {path}: HTTP {done.status_code}: {done.text[:300]}")
