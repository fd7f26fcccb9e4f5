"""Test doubles for the operator's unit tests: a tiny Prometheus HTTP API and canned PromQL answers."""

from __future__ import annotations

import copy
import json
import re
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Responder = Callable[[str], tuple[int, dict]]


def vector(series: list[tuple[dict[str, str], float]], at: float = 1000.0) -> tuple[int, dict]:
    """A successful instant-vector answer, as Prometheus' HTTP API writes it (values are strings)."""
    result = [{"metric": labels, "value": [at, repr(float(v)) if v == v else "NaN"]} for labels, v in series]
    return 200, {"status": "success", "data": {"resultType": "vector", "result": result}}


class FakePrometheus:
    """Serves POST/GET /api/v1/query; records every query text it was sent."""

    def __init__(self, responder: Responder) -> None:
        self.responder = responder
        self.queries: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, params: dict[str, list[str]]) -> None:
                query = params.get("query", [""])[0]
                fake.queries.append(query)
                timeout = params.get("timeout", ["1s"])[0]
                if not re.fullmatch(r"([0-9]+(ms|s|m|h|d|w|y))+", timeout):  # Prometheus' duration syntax
                    status, payload = 400, {"status": "error", "errorType": "bad_data",
                                            "error": f'invalid parameter "timeout": cannot parse "{timeout}"'}
                else:
                    status, payload = fake.responder(query)
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                self._answer(urllib.parse.parse_qs(self.rfile.read(length).decode()))

            def do_GET(self) -> None:
                self._answer(urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query))

            def log_message(self, *args: object) -> None:  # keep test output clean
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def metric_of(self, query: str) -> str:
        m = re.search(r"\(([A-Za-z_:][A-Za-z0-9_:]*)\{", query)
        return m.group(1) if m else ""


@contextmanager
def fake_prometheus(responder: Responder) -> Iterator[FakePrometheus]:
    fake = FakePrometheus(responder)
    fake.thread.start()
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()


# --- a small in-memory Kubernetes API -------------------------------------------------------------------


class FakeApiError(Exception):
    pass


def _json_merge(into: dict, patch: dict) -> None:
    """RFC 7386: maps merge recursively, null deletes, anything else (lists included) replaces."""
    for k, v in patch.items():
        if v is None:
            into.pop(k, None)
        elif isinstance(v, dict) and isinstance(into.get(k), dict):
            _json_merge(into[k], v)
        else:
            into[k] = copy.deepcopy(v)


def _merge(into: dict, patch: dict) -> None:
    """Server-side-apply-like merge: maps merge, lists of named items merge by name, others replace."""
    for k, v in patch.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        elif (isinstance(v, list) and isinstance(into.get(k), list) and v and isinstance(v[0], dict)
              and "name" in v[0]):
            by_name = {item.get("name"): item for item in into[k]}
            for item in v:
                if item["name"] in by_name:
                    _merge(by_name[item["name"]], item)
                else:
                    into[k].append(copy.deepcopy(item))
        else:
            into[k] = copy.deepcopy(v)


