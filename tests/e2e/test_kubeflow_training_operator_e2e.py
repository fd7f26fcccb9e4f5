"""PyTorchJobs resized by autocm and carried out by the real Kubeflow training operator.

tests/e2e/test_operator_pytorchjob.py checks what autocm writes into a PyTorchJob. Here the real
training operator (Kubeflow ``training-operator`` v1.8.1, built by scripts/e2e-tools.sh from the Go module
proxy, with the CRD that ships in its module) runs against the same control plane and turns the objects
into pods on the kwok GPU nodes, so the test checks what a user running Kubeflow would see:

1. an elastic job (``elasticPolicy``, Worker 1 -> 3 through a SizingPolicy in apply mode) gets two more
   Running worker pods while its first worker pod keeps running (same pod uid: resized in place, not
   restarted), and the training operator's own status counts three active workers;
2. a fixed-size job whose batch size changes is recreated under its name: the training operator removes
   the old job's pods and starts new ones that read ``AUTOCM_BATCH_SIZE=16``;
3. a training pool of three suspended PyTorchJobs on 2 GPUs: the pool's recreation unsuspends one (two
   worker pods), the others run no pods, and when the first finishes the training operator marks it
   Succeeded and the pool admits the next;
4. the training pool e2e's six emulated cifar10 trainers (tests/e2e/training_emulator.py reads PyTorchJobs
   too) as elastic PyTorchJobs under ``pollux`` and under ``shared-goodput`` on 16 GPUs: all finish, nothing is
   oversubscribed, and running jobs are resized in place (same uid, several worker counts).

The operator's webhooks are not served: the apiserver could not reach them (no Service network here), so
the test gives the operator's certificate rotator an empty ValidatingWebhookConfiguration to patch.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest

from controller.pytorchjob import JOB_NAME_LABEL

from .conftest import Component, ControlPlane, E2ETools, PrometheusServer, free_port, http_get, wait_until
from .test_operator_e2e import (  # noqa: F401
    GROUP,
    PLURAL,
    REPO,
    VERSION,
    crd,
    custom,
    operator_argv,
    process,
    status,
    wait_status,
)
from .test_operator_pytorchjob import (
    KF_GROUP,
    KF_PLURAL,
    KF_VERSION,
    install_pytorchjob_crd,
    pytorchjob,
    remove_pytorchjob_crd,
    training_policy,
)
from .test_training_pool_e2e import ARRIVAL_GAP_S, JOBS, QUOTA, RUN_TIMEOUT_S, SPEED, pool_policy, training_job
from .test_training_pool_e2e import EMULATOR as TRAINING_EMULATOR
from .training_emulator import succeed

pytestmark = pytest.mark.e2e

OPERATOR_NAMESPACE = "kubeflow"
"""Where the training operator keeps its webhook certificate (its default, ``MY_POD_NAMESPACE``)."""
WEBHOOK_CONFIG = "validator.training-operator.kubeflow.org"
WEBHOOK_SECRET = "training-operator-webhook-cert"
CERT_DIR = Path("/tmp/k8s-webhook-server/serving-certs")
ROLE_LABEL = "training.kubeflow.org/replica-type"


def _ignore_conflict(create: object, *args: object) -> None:
    try:
        create(*args)  # type: ignore[operator]
    except kubernetes.client.ApiException as exc:
        if exc.status != 409:
            raise


@pytest.fixture(scope="module")
def training_operator(control_plane: ControlPlane, e2e_tools: E2ETools,
                      tmp_path_factory: pytest.TempPathFactory) -> Iterator[Component]:
    plane = control_plane
    core = kubernetes.client.CoreV1Api(plane.api_client)
    admission = kubernetes.client.AdmissionregistrationV1Api(plane.api_client)
    _ignore_conflict(core.create_namespace, {"metadata": {"name": OPERATOR_NAMESPACE}})
    _ignore_conflict(core.create_namespaced_secret, OPERATOR_NAMESPACE,
                     {"metadata": {"name": WEBHOOK_SECRET}, "type": "Opaque"})
    _ignore_conflict(admission.create_validating_webhook_configuration,
                     {"metadata": {"name": WEBHOOK_CONFIG}, "webhooks": []})
    install_pytorchjob_crd(plane)
    health = free_port()
    component = Component(
        "training-operator",
        [str(e2e_tools.path("training-operator")), f"--kubeconfig={plane.kubeconfig}",
         "--enable-scheme=pytorchjob", f"--metrics-bind-address=127.0.0.1:{free_port()}",
         f"--health-probe-bind-address=127.0.0.1:{health}", f"--webhook-server-port={free_port()}"],
        tmp_path_factory.mktemp("training-operator") / "training-operator.log",
        env={**os.environ, "MY_POD_NAMESPACE": OPERATOR_NAMESPACE},
    )
    component.start()
    try:
        # What the kubelet would do: mount the certificate the rotator wrote into its Secret where its
        # webhook server reads it (a fixed path in the operator, /tmp/k8s-webhook-server/serving-certs).
        def certificate() -> dict[str, str]:
            return core.read_namespaced_secret(WEBHOOK_SECRET, OPERATOR_NAMESPACE).data or {}

        wait_until(lambda: {"tls.crt", "tls.key"} <= set(certificate()),
                   what="the training operator's webhook certificate in its Secret", timeout_s=60,
                   watch=[component])
        CERT_DIR.mkdir(parents=True, exist_ok=True)
        for key, value in certificate().items():
            (CERT_DIR / key).write_bytes(base64.b64decode(value))
        wait_until(lambda: http_get(f"http://127.0.0.1:{health}/readyz")[0] == 200,
                   what="the training operator ready (certificates written, controllers started)",
                   timeout_s=90, watch=[component])
        yield component
    finally:
        component.stop()
        remove_pytorchjob_crd(plane)  # test_operator_pytorchjob.py starts without it


def pods(plane: ControlPlane, namespace: str, job: str, role: str | None = None) -> list[kubernetes.client.V1Pod]:
    selector = f"{JOB_NAME_LABEL}={job}" + (f",{ROLE_LABEL}={role}" if role else "")
    core = kubernetes.client.CoreV1Api(plane.api_client)
    return [p for p in core.list_namespaced_pod(namespace, label_selector=selector).items
            if p.metadata.deletion_timestamp is None]


def running(plane: ControlPlane, namespace: str, job: str, role: str | None = None) -> list[kubernetes.client.V1Pod]:
    return [p for p in pods(plane, namespace, job, role) if p.status.phase == "Running"]


def env_of(pod: kubernetes.client.V1Pod) -> dict[str, str]:
    return {e.name: e.value for e in pod.spec.containers[0].env or [] if e.value is not None}


def test_the_training_operator_carries_out_autocm_resizes(
        crd, training_operator: Component, control_plane: ControlPlane,  # noqa: F811
        namespace: str, prometheus: PrometheusServer, tmp_path: Path) -> None:
    plane = control_plane
    objects = custom(plane)
    for name, elastic in (("elastic", True), ("fixed", False)):
        objects.create_namespaced_custom_object(KF_GROUP, KF_VERSION, namespace, KF_PLURAL,
                                                pytorchjob(name, workers=1, elastic=elastic))
    watch = [training_operator]
    for name in ("elastic", "fixed"):
        wait_until(lambda n=name: len(running(plane, namespace, n)) == 2,
                   what=f"PyTorchJob {name}'s master and worker pods Running", timeout_s=60, watch=watch)
    first_worker = running(plane, namespace, "elastic", "worker")[0]
    fixed_before = {p.metadata.uid for p in running(plane, namespace, "fixed")}
    first_uid = objects.get_namespaced_custom_object(KF_GROUP, KF_VERSION, namespace, KF_PLURAL,
                                                     "fixed")["metadata"]["uid"]

    objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, training_policy(
        "elastic", {"replicas": {"min": 1, "max": 8}}, {"replicas": 3}))
    objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, training_policy(
        "fixed", {"batchSize": {"min": 8, "max": 64, "step": 8}}, {"batch_size": 16}))
    log = tmp_path / "operator.log"
    with process(operator_argv(plane, prometheus.url, free_port()), log):
        wait_status(plane, namespace, "elastic", lambda s: s.get("currentConfig", {}).get("replicas") == 3,
                    "the elastic PyTorchJob at 3 workers", 120, log)
        wait_status(plane, namespace, "fixed", lambda s: s.get("currentConfig", {}).get("batch_size") == 16,
                    "the fixed PyTorchJob recreated with batch size 16", 120, log)

    # 1. Elastic: two more workers, the first one untouched, and the training operator counts three.
    wait_until(lambda: len(running(plane, namespace, "elastic", "worker")) == 3,
               what="three Running worker pods of the elastic PyTorchJob", timeout_s=60, watch=watch)
    workers = running(plane, namespace, "elastic", "worker")
    assert first_worker.metadata.uid in {p.metadata.uid for p in workers}
    assert len(running(plane, namespace, "elastic", "master")) == 1

    def active_workers() -> int:
        obj = objects.get_namespaced_custom_object(KF_GROUP, KF_VERSION, namespace, KF_PLURAL, "elastic")
        return int(((obj.get("status") or {}).get("replicaStatuses") or {}).get("Worker", {}).get("active", 0))

    wait_until(lambda: active_workers() == 3, what="the training operator's status: 3 active workers",
               timeout_s=60, watch=watch)

    # 2. Fixed: the recreated job's pods are new and read the new batch size; the old ones are gone.
    fixed = objects.get_namespaced_custom_object(KF_GROUP, KF_VERSION, namespace, KF_PLURAL, "fixed")
    assert fixed["metadata"]["uid"] != first_uid
    wait_until(lambda: len(running(plane, namespace, "fixed")) == 2
               and not {p.metadata.uid for p in pods(plane, namespace, "fixed")} & fixed_before,
               what="the recreated fixed PyTorchJob's two new pods Running", timeout_s=60, watch=watch)
    for pod in running(plane, namespace, "fixed"):
        assert pod.metadata.owner_references[0].uid == fixed["metadata"]["uid"]
        assert env_of(pod)["AUTOCM_BATCH_SIZE"] == "16"


def test_an_elastic_pytorchjob_recreated_by_autocm_is_then_resized_in_place(
        crd, training_operator: Component, control_plane: ControlPlane,  # noqa: F811
        namespace: str, prometheus: PrometheusServer, tmp_path: Path) -> None:
    """A batch change recreates the elastic job (autocm applies its whole spec), then a replicas change resizes it
    in place. The second write is a merge patch of the count: a server-side apply of the count alone by the same
    field manager removed the pod template the recreation had applied, and the training operator panicked."""
    plane = control_plane
    objects = custom(plane)
    objects.create_namespaced_custom_object(KF_GROUP, KF_VERSION, namespace, KF_PLURAL,
                                            pytorchjob("both", workers=1, elastic=True))
    body = training_policy("both", {"replicas": {"min": 1, "max": 4}, "batchSize": {"min": 8, "max": 64, "step": 8}},
                           {"replicas": 1, "batch_size": 16})
    objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    log = tmp_path / "operator.log"
    watch = [training_operator]
    with process(operator_argv(plane, prometheus.url, free_port()), log):
        wait_status(plane, namespace, "both", lambda s: s.get("currentConfig", {}).get("batch_size") == 16,
                    "the elastic PyTorchJob recreated with batch size 16", 120, log)
        recreated = objects.get_namespaced_custom_object(KF_GROUP, KF_VERSION, namespace, KF_PLURAL, "both")
        objects.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "both", {
            "spec": {"learner": {"settings": {"config": {"replicas": 2, "batch_size": 16}}}}})
        wait_status(plane, namespace, "both", lambda s: s.get("currentConfig", {}).get("replicas") == 2,
                    "the recreated elastic PyTorchJob at 2 workers", 120, log)
        wait_until(lambda: len(running(plane, namespace, "both", "worker")) == 2,
                   what="two Running workers of the recreated elastic PyTorchJob", timeout_s=60, watch=watch)
    job = objects.get_namespaced_custom_object(KF_GROUP, KF_VERSION, namespace, KF_PLURAL, "both")
    assert job["metadata"]["uid"] == recreated["metadata"]["uid"]  # in place after the recreation
    worker = job["spec"]["pytorchReplicaSpecs"]["Worker"]
    assert worker["replicas"] == 2 and worker["template"]["spec"]["containers"][0]["image"]
    for pod in running(plane, namespace, "both"):
        assert env_of(pod)["AUTOCM_BATCH_SIZE"] == "16"
    training_operator.check_alive()


def pool_pytorchjob(name: str) -> dict:
    """A pool job: Worker only (elastic, 1-2 workers of 1 GPU), created suspended, as docs/training-operator.md asks."""
    body = pytorchjob(name, workers=1, elastic=True)
    del body["spec"]["pytorchReplicaSpecs"]["Master"]
    body["spec"]["elasticPolicy"]["maxReplicas"] = 2
    body["spec"]["runPolicy"] = {"suspend": True}
    body["metadata"]["labels"] = {"autocm.io/pool": "kubeflow"}
    return body


def test_a_training_pool_of_pytorchjobs_under_the_real_training_operator(
        crd, training_operator: Component, control_plane: ControlPlane,  # noqa: F811
        namespace: str, prometheus: PrometheusServer, tmp_path: Path) -> None:
    """A 2-GPU pool (scheduler ``fixed``, 2 GPUs per job) over three suspended PyTorchJobs: the pool admits one
    (recreated unsuspended with 2 workers: two pods), the others stay suspended with no pods; when the first
    finishes (its pods Succeeded, the training operator marks it Succeeded) the pool admits the next. No more
    than 2 GPU pods are bound at any observed moment."""
    plane = control_plane
    objects = custom(plane)
    for name in ("a", "b", "c"):
        objects.create_namespaced_custom_object(KF_GROUP, KF_VERSION, namespace, KF_PLURAL, pool_pytorchjob(name))
    objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "SizingPolicy", "metadata": {"name": "pool"},
        "spec": {"trainingPool": {"scheduler": "fixed", "gpuQuota": 2, "gpusPerNode": 8, "fixedGpusPerJob": 2,
                                  "selector": {"autocm.io/pool": "kubeflow"}, "restartSeconds": 2},
                 "mode": "apply", "intervalSeconds": 2, "metrics": {"windowSeconds": 6}}})
    watch = [training_operator]
    core = kubernetes.client.CoreV1Api(plane.api_client)
    most = 0

    def gpu_pods() -> int:
        nonlocal most
        bound = [p for p in core.list_namespaced_pod(namespace).items
                 if p.spec.node_name and p.status.phase in ("Pending", "Running")]
        most = max(most, len(bound))
        return len(bound)

    def admitted() -> list[str]:
        gpu_pods()
        return sorted(n for n in ("a", "b", "c") if len(running(plane, namespace, n, "worker")) == 2)

    log = tmp_path / "operator.log"
    with process(operator_argv(plane, prometheus.url, free_port()), log):
        wait_until(lambda: len(admitted()) == 1, what="one pool PyTorchJob running 2 worker pods",
                   timeout_s=120, watch=watch)
        first = admitted()[0]
        job = objects.get_namespaced_custom_object(KF_GROUP, KF_VERSION, namespace, KF_PLURAL, first)
        assert job["spec"]["runPolicy"]["suspend"] is False
        assert job["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] == 2
        assert job["metadata"]["annotations"]["autocm.io/restarts"] == "1"
        for other in {"a", "b", "c"} - {first}:
            assert not pods(plane, namespace, other), f"suspended {other} has pods"
        succeed(core, namespace, running(plane, namespace, first))  # the trainers exit 0 (kwok runs none)
        wait_until(lambda: len(admitted()) == 1 and admitted()[0] != first,
                   what=f"the next pool PyTorchJob admitted after {first} finished", timeout_s=120, watch=watch)
        done = objects.get_namespaced_custom_object(KF_GROUP, KF_VERSION, namespace, KF_PLURAL, first)
        assert any(c["type"] == "Succeeded" and c["status"] == "True" for c in done["status"]["conditions"])
    assert most <= 2, f"{most} GPU pods bound at once in a 2-GPU pool"


def live_pods(core: kubernetes.client.CoreV1Api, namespace: str) -> str:
    """One line per pod not Succeeded or Failed (job, name, phase, node, deleting): what a stalled pool
    waits on, for the failure message."""
    return "\n".join(
        f"{(p.metadata.labels or {}).get(JOB_NAME_LABEL, '?')} {p.metadata.name} {p.status.phase} "
        f"node={p.spec.node_name} deleting={p.metadata.deletion_timestamp is not None}"
        for p in core.list_namespaced_pod(namespace).items
        if p.status.phase not in ("Succeeded", "Failed")) or "(none)"


def elastic_training_job(name: str, pool: str) -> dict:
    """The training pool test's cifar10 job (tests/e2e/test_training_pool_e2e.py) as an elastic PyTorchJob:
    Worker only, 1 GPU per worker, 1-16 workers, created suspended."""
    job = training_job(name, pool)
    # Kubeflow's training operator finds the trainer (and its port) by the container name "pytorch".
    container = {**job["spec"]["template"]["spec"]["containers"][0], "name": "pytorch"}
    return {"apiVersion": f"{KF_GROUP}/{KF_VERSION}", "kind": "PyTorchJob", "metadata": job["metadata"],
            "spec": {"runPolicy": {"suspend": True},
                     "elasticPolicy": {"rdzvBackend": "c10d", "minReplicas": 1, "maxReplicas": QUOTA},
                     "pytorchReplicaSpecs": {"Worker": {"replicas": 1, "restartPolicy": "OnFailure", "template": {
                         "metadata": job["spec"]["template"]["metadata"],
                         "spec": {"terminationGracePeriodSeconds": 0, "containers": [container]}}}}}}


@pytest.mark.parametrize("scheduler", ["pollux", "shared-goodput"])
def test_a_pool_of_elastic_pytorchjobs_under_the_real_training_operator(
        crd, training_operator: Component, control_plane: ControlPlane,  # noqa: F811
        namespace: str, prometheus: PrometheusServer, tmp_path: Path, scheduler: str) -> None:
    """The training pool e2e's six cifar10 jobs (emulated trainers, Pollux profiles, 50x the wall clock) as
    elastic PyTorchJobs on 16 GPUs, under ``pollux`` and under the learned ``shared-goodput`` (the jobs carry
    ``autocm.io/job-class: cifar10``), with the real training operator making the pods: every job finishes (the
    training operator's ``Succeeded``), no GPU is oversubscribed at any observed moment (the policy's allocation
    and the bound worker pods), and some running job is resized in place (the same job uid seen at two worker
    counts, unsuspended)."""
    plane = control_plane
    objects = custom(plane)
    core = kubernetes.client.CoreV1Api(plane.api_client)
    port = free_port()
    emulator_url = f"http://127.0.0.1:{port}"
    emu_argv = [sys.executable, str(TRAINING_EMULATOR), "--kubeconfig", str(plane.kubeconfig), "--namespace",
                namespace, "--port", str(port), "--speed", str(SPEED)]
    names = [f"{scheduler}-{i}" for i in range(JOBS)]
    seen: dict[str, set[tuple[str, int]]] = {n: set() for n in names}
    peaks = {"status": 0, "bound": 0}
    log = tmp_path / "operator.log"
    with process(emu_argv, tmp_path / "emulator.log", env={"PYTHONPATH": str(REPO)}), \
            process(operator_argv(plane, prometheus.url, free_port()), log):
        prometheus.add_job(f"training-{namespace}", [f"127.0.0.1:{port}"])
        try:
            objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL,
                                                    pool_policy("pool", scheduler))
            start, created = time.monotonic(), 0
            while True:
                training_operator.check_alive()
                elapsed = time.monotonic() - start
                while created < JOBS and elapsed >= created * ARRIVAL_GAP_S:
                    objects.create_namespaced_custom_object(KF_GROUP, KF_VERSION, namespace, KF_PLURAL,
                                                            elastic_training_job(names[created], scheduler))
                    created += 1
                pool = (status(plane, namespace, "pool").get("trainingPool") or {})
                jobs = {o["metadata"]["name"]: o for o in objects.list_namespaced_custom_object(
                    KF_GROUP, KF_VERSION, namespace, KF_PLURAL)["items"]}
                bound = sum(1 for p in core.list_namespaced_pod(namespace).items
                            if p.spec.node_name and p.status.phase not in ("Succeeded", "Failed"))
                for key, value in (("status", int(pool.get("gpusAllocated", 0))), ("bound", bound)):
                    peaks[key] = max(peaks[key], value)
                    assert value <= QUOTA, f"{key} GPUs {value} > {QUOTA} at {elapsed:.1f}s: {json.dumps(pool)}"
                done = {n for n, o in jobs.items() if any(
                    c.get("type") == "Succeeded" and c.get("status") == "True"
                    for c in (o.get("status") or {}).get("conditions") or [])}
                for n, o in jobs.items():
                    if n not in done and not o["spec"].get("runPolicy", {}).get("suspend"):
                        seen[n].add((o["metadata"]["uid"], int(o["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"])))
                if created == JOBS and done == set(names):
                    break
                if elapsed > RUN_TIMEOUT_S:
                    tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
                    raise AssertionError(f"jobs not all Succeeded after {RUN_TIMEOUT_S:.0f}s (done: {sorted(done)})"
                                         f"\nstatus: {json.dumps(pool)}\nemulator: "
                                         f"{http_get(emulator_url + '/state')[1].decode()}\npods not finished:\n"
                                         f"{live_pods(core, namespace)}\noperator log:\n{tail}")
                time.sleep(0.5)
            state = json.loads(http_get(f"{emulator_url}/state")[1])
        finally:
            prometheus.remove_job(f"training-{namespace}")
    print(f"kubeflow {scheduler} pool e2e:", json.dumps({
        "wall_s": round(time.monotonic() - start, 1), "peaks": peaks, "seen": {n: sorted(v) for n, v in seen.items()},
        "restarts": {n: state[n]["restarts"] for n in names},
        "mean_jct_s": sum(state[n]["done_s"] - state[n]["first_seen_s"] for n in names) / len(names)}))
    assert all(state[n]["done_s"] is not None for n in names)
    in_place = [n for n, pairs in seen.items() if any(
        len({w for u, w in pairs if u == uid}) >= 2 for uid in {u for u, _ in pairs})]
    assert in_place, f"no running PyTorchJob was resized in place: {seen}"
