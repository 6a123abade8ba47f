"""A small Vertex AI REST (v1) client: requests + google-auth, long-running operations.

Paths and bodies follow google-cloud-aiplatform's REST transports
(aiplatform_v1/services/*/transports/rest_base.py) and the JSON mapping of the v1 protos.
Errors are google.rpc.Status (https://cloud.google.com/apis/design/errors), raised as
VertexError; `report` turns one into a diagnostic naming the attribute it is about.
"""

from __future__ import annotations

import ipaddress
import re
import sys
import threading
import time
from contextlib import contextmanager
from urllib.parse import quote, urlparse

_SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
# google.rpc.Code numbers, as an operation's `error.code` carries them.
_GRPC_CODES = {
    1: "CANCELLED",
    2: "UNKNOWN",
    3: "INVALID_ARGUMENT",
    4: "DEADLINE_EXCEEDED",
    5: "NOT_FOUND",
    6: "ALREADY_EXISTS",
    7: "PERMISSION_DENIED",
    8: "RESOURCE_EXHAUSTED",
    9: "FAILED_PRECONDITION",
    10: "ABORTED",
    11: "OUT_OF_RANGE",
    12: "UNIMPLEMENTED",
    13: "INTERNAL",
    14: "UNAVAILABLE",
    16: "UNAUTHENTICATED",
}
_RETRIED_HTTP = {429, 502, 503, 504}
STORAGE_API = "https://storage.googleapis.com"
# Set when Terraform asks the provider to stop (Ctrl-C): waits for operations end at once.
STOP = threading.Event()


def log(message: str) -> None:
    """Progress and notes go to stderr: stdout is Terraform's plugin handshake."""
    print(f"[eevertex] {message}", file=sys.stderr, flush=True)


class VertexError(Exception):
    """A Vertex AI error: HTTP status (or 0 for an operation), google.rpc status name, message."""

    def __init__(self, http_status: int, status: str, message: str, what: str = ""):
        super().__init__(f"{what + ': ' if what else ''}{status}: {message}")
        self.http_status = http_status
        self.status = status
        self.message = message
        self.what = what

    @property
    def not_found(self) -> bool:
        return self.status == "NOT_FOUND"


def is_loopback_http(url: str) -> bool:
    parsed = urlparse(url)
    if parsed.scheme != "http" or not parsed.hostname:
        return False
    if parsed.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parsed.hostname).is_loopback
    except ValueError:
        return False


def region_of(name: str) -> str:
    match = re.match(r"projects/[^/]+/locations/([^/]+)", name)
    if not match:
        raise ValueError(f"not a Vertex AI resource name: {name!r}")
    return match.group(1)


