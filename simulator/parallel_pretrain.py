"""Asynchronous parallel training of ``slo-rl`` (``autocm train --workers N``): N simulator workers
in processes share one learner, with bounded staleness, until held-out checks say it converged.

**Protocol.** The coordinator holds the shared learner and a version ``V`` (the number of merges so
far). A free worker gets a task: a training seed and a snapshot of the shared state at version ``v``.
It runs one episode with a private copy of the learner (which keeps learning online inside the
episode, as the deployed policy does) and sends back the experience the copy's models were fed
(``SloRl.take_experience``). The coordinator merges every result that has arrived into the shared
learner as *one* update (``SloRl.absorb``: the Bayesian capacity and alarm posteriors take one Laplace
step over all rows with the shared posterior as the prior; the demand forecaster replays each
episode's rates), then hands fresh snapshots to free workers.

**Bounded staleness** (stale-synchronous parallel; Ho et al., "More effective distributed ML via a
stale synchronous parallel parameter server", NIPS 2013): a result computed from snapshot ``v`` is
merged as update ``V + 1`` only while ``V - v <= S``, for it and for every task still running, so no
experience is ever merged from a snapshot more than ``S`` updates old. When a merge would break the
bound for a task still running, the coordinator waits for that task first. ``S = 0`` is synchronous
(every round's results merge together); larger ``S`` lets fast workers run ahead. Each merged
result's staleness is recorded and checked.

**Convergence from sampled data only.** Every ``check_every`` merged episodes the coordinator runs
held-out evaluation episodes (seeds disjoint from the training seeds) from the current snapshot and
records their SLO attainment, GPU-hours, and the capacity posterior's residual on the held-out
intervals (mean absolute error of the snapshot's predicted miss probability against the intervals'
labels, predicted before any of them was learned). This is early stopping on held-out quality: a
check improves on the best so far when it meets the SLO on more held-out seeds, or on as many at
GPU-hours lower by more than ``tol_gpu`` or attainment higher by more than ``tol_attainment``.
Training has *converged* when ``patience`` checks in a row did not improve on the best and the
residual did not grow by more than ``tol_residual`` since it; *diverging* when they did not improve
and the residual grew (more experience made the posterior predict held-out intervals worse). Either
stops ``--until-converged`` training, and the learner is given back the snapshot of the best check
(``keep_best``), so the checkpoint holds the policy the held-out evidence chose. The simulator's true
model is never read, and held-out experience is never merged. Results still in flight at the stop
are discarded.

Process management lives here, outside ``learners/`` (which has no I/O). The episode function is a
picklable callable, so a test can train a toy service through the same coordinator.
"""

from __future__ import annotations

import math
import multiprocessing
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True)
class ParallelSettings:
    workers: int = 2
    """Simulator workers (processes) running episodes at the same time."""
    staleness: int = 1
    """S: experience is merged only from snapshots at most this many updates old."""
    max_episodes: int = 24
    """Training episode budget (with ``until_converged``, training stops earlier when converged)."""
    until_converged: bool = True
    check_every: int = 2
    """Training episodes merged between held-out checks (the same for any number of workers)."""
    eval_seeds: tuple[int, ...] = (10_001, 10_002, 10_003)
    patience: int = 3
    """K: converged when the last K checks improved on the check before them by at most the tolerances."""
    tol_attainment: float = 0.002
    tol_gpu: float = 0.03
    tol_residual: float = 0.05
    """Held-out residual growth over the best check's that reads as diverging (the soft labels'
    mean absolute error is O(0.03-0.1))."""
    keep_best: bool = True
    """The checkpoint holds the policy of the best check (early stopping), not the last merge's."""
    backend: str = "process"
    """"process" (a process pool: CPython threads would share one core for the simulator), "thread",
    or "ray" (Ray tasks on the cluster at ``ray_address``: controller/backends/ray_pool.py)."""
    ray_address: str | None = None

    def validate(self, train_seeds: Sequence[int]) -> None:
        if self.workers < 1:
            raise ValueError(f"--workers must be at least 1, got {self.workers}")
        if self.staleness < 0:
            raise ValueError(f"--staleness must be 0 or more, got {self.staleness}")
        if self.patience < 1 or self.check_every < 1:
            raise ValueError("patience and check_every must be at least 1")
        if not self.eval_seeds:
            raise ValueError("convergence checks need at least one held-out evaluation seed")
        overlap = sorted(set(self.eval_seeds) & set(train_seeds))
        if overlap:
            raise ValueError(f"evaluation seeds {overlap} are also training seeds: held-out means disjoint")
        if self.backend not in ("process", "thread", "ray"):
            raise ValueError(f"backend must be 'process', 'thread' or 'ray', got {self.backend!r}")