class FakeKube:
    """Implements the :class:`controller.kube.Kube` surface over a dict of objects keyed by API path."""

    def __init__(self, minor: int = 34) -> None:
        from controller.kube import KubeSettings

        self.settings = KubeSettings(job_delete_timeout_s=1.0)
        self.objects: dict[str, dict] = {}
        self.calls: list[tuple[str, str, object]] = []
        self.events: list[dict] = []
        self.minor = minor
        self.fail_next: list[int] = []  # HTTP statuses to raise on the next writes

    # storage helpers
    def put(self, path: str, obj: dict) -> dict:
        self.objects[path] = copy.deepcopy(obj)
        return self.objects[path]

    def _raise(self, status: int) -> None:
        from kubernetes.client import ApiException

        raise ApiException(status=status, reason={404: "Not Found", 500: "Internal"}.get(status, "Error"))

    def _list(self, path: str) -> dict | None:
        if path == "/api/v1/pods":
            return {"items": [copy.deepcopy(o) for p, o in self.objects.items()
                              if re.fullmatch(r"/api/v1/namespaces/[^/]+/pods/[^/]+", p)]}
        if path == "/api/v1/nodes":
            return {"items": [copy.deepcopy(o) for p, o in self.objects.items()
                              if re.fullmatch(r"/api/v1/nodes/[^/]+", p)]}
        depth = path.count("/") + 1
        items = [copy.deepcopy(o) for p, o in self.objects.items() if p.startswith(path + "/")
                 and p.count("/") == depth]
        if items or re.search(r"/(pods|resourcequotas|horizontalpodautoscalers|configmaps|events)$", path):
            return {"items": items}
        return None

    # the Kube surface
    def get(self, path: str, **query):
        self.calls.append(("GET", path, query))
        if path in self.objects:
            return copy.deepcopy(self.objects[path])
        listing = self._list(path)
        if listing is None:
            self._raise(404)
        sel = query.get("labelSelector")
        if sel:
            want = dict(kv.split("=", 1) for kv in sel.split(","))
            listing["items"] = [o for o in listing["items"]
                                if want.items() <= o.get("metadata", {}).get("labels", {}).items()]
        return listing

    def _write(self, method: str, path: str, body) -> None:
        self.calls.append((method, path, copy.deepcopy(body)))
        if self.fail_next:
            self._raise(self.fail_next.pop(0))

    def apply(self, path: str, body: dict, force: bool = True):
        self._write("APPLY", path, body)
        if path.endswith("/status"):  # apply of the whole status by one manager: it replaces it
            base = self.objects.get(path[: -len("/status")])
            if base is None:
                self._raise(404)
            base["status"] = copy.deepcopy(body["status"])
            return copy.deepcopy(base)
        if path.endswith("/scale"):
            parent = self.objects[path[: -len("/scale")]]
            parent["spec"]["replicas"] = body["spec"]["replicas"]
            return body
        obj = self.objects.setdefault(path, {})
        _merge(obj, body)
        obj.setdefault("metadata", {}).setdefault("uid", f"uid-{len(self.objects)}")
        obj["metadata"]["generation"] = obj["metadata"].get("generation", 0) + 1
        return copy.deepcopy(obj)

    def merge_patch(self, path: str, body: dict, field_manager: str | None = None):
        self._write("MERGE", path, body)
        base = path[: -len("/status")] if path.endswith("/status") else path
        if base not in self.objects:
            self._raise(404)
        obj = self.objects[base]
        if path.endswith("/status"):
            for k, v in body.items():
                obj[k] = copy.deepcopy(v)  # a status merge patch replaces the status' top-level fields
        else:
            _json_merge(obj, body)
        return copy.deepcopy(obj)

    def strategic_patch(self, path: str, body: dict):
        self._write("RESIZE" if path.endswith("/resize") else "STRATEGIC", path, body)
        target = path[: -len("/resize")] if path.endswith("/resize") else path
        _merge(self.objects[target], body)
        return copy.deepcopy(self.objects[target])

    def request(self, method: str, path: str, body=None, query=None, content_type="application/json"):
        if method == "POST" and path.endswith("/events"):
            self.events.append(copy.deepcopy(body))
            return body
        if method == "DELETE":
            self._write("DELETE", path, body)
            if path not in self.objects:
                self._raise(404)
            del self.objects[path]
            return {}
        if method == "GET":
            return self.get(path, **(query or {}))
        raise NotImplementedError(f"{method} {path}")

    def server_minor_version(self) -> int:
        return self.minor

    # helpers for assertions
    def writes(self, kind: str | None = None) -> list[tuple[str, str, object]]:
        return [c for c in self.calls if c[0] != "GET" and (kind is None or c[0] == kind)]


def deployment(name="web", ns="ml", replicas=2, gpus=1, batch=8, cpu="500m", memory="1Gi", labels=None):
    labels = labels or {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}", "generation": 1},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": {"containers": [{
                     "name": "server", "image": "vllm:latest",
                     "env": [{"name": "MODEL", "value": "llama"},
                             {"name": "AUTOCM_BATCH_SIZE", "value": str(batch)}],
                     "resources": {"requests": {"cpu": cpu, "memory": memory, "nvidia.com/gpu": str(gpus)},
                                   "limits": {"memory": memory, "nvidia.com/gpu": str(gpus)}}}]}}},
    }


def node(name: str, gpus: int = 8) -> dict:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
            "status": {"allocatable": {"nvidia.com/gpu": str(gpus), "cpu": "112"}}}


def pod(name: str, ns: str, gpus: int, node_name: str | None, labels=None,
        pending_msg: str | None = None) -> dict:
    status: dict = {"phase": "Running" if node_name else "Pending"}
    if pending_msg:
        status["conditions"] = [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                 "message": pending_msg}]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
            "spec": {**({"nodeName": node_name} if node_name else {}),
                     "containers": [{"name": "server",
                                     "resources": {"requests": {"nvidia.com/gpu": str(gpus)}}}]},
            "status": status}
