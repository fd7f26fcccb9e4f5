"""A fault-injecting HTTPS reverse proxy in front of the real kube-apiserver, for e2e tests.

The operator is given a kubeconfig that points at this proxy; the proxy forwards every request to
the real apiserver (as the e2e admin user) and streams the answer back, watches included, except
where a test asked for a fault: for the first N requests matching a method and a path pattern it
answers with a Kubernetes ``Status`` of the chosen code (409 Conflict, 429 Too Many Requests with
``Retry-After``, 500, 503, 404, ...). A fault either stops the request (``when="before"``: the
apiserver never sees it) or lets it through and replaces the answer (``when="after"``: the change
happened but the client never heard, the case where a retry could act twice). Every request is
recorded (method, path, when, the code the client got, whether it reached the apiserver), so a test
can count what the operator sent and what the apiserver actually received.

Why a proxy and not a fake: the retries, the idempotence of server-side apply and the fallbacks are
then checked against the apiserver's real answers, with only the fault itself made up.

A 404 on ``pods/<name>/resize`` is what a server without in-place resize answers (Kubernetes before
1.33, or 1.33+ with the ``InPlacePodVerticalScaling`` feature gate off): the subresource is not
registered, so the apiserver says "the server could not find the requested resource".
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
              "transfer-encoding", "upgrade", "content-length", "content-encoding", "host",
              "accept-encoding"}
"""Headers that describe one connection, not the message (RFC 9110 section 7.6.1), plus the body's
length and encoding, which the proxy re-frames (it asks the apiserver for uncompressed answers)."""

REASONS = {400: "BadRequest", 404: "NotFound", 409: "Conflict", 422: "Invalid", 429: "TooManyRequests",
           500: "InternalError", 503: "ServiceUnavailable", 504: "Timeout"}
MESSAGES = {404: "the server could not find the requested resource",
            409: "Operation cannot be fulfilled: the object has been modified; please apply your changes "
                 "to the latest version and try again",
            429: "Too many requests, please try again later.",
            500: "Internal error occurred: injected by the e2e fault proxy",
            503: "the server is currently unable to handle the request"}
"""The apiserver's own wording for these codes (k8s.io/apimachinery/pkg/api/errors)."""


@dataclass
class Fault:
    """Answer ``status`` to the first ``times`` requests whose method is ``method`` and whose path
    matches the regular expression ``path`` in full."""

    method: str
    path: str
    status: int
    times: int = 1
    when: str = "before"
    retry_after_s: int | None = None
    injected: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (self.injected < self.times and method == self.method.upper()
                and re.fullmatch(self.path, path) is not None)


@dataclass(frozen=True)
class Seen:
    """One request as the proxy handled it."""

    at_s: float
    method: str
    path: str
    query: str
    status: int
    forwarded: bool
    injected: bool