@dataclass
class EpisodeResult:
    """What a worker sends back: the episode's outcome and (for training) the learner's experience."""

    seed: int
    slo_attainment: float
    gpu_hours: float
    experience: dict[str, Any]
    wall_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class EpisodeJob(Protocol):
    """A picklable callable that runs one episode from a learner state: ``job(state, seed)``."""

    def __call__(self, state: Mapping[str, Any], seed: int) -> EpisodeResult: ...


class SharedLearner(Protocol):
    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...
    def absorb(self, batches: list[Mapping[str, Any]]) -> None: ...


@dataclass
class Check:
    """One held-out evaluation of the shared learner."""

    episodes: int
    version: int
    attainment: float
    gpu_hours: float
    residual: float
    slo_met: int
    seeds: int
    wall_s: float
    """Seconds the check's held-out episodes took."""
    wall_at_s: float = 0.0
    """Seconds from the start of training to the end of this check."""


@dataclass
class Merged:
    seed: int
    snapshot: int
    merged_as: int
    staleness: int
    slo_attainment: float
    gpu_hours: float
    wall_s: float


@dataclass
class TrainingRecord:
    verdict: str
    residual: float
    checks: list[Check]
    merged: list[Merged]
    workers: int
    staleness_bound: int
    max_staleness: int
    wall_s: float
    discarded: int
    best_check: int
    """Index (0-based) of the check whose policy the learner holds after training."""

    def summary(self) -> dict[str, Any]:
        """What goes into the checkpoint (``SloRl.training``): the verdict, its evidence, the settings."""
        return {"verdict": self.verdict, "residual": self.residual, "workers": self.workers,
                "staleness_bound": self.staleness_bound, "max_staleness": self.max_staleness,
                "episodes": len(self.merged), "wall_s": round(self.wall_s, 2), "best_check": self.best_check,
                "checks": [asdict(c) for c in self.checks]}


def held_out_residual(learner: Any, experience: Sequence[Mapping[str, Any]]) -> float:
    """Mean absolute error of the learner's capacity posterior on held-out intervals' labels."""
    X = [row for e in experience for row in e.get("capacity_x", [])]
    if not X:
        return math.nan
    y = np.asarray([v for e in experience for v in e["capacity_y"]], float)
    return float(np.mean(np.abs(learner.capacity.predict(np.asarray(X, float)) - y)))


def better(c: Check, best: Check, settings: ParallelSettings) -> bool:
    """Whether check ``c`` improves on ``best`` beyond the tolerances: the SLO met on more held-out
    seeds, or on as many with GPU-hours lower by more than ``tol_gpu`` (relative) or attainment higher
    by more than ``tol_attainment``."""
    if c.slo_met != best.slo_met:
        return c.slo_met > best.slo_met
    return ((best.gpu_hours - c.gpu_hours) / max(best.gpu_hours, 1e-9) > settings.tol_gpu
            or c.attainment - best.attainment > settings.tol_attainment)


def best_index(checks: Sequence[Check], settings: ParallelSettings) -> int:
    """The check whose policy training keeps: the first one no later check improved on."""
    b = 0
    for i in range(1, len(checks)):
        if better(checks[i], checks[b], settings):
            b = i
    return b


