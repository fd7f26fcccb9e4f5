"""A training-job emulator: every pool Job of one namespace trains at the speed the Pollux profiles give for
the GPUs and batch size it was started with, and exports the ``autocm_train_*`` contract. Pool Kubeflow
PyTorchJobs (run by the real training operator) are read the same way: their Worker count for
``parallelism``, the training operator's pod label, and GPUs from the Running worker pods (an elastic resize
in place changes the pods, not ``AUTOCM_GPUS``).

The e2e tests need training jobs whose metrics respond to the allocation the operator applies, without
GPUs or PyTorch. Like ``emulator.py`` this one process plays every pod: every ``--tick`` seconds it lists the
namespace's Jobs labelled ``autocm.io/pool`` and their pods (kwok runs them), and for each Job:

- what its pods read on start: ``AUTOCM_GPUS`` and ``AUTOCM_BATCH_SIZE`` from the Job's container env, and
  ``parallelism`` (the operator's recreation sets all three);
- a :class:`simulator.training.job.TrainingJob` (the application is the Job's ``autocm.io/application``
  label) that advances only while all ``parallelism`` pods are Running. A new Job uid or a new
  (GPUs, batch) is a restart: the job resumes from its progress (the checkpoint-aware contract) after the
  profile's restart delay, and the restart is counted;
- time runs ``--speed`` times faster than the wall clock (the profiles' step times are in real seconds);
- when the job reaches its last epoch the emulator sets its pods to Succeeded, so the real Job controller
  marks the Job Complete, and the pool's GPUs free up; it goes on doing so for any pod of the finished job
  that is still running, as every trainer of a finished job exits.

``/metrics`` serves the contract (labels ``namespace``, ``job_name``, ``replica``) for running jobs only;
``/state`` serves JSON per job (first seen, done, restarts, GPUs, batch, progress, in emulated seconds) for
the test's assertions.

Run: ``python tests/e2e/training_emulator.py --kubeconfig K --namespace NS --port P --speed 50``.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from simulator.training.job import JobSpec, TrainingJob
from simulator.training.pool_replay import fit_batch
from simulator.training.profiles import ApplicationProfile, load_profiles

POOL_LABEL = "autocm.io/pool"
APP_LABEL = "autocm.io/application"
GPUS_PER_NODE = 4
KUBEFLOW = ("kubeflow.org", "v1", "pytorchjobs")


@dataclass(frozen=True)
class PoolObject:
    """What the emulator reads of one pool job, a batch/v1 Job or a Kubeflow PyTorchJob."""

    name: str
    uid: str
    labels: dict[str, str]
    suspended: bool
    want: int
    """Pods the job runs with: ``parallelism`` (Job) or the Worker (else Master) replica count."""
    env: dict[str, str]
    pod_label: str
    """The label that names the job on its pods (the Job controller's or the training operator's)."""
    per_pod_gpus: int
    gpus_from_pods: bool
    """True for a PyTorchJob: an elastic resize in place changes the pods, not ``AUTOCM_GPUS``."""


def job_object(obj: Any) -> PoolObject:
    c = obj.spec.template.spec.containers[0]
    return PoolObject(obj.metadata.name, obj.metadata.uid, dict(obj.metadata.labels or {}), bool(obj.spec.suspend),
                      int(obj.spec.parallelism or 0), {e.name: e.value for e in c.env or []},
                      "batch.kubernetes.io/job-name", 1, False)


def pytorchjob_object(obj: dict[str, Any]) -> PoolObject:
    meta, spec = obj["metadata"], obj.get("spec") or {}
    roles = spec.get("pytorchReplicaSpecs") or {}
    role = roles.get("Worker") or roles.get("Master") or {}
    c = role["template"]["spec"]["containers"][0]
    limits = (c.get("resources") or {}).get("limits") or {}
    return PoolObject(meta["name"], meta["uid"], dict(meta.get("labels") or {}),
                      bool((spec.get("runPolicy") or {}).get("suspend", False)), int(role.get("replicas", 1)),
                      {e["name"]: e.get("value") for e in c.get("env") or []}, "training.kubeflow.org/job-name",
                      int(limits.get("nvidia.com/gpu", 1)), True)


def succeed(core: Any, namespace: str, pods: list[Any]) -> None:
    """The trainer exits 0 in every one of ``pods`` (one job's): Succeeded, so the Job controller (or the
    training operator) completes the job. A pod not patched now is retried on the next call."""
    for p in pods:
        if p.status.phase in ("Succeeded", "Failed") or p.metadata.deletion_timestamp is not None:
            continue
        status = {"phase": "Succeeded", "containerStatuses": [{
            "name": c.name, "image": c.image, "imageID": "", "ready": False, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                                     "startedAt": p.status.start_time.isoformat() if p.status.start_time
                                     else None, "finishedAt": None}}} for c in p.spec.containers]}
        status["containerStatuses"][0]["state"]["terminated"]["finishedAt"] = \
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        try:
            core.patch_namespaced_pod_status(p.metadata.name, namespace, {"status": status})
        except Exception as exc:  # the next call retries
            print(f"training emulator: pod {p.metadata.name} not set Succeeded: {exc}", flush=True)


@dataclass
class Emulated:
    job: TrainingJob
    first_seen_s: float
    uid: str = ""
    running: tuple[int, int] | None = None
    """(GPUs, batch) it runs with now; None while stopped (suspended, restarting, pods not all Running)."""
    steps: float = 0.0
    step_sum_s: float = 0.0
    samples: float = 0.0
    done_s: float | None = None
    restarts: int = 0


def placement(gpus: int) -> tuple[int, ...]:
    full, rest = divmod(gpus, GPUS_PER_NODE)
    return (GPUS_PER_NODE,) * full + ((rest,) if rest else ())


class TrainingEmulator:
    def __init__(self, namespace: str, profiles: dict[str, ApplicationProfile], speed: float,
                 restart_delay_s: float) -> None:
        self.namespace = namespace
        self.profiles = profiles
        self.speed = speed
        self.restart_delay_s = restart_delay_s
        self.jobs: dict[str, Emulated] = {}
        self.lock = threading.Lock()
        self.start = time.monotonic()

    def now(self) -> float:
        """Emulated seconds since start."""
        return (time.monotonic() - self.start) * self.speed

    def observe(self, batch_api: Any, core: Any, custom: Any | None = None) -> None:
        objs = [job_object(j) for j in batch_api.list_namespaced_job(self.namespace, label_selector=POOL_LABEL).items]
        if custom is not None:
            import kubernetes

            try:
                listed = custom.list_namespaced_custom_object(*KUBEFLOW[:2], self.namespace, KUBEFLOW[2],
                                                              label_selector=POOL_LABEL)
                objs += [pytorchjob_object(o) for o in listed.get("items", [])]
            except kubernetes.client.ApiException as exc:
                if exc.status != 404:  # 404: no PyTorchJob CRD, a pool of Jobs only
                    raise
        pods = core.list_namespaced_pod(self.namespace).items
        now = self.now()
        with self.lock:
            for obj in objs:
                self._observe_job(obj, pods, now, core)

    def _observe_job(self, obj: PoolObject, pods: list[Any], now: float, core: Any) -> None:
        name = obj.name
        app = obj.labels.get(APP_LABEL, "cifar10")
        em = self.jobs.get(name)
        if em is None:
            spec = JobSpec(name, app, now, 1, None)
            em = self.jobs[name] = Emulated(TrainingJob(spec, self.profiles[app], self.restart_delay_s), now)
        mine = [p for p in pods if (p.metadata.labels or {}).get(obj.pod_label) == name
                and p.metadata.deletion_timestamp is None and (p.metadata.owner_references or [None])[0]
                and p.metadata.owner_references[0].uid == obj.uid]
        if em.done_s is not None:
            # Every tick, not once, and even once the job is marked complete: every worker's trainer exits
            # when training is done. The operator may have recreated the job as it finished (the new pods
            # load the checkpoint, find the job done and exit 0 too), and the training operator marks an
            # elastic PyTorchJob Succeeded as soon as one worker has, leaving a worker created after our
            # pod list Running (its CleanPodPolicy defaults to None) and holding its GPU for good.
            succeed(core, self.namespace, mine)
            return
        running = sum(1 for p in mine if p.status.phase == "Running")
        want = obj.want
        gpus = running * obj.per_pod_gpus if obj.gpus_from_pods else int(obj.env.get("AUTOCM_GPUS") or 0)
        batch = int(obj.env.get("AUTOCM_BATCH_SIZE") or 0)
        ok = not obj.suspended and want > 0 and running >= want and gpus > 0 and batch > 0
        config = (gpus, batch) if ok else None
        if config != em.running or (ok and obj.uid != em.uid):
            job = em.job
            if config is None:
                job.reallocate(())
            else:
                job.reallocate(placement(gpus), batch)  # resumes from its progress: the checkpoint
                fit_batch(job)
                em.restarts = max(job.num_restarts, 0)  # the first start is not a restart
                em.uid = obj.uid
            em.running = config

    def tick(self, start_s: float, seconds: float) -> None:
        with self.lock:
            for em in self.jobs.values():
                job = em.job
                if em.running is None or job.done or job.config is None:
                    continue
                working = max(0.0, seconds - job.restart_left_s)  # restoring the checkpoint first
                iteration = job.iteration_time_s()
                job.advance(start_s, seconds)
                if working > 0:
                    steps = working / iteration
                    em.steps += steps
                    em.step_sum_s += steps * iteration
                    em.samples += steps * job.config.batch_size
                if job.done:
                    em.done_s = job.completion_s
                    em.running = None

    def exposition(self) -> str:
        lines = []
        with self.lock:
            for name, em in sorted(self.jobs.items()):
                job = em.job
                if em.running is None or job.config is None or job.done:
                    continue
                lab = f'namespace="{self.namespace}",job_name="{name}",replica="0"'
                p = job.profile
                batch = min(max(job.config.batch_size, p.init_batch_size), p.max_batch_size)
                grad_sqr, grad_var = p.grad_stats(batch, min(job.epoch, p.max_epochs - 1))
                lines += [
                    f"autocm_train_step_seconds_sum{{{lab}}} {em.step_sum_s!r}",
                    f"autocm_train_step_seconds_count{{{lab}}} {em.steps!r}",
                    f"autocm_train_batch_size{{{lab}}} {job.config.batch_size}",
                    f"autocm_train_local_batch_size{{{lab}}} {job.config.atomic_bsz}",
                    f"autocm_train_gpus{{{lab}}} {job.gpus}",
                    f"autocm_train_grad_sqr{{{lab}}} {grad_sqr!r}",
                    f"autocm_train_grad_var{{{lab}}} {grad_var!r}",
                    f"autocm_train_progress{{{lab}}} {job.progress_ratio!r}",
                    f"autocm_train_samples_total{{{lab}}} {em.samples!r}",
                ]
        return "\n".join(lines) + "\n"

    def state(self) -> dict[str, Any]:
        with self.lock:
            return {n: {"application": em.job.spec.application, "first_seen_s": em.first_seen_s,
                        "done_s": em.done_s, "restarts": em.restarts, "running": em.running,
                        "progress": em.job.progress_ratio} for n, em in self.jobs.items()}


def serve(emu: TrainingEmulator, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/state"):
                body, kind = json.dumps(emu.state()).encode(), "application/json"
            else:
                body, kind = emu.exposition().encode(), "text/plain; version=0.0.4"
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kubeconfig", required=True)
    ap.add_argument("--namespace", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--speed", type=float, default=50.0, help="Emulated seconds per wall-clock second.")
    ap.add_argument("--restart-delay", type=float, default=30.0, help="Emulated seconds to resume a checkpoint.")
    ap.add_argument("--tick", type=float, default=0.25)
    args = ap.parse_args()

    import kubernetes

    client = kubernetes.config.new_client_from_config(config_file=args.kubeconfig)
    batch_api, core = kubernetes.client.BatchV1Api(client), kubernetes.client.CoreV1Api(client)
    custom = kubernetes.client.CustomObjectsApi(client)
    emu = TrainingEmulator(args.namespace, load_profiles(), args.speed, args.restart_delay)
    serve(emu, args.port)
    last = emu.now()
    while True:
        try:
            emu.observe(batch_api, core, custom)
        except Exception as exc:  # the apiserver may be briefly busy; keep serving the last state
            print(f"training emulator: cluster read failed: {exc}", flush=True)
        time.sleep(args.tick)
        now = emu.now()
        emu.tick(last, now - last)
        last = now


if __name__ == "__main__":
    main()
