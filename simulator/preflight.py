"""What ``autocm sim --check`` verifies beyond the scenario file itself, with the data loaded.

:func:`simulator.scenario.load` checks the file: types, ranges, the magnitudes the file states. Some
promises can only be checked once the data are read: a request log's own span, the configuration a
service starts in when the file leaves it to the latency table, whether every training job can ever be
placed, whether a named checkpoint is one. Each of these was a silent wrong answer or a run that never
ends; here each is one clear line naming the field.
"""

from __future__ import annotations

from typing import Any

from simulator.scenario import MAX_CONTROL_STEPS, MAX_DURATION_S, Scenario, ScenarioError, training_workload_paths


def check_runnable(scenario: Scenario, services: list[Any] | None = None) -> None:
    """Raise :class:`ScenarioError` if the scenario, with its data, cannot run to a correct end in bounded time.

    ``services``: the scenario's built inference services (``simulator.workloads.build_services``), if
    the caller has them already.
    """
    from simulator.workloads import build_services, duration_of

    path = scenario.path
    services = build_services(scenario) if services is None else services
    cluster = scenario.raw["cluster"]
    gpus = int(cluster["nodes"]) * int(cluster["gpus_per_node"])
    duration = duration_of(scenario)
    if duration > MAX_DURATION_S:
        raise ScenarioError(f"{path}: inference: the request logs span {duration:g} s, above the limit of "
                            f"{MAX_DURATION_S:g} s per run; set duration_s or trace.duration_s to cut them")
    if services and duration / scenario.control_interval_s > MAX_CONTROL_STEPS:
        raise ScenarioError(f"{path}: control_interval_s: {scenario.control_interval_s:g} s over {duration:g} s is "
                            f"more than {MAX_CONTROL_STEPS} control steps; use a longer interval or set duration_s")
    start = 0.0
    for i, svc in enumerate(services):
        first = svc.space.default()
        need = float(first["replicas"]) * float(first["gpus_per_replica"])
        start += need
        if start > gpus:
            raise ScenarioError(
                f"{path}: inference[{i}].initial: the services start with {start:g} GPUs in all (this one "
                f"{first['replicas']:g} replicas x {first['gpus_per_replica']:g} GPUs), and the cluster has "
                f"{gpus}; lower initial.replicas or initial.gpus_per_replica (the run would silently start smaller)")
    if scenario.training:
        _check_training(scenario, gpus, bounded=bool(services))
    _check_checkpoints(scenario, services)


def _check_training(scenario: Scenario, gpus: int, bounded: bool) -> None:
    """The workload files are valid, and (``bounded`` False: no inference service, so training runs until
    every job is done) every job fits the cluster: one that can never be placed would run forever. Next to
    inference services training stops with them, and a job too wide is reported as unfinished."""
    from simulator.training.workloads import load_workload

    for wl in training_workload_paths(scenario.training["workload"], scenario.path):
        try:
            jobs = load_workload(wl)
        except ValueError as exc:
            raise ScenarioError(f"{scenario.path}: training.workload: {exc}") from None
        if bounded:
            continue
        widest = max(jobs, key=lambda j: j.num_replicas)
        if widest.num_replicas > gpus:
            raise ScenarioError(f"{scenario.path}: training.workload: {wl}: job {widest.name} asks for "
                                f"{widest.num_replicas} GPUs and the cluster has {gpus}; it could never start")


def _check_checkpoints(scenario: Scenario, services: list[Any]) -> None:
    """A checkpoint named by a policy must be an autocm checkpoint of that learner and of these knobs."""
    from controller.checkpoint import decode

    for i, policy in enumerate(scenario.policies):
        ref = policy.get("checkpoint")
        if ref is None:
            continue
        where = f"{scenario.path}: policies[{i}].checkpoint"
        path = scenario.resolve(ref)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            raise ScenarioError(f"{where}: {path} does not exist (make one with autocm train)") from None
        except OSError as exc:
            raise ScenarioError(f"{where}: cannot read {path}: {exc.strerror}") from None
        for svc in services:
            try:
                decode(blob, policy["name"], svc.space)
            except Exception as exc:  # anything decode raises means "not a usable checkpoint"
                reason = str(exc) if type(exc).__name__ == "CheckpointError" else \
                    f"not an autocm checkpoint ({type(exc).__name__}: {exc})"
                raise ScenarioError(f"{where}: {path}: {reason}"[:400]) from None