def verdict(checks: Sequence[Check], settings: ParallelSettings) -> str:
    """Early stopping on held-out quality: ``converged`` when the last ``patience`` checks improved
    on the best check before them by at most the tolerances (more training stopped buying anything
    measurable) and the held-out residual of the capacity posterior did not grow by more than
    ``tol_residual`` over the best check's (the model still predicts held-out intervals as well);
    ``diverging`` when the checks stopped improving but the residual grew; ``converging`` otherwise."""
    k = settings.patience
    if len(checks) <= k:
        return "exploring" if len(checks) < 2 else "converging"
    b = best_index(checks, settings)
    if len(checks) - 1 - b < k:
        return "converging"
    grew = max(c.residual for c in checks[b:]) - checks[b].residual
    return "diverging" if math.isfinite(grew) and grew > settings.tol_residual else "converged"


def _executor(settings: ParallelSettings) -> Executor:
    if settings.backend == "thread":
        return ThreadPoolExecutor(max_workers=settings.workers)
    if settings.backend == "ray":
        from controller.backends.ray_pool import RayExecutor

        return RayExecutor(settings.ray_address)
    # fork: workers inherit the loaded code and scenario data (Linux); spawn elsewhere
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    return ProcessPoolExecutor(max_workers=settings.workers, mp_context=multiprocessing.get_context(method))


def train_parallel(learner: SharedLearner, job: EpisodeJob, train_seeds: Sequence[int], settings: ParallelSettings,
                   objective_attainment: float,
                   progress: Callable[[str], None] | None = None) -> TrainingRecord:
    """Train ``learner`` in place with ``settings.workers`` workers running ``job`` (see the module docs).
    ``train_seeds`` must hold at least ``max_episodes`` seeds, all disjoint from the evaluation seeds."""
    settings.validate(train_seeds)
    seeds = list(train_seeds)[: settings.max_episodes]
    t0 = time.perf_counter()
    version, snapshot = 0, learner.state_dict()
    inflight: dict[Future[EpisodeResult], tuple[int, int]] = {}  # future -> (seed, snapshot version)
    arrived: list[tuple[EpisodeResult, int]] = []
    merged: list[Merged] = []
    checks: list[Check] = []
    state, next_check = "exploring", settings.check_every
    states: list[dict[str, Any]] = []  # the snapshot each check evaluated
    say = progress or (lambda _msg: None)

    with _executor(settings) as pool:
        def check() -> None:
            nonlocal state
            c0 = time.perf_counter()
            states.append(snapshot)
            futures = [pool.submit(job, snapshot, s) for s in settings.eval_seeds]
            results = [f.result() for f in futures]
            checks.append(Check(len(merged), version, float(np.mean([r.slo_attainment for r in results])),
                                float(np.mean([r.gpu_hours for r in results])),
                                held_out_residual(learner, [r.experience for r in results]),
                                sum(r.slo_attainment >= objective_attainment for r in results), len(results),
                                time.perf_counter() - c0, time.perf_counter() - t0))
            state = verdict(checks, settings)
            c = checks[-1]
            say(f"check {len(checks)} after {c.episodes} episodes: held-out attainment {c.attainment:.4f} "
                f"(SLO met on {c.slo_met}/{c.seeds}), {c.gpu_hours:.2f} GPU-h, residual {c.residual:.3f}: {state}")

        while True:
            stop = settings.until_converged and state in ("converged", "diverging")
            while not stop and len(inflight) < settings.workers and seeds:
                s = seeds.pop(0)
                inflight[pool.submit(job, snapshot, s)] = (s, version)
            if stop or (not inflight and not arrived):
                break
            if inflight:
                done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
                for f in done:
                    arrived.append((f.result(), inflight.pop(f)[1]))
            # merge everything that arrived as one update, if no running task would become too stale
            if arrived and all(version + 1 - v <= settings.staleness for _, v in inflight.values()):
                for r, v in arrived:
                    if version - v > settings.staleness:  # the invariant above makes this unreachable
                        raise AssertionError(f"staleness {version - v} above the bound {settings.staleness}")
                    merged.append(Merged(r.seed, v, version + 1, version - v, r.slo_attainment, r.gpu_hours,
                                         r.wall_s))
                learner.absorb([r.experience for r, _ in arrived])
                arrived.clear()
                version += 1
                snapshot = learner.state_dict()
                say(f"merged update {version}: {len(merged)} episodes")
                if len(merged) >= next_check:  # at fixed multiples, however the merges bunch up
                    check()
                    while next_check <= len(merged):
                        next_check += settings.check_every
        if not checks or checks[-1].version != version:
            check()
        best = best_index(checks, settings) if settings.keep_best else len(checks) - 1
        if best != len(checks) - 1:
            learner.load_state_dict(states[best])
            say(f"keeping the policy of check {best + 1} (the best on held-out seeds)")
        for f in inflight:  # converged: what is still running was computed for an older policy
            f.cancel()
        discarded = len(inflight) + len(arrived)
        wall = time.perf_counter() - t0  # before the pool waits for episodes it will discard
    return TrainingRecord(state, checks[best].residual, checks, merged, settings.workers, settings.staleness,
                          max((m.staleness for m in merged), default=0), wall, discarded, best)


