"""Fixtures that run real Kubernetes control-plane components, kwok and Prometheus for e2e tests.

Our machines have no Docker, so there is no kind cluster: like controller-runtime's envtest we run
etcd and kube-apiserver as local processes (loopback only, RBAC, a throw-away PKI), add
kube-controller-manager and kube-scheduler so Deployments really get pods scheduled, and let kwok
play kubelet for nodes annotated ``kwok.x-k8s.io/node: fake``. Those nodes advertise
``nvidia.com/gpu``, so the scheduler does the same GPU bin-packing it does on a real GPU cluster.
The binaries come from ``scripts/e2e-tools.sh`` (``make e2e-tools``); docs/e2e.md explains it all.

Every test under tests/e2e carries the ``e2e`` marker. Missing tools make the fixtures FAIL, never
skip: CI runs ``make test``, which builds them first, so a skip would only hide a broken build.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import datetime
import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import kubernetes
import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

E2E_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class E2ESettings:
    """Every knob of the e2e environment, with where its default comes from."""

    # Two nodes: enough to tell "spread over nodes" from "fits on no single node".
    gpu_node_count: int = 2
    # An HGX/DGX H100 server carries 8 GPUs (NVIDIA DGX H100 datasheet).
    gpus_per_node: int = 8
    # DGX H100: 2x Xeon Platinum 8480C (2x56 cores) and 2 TB of memory (same datasheet).
    node_cpu: str = "112"
    node_memory: str = "2Ti"
    # The kubelet's default --max-pods.
    node_max_pods: str = "110"
    # The value NVIDIA GPU feature discovery writes into nvidia.com/gpu.product on an H100 SXM node.
    gpu_product: str = "NVIDIA-H100-80GB-HBM3"
    # The annotation kwok is told to manage (kwok's docs use exactly this key and value).
    kwok_annotation_key: str = "kwok.x-k8s.io/node"
    kwok_annotation_value: str = "fake"
    # controller-runtime envtest's default service range.
    service_cluster_ip_range: str = "10.0.0.0/24"
    # Cold start on 2 shared cores: etcd ~1 s, kube-apiserver 5-20 s; generous so CI is not flaky.
    startup_timeout_s: float = 120.0
    # SIGTERM grace before SIGKILL; Go servers stop within a second or two.
    stop_timeout_s: float = 10.0
    # Fast scrapes so a test sees its samples within seconds (Prometheus' default is 1m).
    prometheus_scrape_interval: str = "1s"
    # kwok renews a Lease per node (as a kubelet does, kubelet's default nodeLeaseDurationSeconds is 40);
    # the node lifecycle controller reads a renewed lease as the node's heartbeat.
    node_lease_duration_s: int = 40
    # How late a heartbeat may be before the node lifecycle controller marks the node Unknown and taints it
    # node.kubernetes.io/unreachable (kube-controller-manager's default is 50 s). On a loaded 2-core machine
    # kwok's heartbeats were late by more than that, and a test then saw a tainted node. No e2e test is about
    # node failure detection, so the fake nodes are given ten minutes.
    node_monitor_grace_period: str = "10m"
    # How long a test may wait for the previous test's pods to be gone, and for the GPU nodes to be Ready
    # and untainted, before it starts: on a busy machine the namespace controller and kwok lag.
    isolation_timeout_s: float = 120.0


SETTINGS = E2ESettings()

# Component name -> log file, for the failure report (see pytest_runtest_makereport).
_COMPONENT_LOGS: dict[str, Path] = {}


# --------------------------------------------------------------------------------------------
# pytest hooks
# --------------------------------------------------------------------------------------------


def _is_e2e(item: pytest.Item) -> bool:
    return E2E_DIR in Path(str(item.path)).resolve().parents


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark everything under tests/e2e as ``e2e`` so ``-m 'not e2e'`` deselects it in one go."""
    for item in items:
        if _is_e2e(item):
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    """On a failed e2e test, print where each component's log is: that is where the cause is."""
    outcome = yield
    report = outcome.get_result()
    if report.failed and _is_e2e(item) and _COMPONENT_LOGS:
        lines = [f"{name:<24} {path}" for name, path in _COMPONENT_LOGS.items()]
        report.sections.append(("e2e component logs", "\n".join(lines)))