@dataclass
class FaultProxy:
    """``with FaultProxy.for_kubeconfig(kubeconfig, serving_cert, serving_key, work) as proxy:``"""

    upstream: str
    upstream_ssl: ssl.SSLContext
    serving_ssl: ssl.SSLContext
    kubeconfig_template: dict
    work: Path
    faults: list[Fault] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    port: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None

    @classmethod
    def for_kubeconfig(cls, kubeconfig: Path, serving_cert: Path, serving_key: Path, work: Path) -> FaultProxy:
        """A proxy to the cluster ``kubeconfig`` names, authenticating with its client certificate, and
        serving TLS with ``serving_cert`` (which must be valid for 127.0.0.1 and signed by the same CA)."""
        work.mkdir(parents=True, exist_ok=True)
        config = yaml.safe_load(kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        user = config["users"][0]["user"]
        files = {}
        for name, data in (("ca.crt", cluster["certificate-authority-data"]),
                           ("client.crt", user["client-certificate-data"]),
                           ("client.key", user["client-key-data"])):
            files[name] = work / name
            files[name].write_bytes(base64.b64decode(data))
        files["client.key"].chmod(0o600)
        upstream_ssl = ssl.create_default_context(cafile=str(files["ca.crt"]))
        upstream_ssl.load_cert_chain(str(files["client.crt"]), str(files["client.key"]))
        serving_ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        serving_ssl.load_cert_chain(str(serving_cert), str(serving_key))
        return cls(cluster["server"], upstream_ssl, serving_ssl, config, work)

    # --- what tests call ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def kubeconfig(self) -> Path:
        """The cluster's kubeconfig with the server replaced by this proxy (same CA, same user)."""
        config = json.loads(json.dumps(self.kubeconfig_template))
        config["clusters"][0]["cluster"]["server"] = self.url
        path = self.work / "kubeconfig"
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    def add(self, method: str, path: str, status: int, times: int = 1, when: str = "before",
            retry_after_s: int | None = None) -> Fault:
        if when not in ("before", "after"):
            raise ValueError(f"when must be 'before' or 'after', not {when!r}")
        fault = Fault(method, path, status, times, when, retry_after_s)
        with self._lock:
            self.faults.append(fault)
        return fault

    def requests(self, method: str, path: str, *, forwarded: bool | None = None,
                 injected: bool | None = None) -> list[Seen]:
        """The requests so far whose method and path (a regular expression, in full) match."""
        with self._lock:
            seen = list(self.seen)
        return [s for s in seen if s.method == method.upper() and re.fullmatch(path, s.path)
                and (forwarded is None or s.forwarded == forwarded)
                and (injected is None or s.injected == injected)]

    # --- lifecycle ----------------------------------------------------------------------------------
    def __enter__(self) -> FaultProxy:
        started = threading.Event()
        errors: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._start())
            except BaseException as exc:  # surfaced to the test thread below
                errors.append(exc)
                started.set()
                return
            started.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=serve, name="fault-proxy", daemon=True)
        self._thread.start()
        started.wait(timeout=30)
        if errors:
            raise errors[0]
        return self

    def __exit__(self, *_: object) -> None:
        if self._loop is not None and self._thread is not None:
            # Close open watches and connections in the loop first, then stop it.
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=15)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=15)

    async def _start(self) -> None:
        self._session = ClientSession(
            connector=TCPConnector(ssl=self.upstream_ssl),
            timeout=ClientTimeout(total=None, sock_connect=10, sock_read=None),
            auto_decompress=False)
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.serving_ssl)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def _stop(self) -> None:
        with contextlib.suppress(Exception):
            if self._runner is not None:
                await self._runner.cleanup()
        await self._session.close()

    # --- one request ----------------------------------------------------------------------------------
    def _fault_for(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    fault.injected += 1
                    return fault
        return None

    def _record(self, request: web.Request, status: int, forwarded: bool, injected: bool) -> None:
        with self._lock:
            self.seen.append(Seen(time.monotonic(), request.method, request.path, request.query_string,
                                  status, forwarded, injected))

    @staticmethod
    def _status_response(fault: Fault) -> web.Response:
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": MESSAGES.get(fault.status, f"injected {fault.status}"),
                "reason": REASONS.get(fault.status, "Unknown"), "code": fault.status}
        headers = {"Content-Type": "application/json"}
        if fault.retry_after_s is not None:
            headers["Retry-After"] = str(fault.retry_after_s)
        return web.Response(status=fault.status, body=json.dumps(body).encode(), headers=headers)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        fault = self._fault_for(request.method, request.path)
        if fault is not None and fault.when == "before":
            self._record(request, fault.status, forwarded=False, injected=True)
            return self._status_response(fault)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["Accept-Encoding"] = "identity"  # plain bytes back, so they can be re-framed as they come
        body = await request.read()
        async with self._session.request(request.method, self.upstream + request.path_qs, headers=headers,
                                         data=body if body else None, allow_redirects=False) as upstream:
            if fault is not None:  # "after": the apiserver acted, the client hears of a failure
                await upstream.read()
                self._record(request, fault.status, forwarded=True, injected=True)
                return self._status_response(fault)
            self._record(request, upstream.status, forwarded=True, injected=False)
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
            for k, v in upstream.headers.items():
                if k.lower() not in HOP_BY_HOP:
                    response.headers.add(k, v)
            await response.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)  # watches: each event as the apiserver sends it
            except (ConnectionResetError, asyncio.CancelledError):
                return response
            await response.write_eof()
            return response