# --- the simulator as the episode source (autocm train --workers N) ---------------------------------
_SCENARIOS: dict[str, Any] = {}  # per worker process: the loaded scenario, read once


@dataclass(frozen=True)
class SimEpisodeJob:
    """Runs one episode of a scenario in a worker process from a snapshot of the shared learner."""

    scenario: str
    learner_name: str
    settings: tuple[tuple[str, Any], ...]

    def __call__(self, state: Mapping[str, Any], seed: int) -> EpisodeResult:
        from simulator import scenario as sc
        from simulator.pretrain import make_learner, run_episode

        t0 = time.perf_counter()
        loaded = _SCENARIOS.get(self.scenario)
        if loaded is None:
            loaded = _SCENARIOS[self.scenario] = sc.load(self.scenario)
        learner, _, _ = make_learner(loaded, self.learner_name, dict(self.settings), seed)
        learner.load_state_dict(state)
        learner.record_experience()
        s = run_episode(loaded, learner, self.learner_name, seed)
        return EpisodeResult(seed, s["slo_attainment"], s["gpu_hours"], learner.take_experience(),
                             time.perf_counter() - t0, {"changes": s["config_changes"]})


def pretrain_parallel(scenario: Any, learner_name: str, settings: Mapping[str, Any] | None, first_seed: int,
                      parallel: ParallelSettings, progress: Callable[[str], None] | None = None) -> Any:
    """``autocm train --workers N``: the checkpoint (``Pretrained``) with the training record in it."""
    from controller.checkpoint import encode
    from simulator.pretrain import Episode, Pretrained, make_learner, provenance
    from simulator.scenario import ScenarioError

    learner, space, objective = make_learner(scenario, learner_name, settings, first_seed)
    if not hasattr(learner, "absorb"):
        raise ScenarioError(f"learner {learner_name!r} cannot merge experience from workers; "
                            "--workers works with slo-rl")
    seeds = range(first_seed, first_seed + parallel.max_episodes)
    job = SimEpisodeJob(str(scenario.path), learner_name, tuple(sorted((settings or {}).items())))
    record = train_parallel(learner, job, seeds, parallel, objective.attainment, progress)
    learner.training = record.summary()
    episodes = [Episode(m.seed, m.slo_attainment, m.gpu_hours, 0, f"merged as update {m.merged_as} "
                        f"(staleness {m.staleness})", m.wall_s) for m in record.merged]
    state = dict(learner.state_dict())
    state["provenance"] = provenance(scenario, learner_name, settings, episodes)
    return Pretrained(learner_name, encode(learner_name, space, state, samples=len(episodes)), episodes), record
