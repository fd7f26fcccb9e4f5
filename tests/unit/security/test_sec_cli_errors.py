"""``autocm run`` and ``autocm push-checkpoint`` on bad input: one clear line, a non-zero exit, fast.

Before the fix a missing or malformed kubeconfig, a bad port or a checkpoint that is a JSON list
ended in a traceback, and an unreachable or unauthenticated apiserver was handed to kopf, which
retries forever. Now each case below must end with ``error: <what, where, what was expected>`` (or
click's own usage error naming the flag), a non-zero exit, no traceback, and within seconds. Each
case runs the real command in a subprocess (``python -m controller.run_cmd``), against a local fake
apiserver where it needs one.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from controller import checkpoint as ckpt
from controller.policy import parse
from controller.run_cmd import EXIT_ENVIRONMENT, EXIT_USAGE

REPO = Path(__file__).resolve().parents[3]
SPEC = {"targetRef": {"kind": "Deployment", "name": "web"},
        "objective": {"metric": "ttft_p99_seconds", "target": 0.5},
        "knobs": {"replicas": {"min": 1, "max": 8}}, "learner": {"name": "static"}}
VERSION = {"major": "1", "minor": "34", "gitVersion": "v1.34.4"}

Route = Callable[[str, str], tuple[int, object]]


def routes(version=(200, VERSION), group=(200, {"kind": "APIResourceList"}), policy=(200, {
        "metadata": {"name": "web", "namespace": "ml"}, "spec": SPEC}), configmap=(200, {})) -> Route:
    def answer(method: str, path: str) -> tuple[int, object]:
        if path == "/version":
            return version
        if path == "/apis/autocm.io/v1alpha1":
            return group
        if "/sizingpolicies/" in path:
            return policy
        if "/configmaps/" in path:
            return configmap
        return 404, {"kind": "Status", "code": 404, "reason": "NotFound"}

    return answer


@contextmanager
def fake_apiserver(route: Route) -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def _do(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            status, body = route(self.command, self.path.split("?")[0])
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PATCH = do_POST = _do

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def kubeconfig(tmp_path: Path, server: str) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(f"""apiVersion: v1
kind: Config
current-context: c
contexts: [{{name: c, context: {{cluster: k, user: u}}}}]
clusters: [{{name: k, cluster: {{server: "{server}"}}}}]
users: [{{name: u, user: {{token: abc}}}}]
""")
    return path


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(*args: str, timeout_s: float = 30.0) -> tuple[int, str, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
    env["PYTHONPATH"] = str(REPO)
    env["HOME"] = "/nonexistent-home"  # no ~/.kube/config to fall back on
    t0 = time.monotonic()
    got = subprocess.run([sys.executable, "-m", "controller.run_cmd", *args], capture_output=True, text=True,
                         timeout=timeout_s, env=env, cwd=REPO)
    return got.returncode, got.stdout + got.stderr, time.monotonic() - t0


def good_checkpoint(tmp_path: Path) -> Path:
    path = tmp_path / "ckpt.bin"
    path.write_bytes(ckpt.encode("static", parse(SPEC, "ml", "web").space, {}))
    return path


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


RUN = ["run", "--prometheus", "http://prometheus:9090", "--metrics-port", "0"]

# (case, how to build argv from (tmp_path, server url), route of the fake apiserver, exit, words in output)
Case = tuple[str, Callable[[Path, str], list[str]], Route | None, int, list[str]]
CASES: list[Case] = [
    # --- autocm run: the kubeconfig
    ("run: kubeconfig missing", lambda t, s: [*RUN, "--kubeconfig", str(t / "nope.yaml")], None, EXIT_USAGE,
     ["error: --kubeconfig", "nope.yaml: no such file"]),
    ("run: no kubeconfig at all", lambda t, s: RUN, None, EXIT_USAGE,
     ["error: kubeconfig (~/.kube/config)", "Invalid kube-config file"]),
    ("run: kubeconfig not YAML", lambda t, s: [*RUN, "--kubeconfig", str(write(t, "k", b": : :\n - ["))], None,
     EXIT_USAGE, ["error: --kubeconfig", "not YAML"]),
    ("run: kubeconfig empty map", lambda t, s: [*RUN, "--kubeconfig", str(write(t, "k", b"{}"))], None,
     EXIT_USAGE, ["error: --kubeconfig", "current-context"]),
    ("run: kubeconfig a list", lambda t, s: [*RUN, "--kubeconfig", str(write(t, "k", b"[1, 2]"))], None,
     EXIT_USAGE, ["error: --kubeconfig", "not a kubeconfig"]),
    ("run: kubeconfig binary", lambda t, s: [*RUN, "--kubeconfig", str(write(t, "k", bytes(range(256))))], None,
     EXIT_USAGE, ["error: --kubeconfig"]),
    ("run: kubeconfig context missing", lambda t, s: [*RUN, "--kubeconfig", str(write(
        t, "k", b"apiVersion: v1\nkind: Config\ncurrent-context: nope\ncontexts: []\nclusters: []\nusers: []\n"))],
     None, EXIT_USAGE, ["error: --kubeconfig", "nope"]),
    ("run: kubeconfig is a folder", lambda t, s: [*RUN, "--kubeconfig", str(t)], None, EXIT_USAGE,
     ["--kubeconfig", "is a directory"]),
    # --- autocm run: the apiserver
    ("run: apiserver unreachable", lambda t, s: [*RUN, "--kubeconfig", str(kubeconfig(
        t, f"http://127.0.0.1:{closed_port()}"))], None, EXIT_ENVIRONMENT, ["error: cannot reach the apiserver at"]),
    ("run: apiserver 401", lambda t, s: [*RUN, "--kubeconfig", str(kubeconfig(t, s))],
     routes(version=(401, {"kind": "Status", "code": 401, "reason": "Unauthorized"})), EXIT_ENVIRONMENT,
     ["error: the apiserver at", "refused our credentials", "401"]),
    ("run: apiserver 403", lambda t, s: [*RUN, "--kubeconfig", str(kubeconfig(t, s))],
     routes(group=(403, {"kind": "Status", "code": 403})), EXIT_ENVIRONMENT, ["refused our credentials", "403"]),
    ("run: not an apiserver", lambda t, s: [*RUN, "--kubeconfig", str(kubeconfig(t, s))],
     routes(version=(200, "<html>hello</html>")), EXIT_ENVIRONMENT, ["is not a Kubernetes apiserver"]),
    ("run: apiserver 500", lambda t, s: [*RUN, "--kubeconfig", str(kubeconfig(t, s))],
     routes(version=(500, {"kind": "Status", "code": 500})), EXIT_ENVIRONMENT, ["answered GET /version with 500"]),
    ("run: CRD not installed", lambda t, s: [*RUN, "--kubeconfig", str(kubeconfig(t, s))],
     routes(group=(404, {"kind": "Status", "code": 404})), EXIT_ENVIRONMENT,
     ["SizingPolicy CRD (autocm.io/v1alpha1) is not installed", "kubectl apply"]),
    # --- autocm run: flags
    ("run: metrics port too big", lambda t, s: ["run", "--prometheus", "http://p:9090", "--metrics-port", "70000"],
     None, EXIT_USAGE, ["--metrics-port", "70000"]),
    ("run: metrics port negative", lambda t, s: ["run", "--prometheus", "http://p:9090", "--metrics-port", "-1"],
     None, EXIT_USAGE, ["--metrics-port"]),
    ("run: metrics port not a number", lambda t, s: ["run", "--prometheus", "http://p:9090", "--metrics-port", "x"],
     None, EXIT_USAGE, ["--metrics-port", "'x' is not a valid integer"]),
    ("run: metrics port in use", lambda t, s: ["run", "--prometheus", "http://p:9090", "--kubeconfig",
                                                str(kubeconfig(t, s)), "--metrics-port", s.rsplit(":", 1)[1]],
     routes(), EXIT_USAGE, ["error: --metrics-port", "cannot listen"]),
    ("run: prometheus without scheme", lambda t, s: ["run", "--prometheus", "prometheus:9090"], None, EXIT_USAGE,
     ["--prometheus", "expected an http:// or https:// URL"]),
    ("run: prometheus with a space", lambda t, s: ["run", "--prometheus", "http://p:9090 x"], None, EXIT_USAGE,
     ["--prometheus"]),
    ("run: namespace with a slash", lambda t, s: [*RUN, "-n", "../kube-system"], None, EXIT_USAGE,
     ["--namespace", "is not a namespace name"]),
    ("run: interval 0", lambda t, s: [*RUN, "--interval", "0"], None, EXIT_USAGE, ["--interval"]),
    ("run: interval a year", lambda t, s: [*RUN, "--interval", "31536000"], None, EXIT_USAGE, ["--interval"]),
    ("run: interval nan", lambda t, s: [*RUN, "--interval", "nan"], None, EXIT_USAGE, ["--interval"]),
    ("run: peering name", lambda t, s: [*RUN, "--peering", "--peering-name", "A B"], None, EXIT_USAGE,
     ["--peering-name"]),
    ("run: peering lifetime 0", lambda t, s: [*RUN, "--peering-lifetime", "0"], None, EXIT_USAGE,
     ["--peering-lifetime"]),
    ("run: checkpoint-every 0", lambda t, s: [*RUN, "--checkpoint-every", "0"], None, EXIT_USAGE,
     ["--checkpoint-every"]),
    ("run: unknown flag", lambda t, s: [*RUN, "--frobnicate"], None, EXIT_USAGE, ["No such option", "--frobnicate"]),
    # --- autocm push-checkpoint: the file
    ("push: file missing", lambda t, s: ["push-checkpoint", str(t / "none"), "--policy", "web"], None, EXIT_USAGE,
     ["does not exist"]),
    ("push: file is a folder", lambda t, s: ["push-checkpoint", str(t), "--policy", "web"], None, EXIT_USAGE,
     ["is a directory"]),
    ("push: a JSON list", lambda t, s: ["push-checkpoint", str(write(t, "c", zlib.compress(b"[1, 2]"))),
                                        "--policy", "web"], None, EXIT_USAGE,
     ["error:", "not an autocm checkpoint (a JSON list, expected an object)"]),
    ("push: plain JSON", lambda t, s: ["push-checkpoint", str(write(t, "c", b'{"format": 1}')), "--policy", "web"],
     None, EXIT_USAGE, ["error:", "not an autocm checkpoint"]),
    ("push: empty file", lambda t, s: ["push-checkpoint", str(write(t, "c", b"")), "--policy", "web"], None,
     EXIT_USAGE, ["error:", "not an autocm checkpoint"]),
    ("push: too large", lambda t, s: ["push-checkpoint", str(write(t, "c", os.urandom(900_000))), "--policy", "web"],
     None, EXIT_USAGE, ["error:", "too large for a ConfigMap"]),
    ("push: a zlib bomb", lambda t, s: ["push-checkpoint", str(write(t, "c", zlib.compress(b"[" + b" " * 2**26 + b"]",
                                                                                           9))), "--policy", "web"],
     None, EXIT_USAGE, ["error:", "decompresses to more than"]),
    # --- autocm push-checkpoint: names and the cluster
    ("push: policy name with a slash", lambda t, s: ["push-checkpoint", str(good_checkpoint(t)), "--policy", "../x"],
     None, EXIT_USAGE, ["--policy", "is not a SizingPolicy name"]),
    ("push: namespace upper case", lambda t, s: ["push-checkpoint", str(good_checkpoint(t)), "--policy", "web",
                                                 "-n", "ML"], None, EXIT_USAGE, ["--namespace", "ML"]),
    ("push: configmap with a slash", lambda t, s: ["push-checkpoint", str(good_checkpoint(t)), "--policy", "web",
                                                   "--configmap", "a/b"], None, EXIT_USAGE, ["--configmap"]),
    ("push: kubeconfig missing", lambda t, s: ["push-checkpoint", str(good_checkpoint(t)), "--policy", "web",
                                               "--kubeconfig", str(t / "nope")], None, EXIT_USAGE,
     ["error: --kubeconfig", "no such file"]),
    ("push: apiserver unreachable", lambda t, s: ["push-checkpoint", str(good_checkpoint(t)), "--policy", "web",
                                                  "--kubeconfig", str(kubeconfig(t, f"http://127.0.0.1:{closed_port()}"))],
     None, EXIT_ENVIRONMENT, ["error: cannot reach the apiserver"]),
    ("push: apiserver 401", lambda t, s: ["push-checkpoint", str(good_checkpoint(t)), "--policy", "web",
                                          "--kubeconfig", str(kubeconfig(t, s))],
     routes(version=(401, {"kind": "Status", "code": 401})), EXIT_ENVIRONMENT, ["refused our credentials"]),
    ("push: policy not found", lambda t, s: ["push-checkpoint", str(good_checkpoint(t)), "--policy", "web", "-n",
                                             "ml", "--kubeconfig", str(kubeconfig(t, s))],
     routes(policy=(404, {"kind": "Status", "code": 404})), EXIT_ENVIRONMENT, ["error: SizingPolicy ml/web: 404"]),
    ("push: policy invalid", lambda t, s: ["push-checkpoint", str(good_checkpoint(t)), "--policy", "web", "-n", "ml",
                                           "--kubeconfig", str(kubeconfig(t, s))],
     routes(policy=(200, {"spec": {**SPEC, "paused": "no"}})), EXIT_USAGE,
     ["error: SizingPolicy ml/web is invalid: spec.paused: expected true or false"]),
    ("push: configmap write forbidden", lambda t, s: ["push-checkpoint", str(good_checkpoint(t)), "--policy", "web",
                                                      "-n", "ml", "--kubeconfig", str(kubeconfig(t, s))],
     routes(configmap=(403, {"kind": "Status", "code": 403})), EXIT_ENVIRONMENT,
     ["error: configmap/autocm-checkpoint-web in ml: 403"]),
]


@pytest.mark.parametrize(("argv", "route", "code", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line_and_a_non_zero_exit(tmp_path, argv, route, code, words):
    with fake_apiserver(route or routes()) as server:
        got, out, took = cli(*argv(tmp_path, server))
    assert got == code, out
    assert "Traceback" not in out and "internal error" not in out, out
    for w in words:
        assert w in out, out
    assert len([line for line in out.splitlines() if line.strip()]) <= 4, out  # click's usage + one line
    assert took < 20, f"took {took:.1f}s"


def test_a_good_push_reaches_the_apiserver(tmp_path):
    with fake_apiserver(routes()) as server:
        got, out, _ = cli("push-checkpoint", str(good_checkpoint(tmp_path)), "--policy", "web", "-n", "ml",
                          "--kubeconfig", str(kubeconfig(tmp_path, server)))
    assert got == 0 and "to configmap/autocm-checkpoint-web in ml" in out, out
