"""The training emulator's own contract, without a cluster: what its pods do once a job is done.

Why: CI once stalled the Kubeflow pool e2e with the last job short of its GPUs. The training operator marks an
elastic PyTorchJob Succeeded as soon as one worker has (pytorchjob_controller.go in v1.8.1), and with its default
CleanPodPolicy (None) a worker the emulator had not yet set Succeeded stayed Running on its GPU for good, because
the emulator stopped finishing pods of a job marked complete. Every trainer of a finished job exits, so the
emulator must finish every one of its pods, whatever the job's conditions say.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from controller.pytorchjob import JOB_NAME_LABEL
from simulator.training.profiles import load_profiles

from .training_emulator import TrainingEmulator, pytorchjob_object

NS = "pool"


def _pod(name: str, job: str, uid: str, phase: str) -> Any:
    return SimpleNamespace(
        metadata=SimpleNamespace(name=name, labels={JOB_NAME_LABEL: job}, deletion_timestamp=None,
                                 owner_references=[SimpleNamespace(uid=uid)]),
        spec=SimpleNamespace(containers=[SimpleNamespace(name="pytorch", image="trainer")]),
        status=SimpleNamespace(phase=phase, start_time=None))


class _Core:
    """Records the pod status patches the emulator sends."""

    def __init__(self) -> None:
        self.patched: list[str] = []

    def patch_namespaced_pod_status(self, name: str, namespace: str, body: dict) -> None:
        assert namespace == NS and body["status"]["phase"] == "Succeeded"
        self.patched.append(name)


def _job(succeeded: bool) -> dict:
    container = {"name": "pytorch", "env": [{"name": "AUTOCM_BATCH_SIZE", "value": "128"}],
                 "resources": {"limits": {"nvidia.com/gpu": 1}}}
    return {"metadata": {"name": "j", "uid": "u1", "labels": {"autocm.io/pool": "p"}},
            "spec": {"runPolicy": {"suspend": False},
                     "pytorchReplicaSpecs": {"Worker": {"replicas": 2, "template": {"spec": {
                         "containers": [container]}}}}},
            "status": {"conditions": [{"type": "Succeeded", "status": "True"}] if succeeded else []}}


def test_a_done_jobs_running_workers_are_finished_even_once_the_job_is_marked_succeeded() -> None:
    emu = TrainingEmulator(NS, load_profiles(), speed=50.0, restart_delay_s=30.0)
    core = _Core()
    running = [_pod("j-worker-0", "j", "u1", "Running"), _pod("j-worker-1", "j", "u1", "Running")]
    emu._observe_job(pytorchjob_object(_job(succeeded=False)), running, 0.0, core)  # starts it
    emu.jobs["j"].done_s = 100.0  # the emulated training reached its last epoch
    # The training operator has already marked the job Succeeded (worker 0 exited); worker 1 still runs.
    pods = [_pod("j-worker-0", "j", "u1", "Succeeded"), _pod("j-worker-1", "j", "u1", "Running"),
            _pod("other-worker-0", "other", "u2", "Running")]
    emu._observe_job(pytorchjob_object(_job(succeeded=True)), pods, 200.0, core)
    assert core.patched == ["j-worker-1"]  # not the finished pod, not another job's