# --------------------------------------------------------------------------------------------
# Tools
# --------------------------------------------------------------------------------------------

TOOL_NAMES = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "helm",
    "training-operator",
    "pytorchjobs-crd.yaml",
    "prometheus",
    "dashboard-linter",
)


@dataclass(frozen=True)
class E2ETools:
    """Paths of the binaries that scripts/e2e-tools.sh installed."""

    bin_dir: Path

    def path(self, name: str) -> Path:
        return self.bin_dir / name


def tools_bin_dir() -> Path:
    """Where e2e-tools.sh links the tools: $AUTOCM_E2E_BIN, $AUTOCM_CACHE/bin or ~/.cache/autocm/bin."""
    if explicit := os.environ.get("AUTOCM_E2E_BIN"):
        return Path(explicit)
    cache = os.environ.get("AUTOCM_CACHE", str(Path.home() / ".cache" / "autocm"))
    return Path(cache) / "bin"


def find_tools() -> E2ETools:
    """Fails (never skips) when a tool is missing: a skip would let a broken build pass CI."""
    bin_dir = tools_bin_dir()
    missing = [n for n in TOOL_NAMES if not os.access(bin_dir / n, os.R_OK if n.endswith(".yaml") else os.X_OK)]
    if missing:
        pytest.fail(
            f"e2e tools missing from {bin_dir}: {', '.join(missing)}. "
            "Build them with `make e2e-tools` (scripts/e2e-tools.sh; 15-30 min cold, seconds when cached).",
            pytrace=False,
        )
    return E2ETools(bin_dir)


@pytest.fixture(scope="session")
def e2e_tools() -> E2ETools:
    return find_tools()


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------