class Client:
    """One per configured provider; thread-safe (Terraform calls resources in parallel)."""

    def __init__(
        self, api_endpoint: str | None, credentials: str, operation_timeout: float, storage_endpoint: str | None = None
    ):
        self.api_endpoint = api_endpoint.rstrip("/") if api_endpoint else None
        self.storage_endpoint = (storage_endpoint or STORAGE_API).rstrip("/")
        self.credentials = credentials
        self.operation_timeout = operation_timeout
        self._session = None
        self._lock = threading.Lock()
        # A resource's `timeouts` for the call in progress; Terraform runs each call in a thread.
        self._local = threading.local()

    @contextmanager
    def deadline(self, seconds: float | None, attribute: str):
        """Bound everything in the block (requests and operation waits) by `seconds`, the
        resource's `timeouts.<attribute>`; None: each operation waits operation_timeout."""
        self._local.deadline = (time.monotonic() + seconds, attribute) if seconds else None
        try:
            yield
        finally:
            self._local.deadline = None

    def time_left(self) -> float | None:
        """Seconds left of the block's deadline (None: no deadline)."""
        deadline = getattr(self._local, "deadline", None)
        return None if deadline is None else deadline[0] - time.monotonic()

    def _remaining(self, what: str) -> float | None:
        deadline = getattr(self._local, "deadline", None)
        if deadline is None:
            return None
        left = deadline[0] - time.monotonic()
        if left <= 0:
            raise VertexError(
                0,
                "DEADLINE_EXCEEDED",
                f"{deadline[1]} ran out of time before it was done; "
                "what Vertex AI started goes on, and the next apply adopts what it made",
                what,
            )
        return left

    def _http(self):
        with self._lock:
            if self._session is None:
                if self.credentials == "none":
                    import requests

                    self._session = requests.Session()
                else:
                    import google.auth
                    from google.auth.exceptions import DefaultCredentialsError
                    from google.auth.transport.requests import AuthorizedSession

                    try:
                        if self.credentials == "application-default":
                            creds, _ = google.auth.default(scopes=_SCOPES)
                        else:  # a key file (service account or authorized user), as google-auth reads it
                            creds, _ = google.auth.load_credentials_from_file(self.credentials, scopes=_SCOPES)
                    except DefaultCredentialsError as error:
                        raise VertexError(
                            0,
                            "UNAUTHENTICATED",
                            f"no usable credentials ({error}); run `gcloud auth application-default login`, set "
                            "GOOGLE_APPLICATION_CREDENTIALS, or give credentials (or EEVERTEX_CREDENTIALS) a key "
                            "file",
                            "credentials",
                        ) from error
                    self._session = AuthorizedSession(creds)
            return self._session

    def access_token(self) -> str | None:
        """A fresh access token of the provider's credentials (None without credentials), for
        the registry's token exchange."""
        session = self._http()
        credentials = getattr(session, "credentials", None)
        if credentials is None:
            return None
        if not credentials.valid:
            from google.auth.transport.requests import Request

            credentials.refresh(Request())
        return credentials.token

    def base_url(self, region: str) -> str:
        return self.api_endpoint or f"https://{region}-aiplatform.googleapis.com"

    def request(
        self, method: str, path: str, *, body: dict | None = None, params: dict | None = None, what: str = ""
    ) -> dict:
        """One REST call on `path` (a resource name plus an optional `:verb`)."""
        url = f"{self.base_url(region_of(path))}/v1/{path}"
        delay = 1.0
        for attempt in range(4):
            left = self._remaining(what)
            try:
                response = self._http().request(
                    method, url, json=body, params=params, timeout=min(120.0, left) if left else 120
                )
            except OSError as error:  # connection refused/reset: retry reads only
                if method != "GET" or attempt == 3:
                    raise VertexError(0, "UNAVAILABLE", f"{method} {url}: {error}", what) from error
            else:
                if response.status_code < 400:
                    return response.json() if response.content else {}
                if response.status_code not in _RETRIED_HTTP or attempt == 3:
                    raise _error_from(response, what)
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def predict(self, endpoint: str, body: bytes, what: str) -> dict:
        """`POST v1/{endpoint}:predict` with a body as Earth Engine sends it (the bytes, not
        re-encoded); the PredictResponse (predictions, deployedModelId, ...). Not retried: a
        failed answer is the finding."""
        url = f"{self.base_url(region_of(endpoint))}/v1/{endpoint}:predict"
        left = self._remaining(what)
        try:
            response = self._http().request(
                "POST",
                url,
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=min(120.0, left) if left else 120,
            )
        except OSError as error:
            raise VertexError(0, "UNAVAILABLE", f"POST {url}: {error}", what) from error
        if response.status_code >= 400:
            raise _error_from(response, what)
        return response.json()

    def download(self, uri: str, what: str) -> bytes:
        """A Cloud Storage object's bytes (`gs://BUCKET/OBJECT`), by the JSON API's objects.get
        with `alt=media` (https://cloud.google.com/storage/docs/json_api/v1/objects/get)."""
        match = re.fullmatch(r"gs://([^/]+)/(.+)", uri)
        if not match:
            raise VertexError(0, "INVALID_ARGUMENT", f"{uri!r} is not gs://BUCKET/OBJECT", what)
        bucket, name = match.groups()
        url = f"{self.storage_endpoint}/storage/v1/b/{bucket}/o/{quote(name, safe='')}"
        left = self._remaining(what)
        try:
            response = self._http().request(
                "GET", url, params={"alt": "media"}, timeout=min(120.0, left) if left else 120
            )
        except OSError as error:
            raise VertexError(0, "UNAVAILABLE", f"GET {url}: {error}", what) from error
        if response.status_code >= 400:
            raise _error_from(response, what)
        return response.content

    def get(self, name: str, what: str = "") -> dict | None:
        """GET a resource; None when it does not exist."""
        try:
            return self.request("GET", name, what=what)
        except VertexError as error:
            if error.not_found:
                return None
            raise

    def operation(
        self, method: str, path: str, what: str, *, body: dict | None = None, params: dict | None = None
    ) -> dict:
        """Start a long-running operation and wait for it; returns its `response`."""
        op = self.request(method, path, body=body, params=params, what=what)
        return self.wait(op, what)

    def wait(self, op: dict, what: str) -> dict:
        started = time.monotonic()
        shown = 0.0
        interval = 0.2
        log(f"{what}: started ({op.get('name', 'operation')})")
        while not op.get("done"):
            elapsed = time.monotonic() - started
            self._remaining(what)
            if elapsed > self.operation_timeout and getattr(self._local, "deadline", None) is None:
                raise VertexError(
                    0,
                    "DEADLINE_EXCEEDED",
                    f"operation {op.get('name')} not done after {self.operation_timeout:.0f}s "
                    "(provider attribute operation_timeout_seconds); it may still finish: "
                    "the next apply adopts what it created",
                    what,
                )
            if STOP.is_set():
                raise VertexError(
                    0,
                    "CANCELLED",
                    f"interrupted: Terraform asked the provider to stop; operation {op.get('name')} goes on in "
                    "Vertex AI, and the next apply adopts (creates) or converges to what it made",
                    what,
                )
            if elapsed - shown >= 15:
                log(f"{what}: still running ({elapsed:.0f}s)")
                shown = elapsed
            STOP.wait(interval)
            interval = min(interval * 1.5, 10.0)
            op = self.request("GET", op["name"], what=what)
        if "error" in op:
            status = op["error"]
            code = status.get("code", 2)
            raise VertexError(0, _GRPC_CODES.get(code, str(code)), status.get("message", ""), what)
        log(f"{what}: done in {time.monotonic() - started:.1f}s")
        response = dict(op.get("response") or {})
        response.pop("@type", None)
        return response


def _error_from(response, what: str) -> VertexError:
    try:
        status = response.json()["error"]
        return VertexError(
            response.status_code, status.get("status") or str(status.get("code")), status.get("message", ""), what
        )
    except (ValueError, KeyError, TypeError):
        return VertexError(response.status_code, f"HTTP {response.status_code}", response.text[:500], what)


def report(diags, error: VertexError, fields: dict[str, str], fallback: str) -> None:
    """Add `error` to `diags`, on the attribute whose API field the message names (else fallback)."""
    attribute = fallback
    for api_field, name in fields.items():
        if re.search(rf"\b{re.escape(api_field)}\b", error.message):
            attribute = name
            break
    diags.add_error(
        f"Vertex AI: {error.what or 'request'} failed ({error.status})",
        f"{error.message}\n(attribute: {attribute})",
        path=[attribute],
    )
