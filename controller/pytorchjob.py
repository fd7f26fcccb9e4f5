"""Kubeflow ``PyTorchJob`` (kubeflow.org/v1) as a managed training workload: where its knobs live.

A PyTorchJob has one pod template per replica type under ``spec.pytorchReplicaSpecs`` (``Master``:
rank 0, one replica; ``Worker``: the rest). autocm reads and writes:

- ``replicas``: ``Worker.replicas`` (``Master.replicas`` for a job that has no Worker);
- GPUs, CPU, memory and the ``AUTOCM_*`` env knobs: the managed container of *every* replica type's
  template (each rank runs the same trainer, so all must agree).

How a resize happens depends on the job:

- an **elastic** job (``spec.elasticPolicy``, torchrun rendezvous) takes a new ``Worker.replicas``
  in place, within ``elasticPolicy.minReplicas``..``maxReplicas`` (the training operator adds or
  removes workers and the rendezvous re-forms);
- anything else (a non-elastic replica count is baked into every rank's ``WORLD_SIZE``; a template
  change needs new pods) is the checkpoint-aware **recreation** that batch/v1 Jobs use
  (docs/operator.md): delete, wait, apply again under the same name.

Pure functions over plain dicts: the Kubernetes calls stay in :mod:`controller.kube`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from typing import Any

KIND = "PyTorchJob"
API_VERSION = "kubeflow.org/v1"
PLURAL = "pytorchjobs"
JOB_NAME_LABEL = "training.kubeflow.org/job-name"
"""The label the training operator puts on a PyTorchJob's pods."""


def path(namespace: str, name: str) -> str:
    return f"/apis/{API_VERSION}/namespaces/{namespace}/{PLURAL}/{name}"


def replica_specs(obj: Mapping[str, Any]) -> dict[str, Any]:
    return obj.get("spec", {}).get("pytorchReplicaSpecs", {}) or {}


def scaled_type(obj: Mapping[str, Any]) -> str:
    """The replica type whose count is the ``replicas`` knob: Worker, else Master."""
    specs = replica_specs(obj)
    if "Worker" in specs:
        return "Worker"
    if "Master" in specs:
        return "Master"
    raise ValueError(f"PyTorchJob {obj.get('metadata', {}).get('name')} has neither a Worker nor a "
                     "Master in spec.pytorchReplicaSpecs")


def pod_spec(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The pod spec whose container autocm reads (the scaled replica type's)."""
    return replica_specs(obj)[scaled_type(obj)].get("template", {}).get("spec", {})


def replicas(obj: Mapping[str, Any]) -> int:
    return int(replica_specs(obj)[scaled_type(obj)].get("replicas", 1))


def elastic_bounds(obj: Mapping[str, Any]) -> tuple[int, float] | None:
    """(minReplicas, maxReplicas) of an elastic job, None for a fixed-size one (no elasticPolicy)."""
    policy = obj.get("spec", {}).get("elasticPolicy")
    if policy is None:
        return None
    low = policy.get("minReplicas")
    high = policy.get("maxReplicas")
    return (int(low) if low is not None else 1, float(high) if high is not None else math.inf)


def replicas_patch(obj: Mapping[str, Any], count: int) -> dict[str, Any]:
    """The JSON merge patch that sets the scaled replica type's count (elastic resize). A merge patch, not a
    server-side apply: see :meth:`controller.kube.Kube.merge_patch`."""
    return {"spec": {"pytorchReplicaSpecs": {scaled_type(obj): {"replicas": count}}}}


def recreated_spec(obj: Mapping[str, Any], container: str, mine: Mapping[str, Any],
                   count: int | None) -> dict[str, Any]:
    """The job's spec with autocm's container fields in every replica type's template, and ``count``.

    ``mine`` is what :func:`controller.kube.template_fields` returns: resources are merged into the
    container's own, env entries replace those of the same name; everything else is kept.
    """
    spec = copy.deepcopy(dict(obj.get("spec", {})))
    for role in spec.get("pytorchReplicaSpecs", {}).values():
        containers = role.get("template", {}).get("spec", {}).get("containers", [])
        role["template"]["spec"]["containers"] = [merge_container(c, mine) if c.get("name") == container
                                                  else c for c in containers]
    if count is not None:
        spec["pytorchReplicaSpecs"][scaled_type(obj)]["replicas"] = count
    return spec


def merge_container(container: Mapping[str, Any], mine: Mapping[str, Any]) -> dict[str, Any]:
    """``container`` with autocm's resources merged in and its ``AUTOCM_*`` env entries replaced."""
    merged = dict(container)
    if "resources" in mine:
        res = {k: dict(v) for k, v in container.get("resources", {}).items()}
        for k, v in mine["resources"].items():
            res.setdefault(k, {}).update(v)
        merged["resources"] = res
    if "env" in mine:
        ours = {e["name"] for e in mine["env"]}
        merged["env"] = [e for e in container.get("env", []) if e.get("name") not in ours] + list(mine["env"])
    return merged