class ComponentError(RuntimeError):
    """A component died or never became ready; the message carries the tail of its log."""


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM the child if pytest dies (even by SIGKILL), so no server outlives CI."""
    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "<no log>"


@dataclass
class Component:
    """One server process with its log file, started in its own process group."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: dict[str, str] | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> None:
        _COMPONENT_LOGS[self.name] = self.log_path
        with self.log_path.open("wb") as log:
            log.write(("$ " + " ".join(self.argv) + "\n").encode())
            log.flush()
            self.process = subprocess.Popen(
                list(self.argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise ComponentError(
                f"{self.name} exited with code {self.process.returncode}; log {self.log_path}:\n"
                + _log_tail(self.log_path)
            )

    def stop(self, timeout_s: float = SETTINGS.stop_timeout_s) -> None:
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout_s)


def wait_until(
    predicate: Callable[[], bool],
    *,
    what: str,
    timeout_s: float,
    watch: Sequence[Component] = (),
    interval_s: float = 0.2,
) -> None:
    """Polls ``predicate`` until true; fails early, with the log, if a watched component dies."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        for component in watch:
            component.check_alive()
        try:
            if predicate():
                return
        except Exception as exc:  # readiness probes fail in many ways while a server starts
            last_error = exc
        time.sleep(interval_s)
    logs = "\n".join(f"--- {c.name} ({c.log_path}):\n{_log_tail(c.log_path)}" for c in watch)
    raise ComponentError(
        f"timed out after {timeout_s:.0f} s waiting for {what} (last error: {last_error})\n{logs}"
    )


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A loopback port that is free now and that this session has not handed out before.

    Still racy against other processes, but no longer against ourselves: a test that takes two ports before
    starting either server (Prometheus' port, then the emulator's) could get the same one twice, since the
    port is free again once the probe socket closes. That happened in CI on 2026-12-07: the emulator died
    with "Address already in use" behind a private Prometheus on its port, and the test timed out waiting
    for metrics."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError("no fresh loopback port after 100 tries")


def http_get(url: str, context: ssl.SSLContext | None = None, timeout_s: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s, context=context) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as err:
        return int(err.code), err.read()


def _insecure_context() -> ssl.SSLContext:
    """For the self-signed health endpoints of the controller manager and scheduler only."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


# --------------------------------------------------------------------------------------------
# PKI: a throw-away CA, the apiserver's serving cert, an admin client cert, the SA signing key
# --------------------------------------------------------------------------------------------

ADMIN_USER = "autocm-e2e-admin"
ADMIN_GROUP = "system:masters"  # bypasses RBAC, as envtest's admin user does


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    sa_key: Path
    sa_pub: Path


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _certificate(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    *,
    usage: x509.ObjectIdentifier | None,
    sans: Sequence[x509.GeneralName] = (),
) -> x509.Certificate:
    """Self-signed CA when ``issuer`` is None, else a leaf for ``usage`` (server or client auth)."""
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    signer = issuer[1] if issuer else key
    return builder.sign(signer, hashes.SHA256())


def write_pki(directory: Path) -> Pki:
    """Generates the keys envtest generates at start; EC P-256 keeps it to a few milliseconds."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "autocm-e2e-ca")]), ca_key, None, usage=None
    )
    serving_key = ec.generate_private_key(ec.SECP256R1())
    serving = _certificate(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]),
        serving_key,
        (ca, ca_key),
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        sans=[
            x509.DNSName("localhost"),
            x509.DNSName("kubernetes.default.svc"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        ],
    )
    admin_key = ec.generate_private_key(ec.SECP256R1())
    admin = _certificate(
        x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, ADMIN_GROUP),
                x509.NameAttribute(NameOID.COMMON_NAME, ADMIN_USER),
            ]
        ),
        admin_key,
        (ca, ca_key),
        usage=ExtendedKeyUsageOID.CLIENT_AUTH,
    )
    sa_key = ec.generate_private_key(ec.SECP256R1())

    pki = Pki(
        ca_cert=directory / "ca.crt",
        serving_cert=directory / "apiserver.crt",
        serving_key=directory / "apiserver.key",
        admin_cert=directory / "admin.crt",
        admin_key=directory / "admin.key",
        sa_key=directory / "sa.key",
        sa_pub=directory / "sa.pub",
    )
    pki.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.serving_cert.write_bytes(serving.public_bytes(serialization.Encoding.PEM))
    pki.serving_key.write_bytes(_pem_key(serving_key))
    pki.admin_cert.write_bytes(admin.public_bytes(serialization.Encoding.PEM))
    pki.admin_key.write_bytes(_pem_key(admin_key))
    pki.sa_key.write_bytes(_pem_key(sa_key))
    pki.sa_pub.write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    for key_path in (pki.serving_key, pki.admin_key, pki.sa_key):
        key_path.chmod(0o600)
    return pki


def write_kubeconfig(path: Path, server_url: str, pki: Pki) -> None:
    """A self-contained kubeconfig (data embedded) that helm, kwok and the Python client all read."""

    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "e2e", "cluster": {"server": server_url, "certificate-authority-data": b64(pki.ca_cert)}}
        ],
        "users": [
            {
                "name": ADMIN_USER,
                "user": {
                    "client-certificate-data": b64(pki.admin_cert),
                    "client-key-data": b64(pki.admin_key),
                },
            }
        ],
        "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": ADMIN_USER}}],
        "current-context": "e2e",
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)


# --------------------------------------------------------------------------------------------
# The control plane
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ControlPlane:
    """What a test needs to talk to the cluster; ``api_client`` is ready and authenticated."""

    kubeconfig: Path
    server_url: str
    api_client: kubernetes.client.ApiClient
    gpu_nodes: tuple[str, ...]
    settings: E2ESettings
    log_dir: Path
    tools: E2ETools

    def kubectl_env(self) -> dict[str, str]:
        """Environment for CLI tools (helm) that should target this cluster and nothing else."""
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig)}


# kwok's built-in "pod-ready" stage leaves status.containerStatuses[].resources empty, and
# kube-apiserver 1.34 then refuses every pods/resize of a running pod ("Pod running on node without
# support for resize": isPodResizeRequestSupported in pkg/apis/core/validation/validation.go, the
# version-skew guard of KEP-1287). These stages replace kwok's pod stages (node stages stay kwok's
# defaults) and report what a 1.33+ kubelet reports: the container's configured resources. They are
# written against kwok's Stage API (kwok.x-k8s.io/v1alpha1); templates are Go text/template with
# sprig and kwok's NodeIPWith/PodIPWith. Pods never complete, so Jobs run until deleted.
POD_RUNNING_STATUS = """\
{{ $now := Now | Quote }}{{ $uid := or .metadata.uid "" }}{{ $ns := or .metadata.namespace "" }}
phase: Running
startTime: {{ $now }}
hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
podIP: {{ PodIPWith .spec.nodeName (or .spec.hostNetwork false) $uid (or .metadata.name "") $ns | Quote }}
conditions:
{{ range $type := list "Initialized" "ContainersReady" "Ready" }}
- {type: {{ $type }}, status: "True", lastTransitionTime: {{ $now }}}
{{ end }}
{{ $lists := dict "initContainerStatuses" .spec.initContainers "containerStatuses" .spec.containers }}
{{ range $list, $containers := $lists }}
{{ $list }}:
{{ range $containers }}
{{ $requests := default (dict) .resources.requests }}{{ $limits := default (dict) .resources.limits }}
- name: {{ .name | Quote }}
  image: {{ .image | Quote }}
  restartCount: 0
  resources: {{ dict "requests" $requests "limits" $limits | toJson }}
  ready: true
  {{ if and (eq $list "initContainerStatuses") (ne (default "" .restartPolicy) "Always") }}
  state: {terminated: {exitCode: 0, reason: Completed, startedAt: {{ $now }}, finishedAt: {{ $now }}}}
  {{ else }}
  started: true
  state: {running: {startedAt: {{ $now }}}}
  {{ end }}
{{ end }}
{{ end }}
"""


def kwok_pod_stages() -> list[dict[str, object]]:
    """Pod lifecycle for kwok: scheduled pods turn Running (with resources), deleted pods go away."""
    pod = {"apiGroup": "v1", "kind": "Pod"}
    return [
        {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "Stage",
            "metadata": {"name": "autocm-pod-running"},
            "spec": {
                "resourceRef": pod,
                "selector": {
                    "matchExpressions": [
                        {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
                        {"key": ".status.podIP", "operator": "DoesNotExist"},
                    ]
                },
                "next": {"statusTemplate": POD_RUNNING_STATUS},
            },
        },
        {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "Stage",
            "metadata": {"name": "autocm-pod-delete"},
            "spec": {
                "resourceRef": pod,
                "selector": {
                    "matchExpressions": [{"key": ".metadata.deletionTimestamp", "operator": "Exists"}]
                },
                "next": {"finalizers": {"empty": True}, "delete": True},
            },
        },
    ]


def gpu_node_manifest(name: str, settings: E2ESettings) -> dict[str, object]:
    """A node kwok adopts (by annotation) that advertises GPUs the way the NVIDIA device plugin does."""
    resources = {
        "cpu": settings.node_cpu,
        "memory": settings.node_memory,
        "pods": settings.node_max_pods,
        "nvidia.com/gpu": str(settings.gpus_per_node),
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {settings.kwok_annotation_key: settings.kwok_annotation_value},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
                "nvidia.com/gpu.present": "true",
                "nvidia.com/gpu.product": settings.gpu_product,
                "nvidia.com/gpu.count": str(settings.gpus_per_node),
            },
        },
        "status": {"capacity": resources, "allocatable": resources},
    }


def _node_ready(node: kubernetes.client.V1Node) -> bool:
    conditions = (node.status and node.status.conditions) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


# Taints the node lifecycle controller puts on and takes off by itself, from the node's Ready condition.
LIFECYCLE_TAINTS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")


def node_problems(node: kubernetes.client.V1Node) -> list[str]:
    """Why a fake GPU node is not as a test expects it (Ready, schedulable, no taints); empty when it is."""
    problems = []
    if not _node_ready(node):
        ready = [c for c in (node.status.conditions or []) if c.type == "Ready"]
        problems.append(f"Ready={ready[0].status} ({ready[0].reason})" if ready else "no Ready condition")
    if node.spec.unschedulable:
        problems.append("cordoned (spec.unschedulable)")
    problems += [f"taint {t.key}={t.value or ''}:{t.effect}" for t in node.spec.taints or []]
    return problems


def restore_gpu_nodes(core: kubernetes.client.CoreV1Api, names: Sequence[str], timeout_s: float) -> None:
    """Undo what a test may have left on the shared nodes (a cordon, a taint of its own), then wait until
    every node is Ready, schedulable and untainted, so the next test starts from the cluster it expects."""
    for name in names:
        node = core.read_node(name)
        own = [t for t in node.spec.taints or [] if t.key not in LIFECYCLE_TAINTS]
        if own or node.spec.unschedulable:
            keep = [t for t in node.spec.taints or [] if t.key in LIFECYCLE_TAINTS]
            core.patch_node(name, {"spec": {"unschedulable": False,
                                            "taints": [{"key": t.key, "value": t.value, "effect": t.effect}
                                                       for t in keep] or None}})
    problems: dict[str, list[str]] = {}

    def healthy() -> bool:
        problems.clear()
        for name in names:
            if found := node_problems(core.read_node(name)):
                problems[name] = found
        return not problems

    try:
        wait_until(healthy, what="the GPU nodes to be Ready and untainted", timeout_s=timeout_s)
    except ComponentError as err:
        raise ComponentError(f"{err}; still: {problems}") from None


def _start_control_plane(
    stack: contextlib.ExitStack, tools: E2ETools, work: Path, settings: E2ESettings
) -> ControlPlane:
    def start(component: Component) -> Component:
        component.start()
        stack.callback(component.stop)
        return component

    logs = work / "logs"
    logs.mkdir()
    pki = write_pki(work / "pki")
    timeout = settings.startup_timeout_s

    # etcd: loopback, throw-away data dir, no fsync (data is discarded anyway).
    etcd_client, etcd_peer = free_port(), free_port()
    etcd = start(
        Component(
            "etcd",
            [
                str(tools.path("etcd")),
                "--name=e2e",
                f"--data-dir={work / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_client}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_client}",
                f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
                f"--initial-cluster=e2e=http://127.0.0.1:{etcd_peer}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
            logs / "etcd.log",
        )
    )
    wait_until(
        lambda: json.loads(http_get(f"http://127.0.0.1:{etcd_client}/health")[1]).get("health") == "true",
        what="etcd /health",
        timeout_s=timeout,
        watch=[etcd],
    )

    # kube-apiserver, flags after controller-runtime's envtest (pkg/internal/testing/controlplane).
    api_port = free_port()
    server_url = f"https://127.0.0.1:{api_port}"
    apiserver = start(
        Component(
            "kube-apiserver",
            [
                str(tools.path("kube-apiserver")),
                f"--etcd-servers=http://127.0.0.1:{etcd_client}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--cert-dir={work / 'apiserver-certs'}",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                f"--client-ca-file={pki.ca_cert}",
                "--authorization-mode=RBAC",
                f"--service-account-key-file={pki.sa_pub}",
                f"--service-account-signing-key-file={pki.sa_key}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-cluster-ip-range={settings.service_cluster_ip_range}",
                "--allow-privileged=true",
                "--profiling=false",
                "--v=1",
            ],
            logs / "kube-apiserver.log",
        )
    )
    ca_context = ssl.create_default_context(cafile=str(pki.ca_cert))
    wait_until(
        lambda: http_get(f"{server_url}/readyz", ca_context)[0] == 200,
        what="kube-apiserver /readyz",
        timeout_s=timeout,
        watch=[etcd, apiserver],
    )
    kubeconfig = work / "kubeconfig"
    write_kubeconfig(kubeconfig, server_url, pki)

    # Controller manager and scheduler run as the admin user; health ports on loopback.
    kcm_port, sched_port = free_port(), free_port()
    common = [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--leader-elect=false",
        "--bind-address=127.0.0.1",
    ]
    kcm = start(
        Component(
            "kube-controller-manager",
            [
                str(tools.path("kube-controller-manager")),
                *common,
                f"--secure-port={kcm_port}",
                f"--cert-dir={work / 'kcm-certs'}",
                f"--service-account-private-key-file={pki.sa_key}",
                f"--root-ca-file={pki.ca_cert}",
                f"--service-cluster-ip-range={settings.service_cluster_ip_range}",
                f"--node-monitor-grace-period={settings.node_monitor_grace_period}",
                f"--node-startup-grace-period={settings.node_monitor_grace_period}",
                "--v=1",
            ],
            logs / "kube-controller-manager.log",
        )
    )
    scheduler = start(
        Component(
            "kube-scheduler",
            [
                str(tools.path("kube-scheduler")),
                *common,
                f"--secure-port={sched_port}",
                f"--cert-dir={work / 'scheduler-certs'}",
                "--v=1",
            ],
            logs / "kube-scheduler.log",
        )
    )
    kwok_config = work / "kwok.yaml"
    kwok_config.write_text(yaml.safe_dump_all(kwok_pod_stages(), sort_keys=False))
    kwok = start(
        Component(
            "kwok",
            [
                str(tools.path("kwok")),
                f"--config={kwok_config}",
                f"--kubeconfig={kubeconfig}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={settings.kwok_annotation_key}={settings.kwok_annotation_value}",
                "--cidr=10.244.0.0/16",
                f"--node-lease-duration-seconds={settings.node_lease_duration_s}",
            ],
            logs / "kwok.log",
            # kwok reads ~/.kwok/kwok.yaml by default: keep the user's configuration out of the tests.
            env={**os.environ, "HOME": str(work)},
        )
    )
    everything = [etcd, apiserver, kcm, scheduler, kwok]
    insecure = _insecure_context()
    for component, port in ((kcm, kcm_port), (scheduler, sched_port)):
        wait_until(
            lambda port=port: http_get(f"https://127.0.0.1:{port}/healthz", insecure)[0] == 200,
            what=f"{component.name} /healthz",
            timeout_s=timeout,
            watch=everything,
        )

    api_client = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
    stack.callback(api_client.close)
    core = kubernetes.client.CoreV1Api(api_client)
    names = tuple(f"gpu-node-{i}" for i in range(settings.gpu_node_count))
    for name in names:
        core.create_node(gpu_node_manifest(name, settings))
    wait_until(
        lambda: all(_node_ready(core.read_node(n)) for n in names),
        what=f"kwok to report nodes {', '.join(names)} Ready",
        timeout_s=timeout,
        watch=everything,
    )
    # Pods need the namespace's service account (ServiceAccount admission); the controller manager
    # creates it, so its presence in "default" also shows the controllers are running.
    wait_until(
        lambda: bool(core.read_namespaced_service_account("default", "default")),
        what="the controller manager to create default/default service account",
        timeout_s=timeout,
        watch=everything,
    )
    return ControlPlane(
        kubeconfig=kubeconfig,
        server_url=server_url,
        api_client=api_client,
        gpu_nodes=names,
        settings=settings,
        log_dir=logs,
        tools=tools,
    )


@pytest.fixture(scope="session")
def control_plane(e2e_tools: E2ETools, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """etcd + kube-apiserver + controller manager + scheduler + kwok with fake GPU nodes.

    Session-scoped: start-up costs ~10-30 s on our machines, so all e2e tests share one cluster and
    isolate themselves with the ``namespace`` fixture. The work dir (logs, PKI, kubeconfig) stays in
    pytest's basetemp after the run for debugging; all processes are stopped even on failure.
    """
    work = tmp_path_factory.mktemp("control-plane")
    with contextlib.ExitStack() as stack:
        try:
            plane = _start_control_plane(stack, e2e_tools, work, SETTINGS)
        except ComponentError as err:
            pytest.fail(f"e2e control plane did not start (logs in {work / 'logs'}):\n{err}", pytrace=False)
        yield plane


@pytest.fixture
def namespace(control_plane: ControlPlane) -> Iterator[str]:
    """A fresh namespace per test on healthy nodes, emptied of pods afterwards.

    Isolation on the shared cluster, checked rather than timed: before the test, the GPU nodes are
    Ready, schedulable and untainted (anything a test left is undone); after it, the namespace is deleted
    and the fixture waits until its pods are gone, so their GPUs are free when the next test counts them.
    """
    core = kubernetes.client.CoreV1Api(control_plane.api_client)
    timeout = control_plane.settings.isolation_timeout_s
    restore_gpu_nodes(core, control_plane.gpu_nodes, timeout)
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    wait_until(
        lambda: bool(core.read_namespaced_service_account("default", name)),
        what=f"service account {name}/default",
        timeout_s=timeout,
    )
    yield name
    with contextlib.suppress(kubernetes.client.ApiException):
        core.delete_namespace(name)
    wait_until(
        lambda: not core.list_namespaced_pod(name).items,
        what=f"the pods of namespace {name} to be gone",
        timeout_s=timeout,
    )


# --------------------------------------------------------------------------------------------
# Prometheus
# --------------------------------------------------------------------------------------------


@dataclass
class PrometheusServer:
    """Debian's Prometheus on loopback; tests add scrape jobs, which rewrites the config and reloads."""

    url: str
    config_path: Path
    component: Component
    scrape_interval: str
    jobs: dict[str, list[str]] = field(default_factory=dict)

    def write_config(self) -> None:
        config = {
            "global": {"scrape_interval": self.scrape_interval, "evaluation_interval": self.scrape_interval},
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": targets}]}
                for job, targets in self.jobs.items()
            ],
        }
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    def reload(self) -> None:
        """POST /-/reload (needs --web.enable-lifecycle); Prometheus answers 200 once it applied it."""
        self.write_config()
        request = urllib.request.Request(f"{self.url}/-/reload", method="POST")
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 200

    def add_job(self, job: str, targets: Sequence[str]) -> None:
        self.jobs[job] = list(targets)
        self.reload()

    def remove_job(self, job: str) -> None:
        if self.jobs.pop(job, None) is not None:
            self.reload()

    def api(self, path: str, **params: str) -> dict[str, object]:
        query = urllib.parse.urlencode(params)
        status, body = http_get(f"{self.url}/api/v1/{path}?{query}", timeout_s=10)
        payload = json.loads(body)
        if status != 200 or payload.get("status") != "success":
            raise AssertionError(f"Prometheus /api/v1/{path} failed ({status}): {payload}")
        return payload["data"]

    def query(self, promql: str) -> list[dict[str, object]]:
        """Instant query; returns the ``result`` list of the HTTP API's answer."""
        data = self.api("query", query=promql)
        return list(data["result"])  # type: ignore[index]

    def wait_for(self, promql: str, timeout_s: float = 30.0) -> list[dict[str, object]]:
        """Waits until ``promql`` returns at least one series (scrapes are asynchronous)."""
        found: list[dict[str, object]] = []

        def has_data() -> bool:
            found[:] = self.query(promql)
            return bool(found)

        wait_until(
            has_data,
            what=f"Prometheus to return data for {promql!r}",
            timeout_s=timeout_s,
            watch=[self.component],
        )
        return found


@pytest.fixture(scope="session")
def prometheus(e2e_tools: E2ETools, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """One Prometheus per session; use ``prometheus_scrape`` to point it at a test's exporters."""
    work = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    config_path = work / "prometheus.yml"
    component = Component(
        "prometheus",
        [
            str(e2e_tools.path("prometheus")),
            f"--config.file={config_path}",
            f"--storage.tsdb.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--web.enable-lifecycle",
            "--log.level=warn",
        ],
        work / "prometheus.log",
    )
    server = PrometheusServer(
        url=f"http://127.0.0.1:{port}",
        config_path=config_path,
        component=component,
        scrape_interval=SETTINGS.prometheus_scrape_interval,
    )
    server.write_config()
    component.start()
    try:
        try:
            wait_until(
                lambda: http_get(f"{server.url}/-/ready")[0] == 200,
                what="Prometheus /-/ready",
                timeout_s=SETTINGS.startup_timeout_s,
                watch=[component],
            )
        except ComponentError as err:
            pytest.fail(f"Prometheus did not start:\n{err}", pytrace=False)
        yield server
    finally:
        component.stop()


@pytest.fixture
def prometheus_scrape(prometheus: PrometheusServer) -> Iterator[Callable[[Sequence[str]], str]]:
    """Factory: ``job = prometheus_scrape(["127.0.0.1:8000"])`` adds a scrape job for this test only."""
    added: list[str] = []

    def scrape(targets: Sequence[str]) -> str:
        job = f"e2e-{uuid.uuid4().hex[:8]}"
        prometheus.add_job(job, targets)
        added.append(job)
        return job

    yield scrape
    for job in added:
        prometheus.remove_job(job)


# --------------------------------------------------------------------------------------------
# A fault-injecting proxy in front of the apiserver
# --------------------------------------------------------------------------------------------


@pytest.fixture
def fault_proxy(control_plane: ControlPlane, tmp_path: Path):
    """A :class:`tests.e2e.faultproxy.FaultProxy` to this test's cluster; ``fault_proxy.kubeconfig()`` for
    the operator. It serves TLS with the apiserver's own certificate (valid for 127.0.0.1, same CA)."""
    from .faultproxy import FaultProxy

    pki = control_plane.kubeconfig.parent / "pki"
    with FaultProxy.for_kubeconfig(control_plane.kubeconfig, pki / "apiserver.crt", pki / "apiserver.key",
                                   tmp_path / "fault-proxy") as proxy:
        yield proxy
