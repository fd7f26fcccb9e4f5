"""Pollux (Qiao et al., OSDI'21), re-implemented: a job's goodput model and the cluster's genetic allocation search.

Two halves, as in the paper and in its artifact (AdaptDL, branch ``osdi21-artifact``):

* **PolluxAgent's goodput model** (``simulator/goodput.py``, the same as ``adaptdl/adaptdl/goodput.py``):
  a step-time model fitted online from the (placement, local batch) step times a job has actually run
  (:func:`fit_perf_params`), times the statistical efficiency given by the gradient noise scale the job
  reports (:meth:`GoodputModel.efficiency`). :meth:`GoodputModel.optimize` picks the batch size per
  allocation, and :func:`speedup_table` turns the model into the speedup curve the scheduler sees
  (``simulator/speedup.py`` ``SpeedupFunction``, with the fair-share base of ``pollux.py``
  ``Problem.__init__``).
* **PolluxSched's search** (``simulator/pollux.py`` ``PolluxPolicy`` / ``Problem``): a genetic search
  over job x node replica matrices, with the artifact's crossover, mutation and repair (one distributed
  job per node: interference avoidance; at most ``max_replicas`` per job; node capacity, served in
  least-attained-service order), maximising the power mean (p = -1) of re-allocation-penalised,
  share-scaled speedups (:func:`fitness`).

Re-implemented from reading those files, not copied; each piece names the function it follows. Where
this differs from the artifact it says so (the artifact's NSGA-II keeps a second objective, cluster
utility, that only its autoscaler uses; here the survival is single-objective and elitist on the
objective the artifact selects its answer by: see :class:`SearchSettings`).

Pure: numpy and scipy only, no simulator, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.optimize

_EPS = 1e-8  # tolerance of ceil()/floor() on batch arithmetic (goodput.py GoodputFunction.optimize)
_TINY = 1e-8  # the artifact's stand-in for "no network" (goodput.py _predict_network_time)


# --------------------------------------------------------------------------------------------------
# Throughput model (goodput.py PerfParams, _predict_*, fit_perf_params)
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PerfParams:
    """Step-time model: compute ``alpha_c + beta_c * bsz``; network ``alpha + beta * (replicas - 2)`` over the
    slowest link (``_n`` across nodes, ``_r`` within one); the two overlap as a ``gamma``-norm."""

    alpha_c: float
    beta_c: float
    alpha_n: float
    beta_n: float
    alpha_r: float
    beta_r: float
    gamma: float

    def as_array(self) -> np.ndarray:
        return np.array([self.alpha_c, self.beta_c, self.alpha_n, self.beta_n, self.alpha_r, self.beta_r,
                         self.gamma], dtype=float)


def _network_terms(num_nodes: np.ndarray, num_replicas: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inter-node mask, intra-node mask, retrogression multiplier) as ``_predict_network_time`` selects them."""
    inter = num_nodes > 1
    intra = ~inter & (num_replicas > 1)
    retro = np.maximum(num_replicas - 2, _TINY)
    return inter, intra, retro


def predict_accum_time(p: PerfParams, atomic_bsz: np.ndarray) -> np.ndarray:
    """One forward/backward pass (``_predict_accum_time``): linear in the micro-batch."""
    return p.alpha_c + p.beta_c * np.asarray(atomic_bsz, dtype=float)


def predict_network_time(p: PerfParams, num_nodes: np.ndarray, num_replicas: np.ndarray) -> np.ndarray:
    """All-reduce time (``_predict_network_time``); ~0 on one GPU."""
    inter, intra, retro = _network_terms(np.asarray(num_nodes), np.asarray(num_replicas, dtype=float))
    alpha = np.where(inter, p.alpha_n, np.where(intra, p.alpha_r, _TINY))
    beta = np.where(inter, p.beta_n, np.where(intra, p.beta_r, _TINY))
    return alpha + beta * retro


def predict_step_time(p: PerfParams, num_nodes, num_replicas, atomic_bsz, accum_steps) -> np.ndarray:
    """Seconds per optimizer step: ``accum_steps`` plain passes plus one synchronised step, whose compute and
    network overlap as ``(T_c^g + T_n^g)^(1/g)`` (``GoodputFunction.throughput``)."""
    accum = predict_accum_time(p, atomic_bsz)
    net = predict_network_time(p, num_nodes, num_replicas)
    optim = np.exp(np.logaddexp(p.gamma * np.log(accum), p.gamma * np.log(net)) / p.gamma)
    return np.asarray(accum_steps) * accum + optim


def _objective(theta: np.ndarray, nodes: np.ndarray, replicas: np.ndarray, bsz: np.ndarray,
               log_accum: np.ndarray, log_optim: np.ndarray) -> tuple[float, np.ndarray]:
    """``_obj_fn`` and its gradient (the artifact differentiates with autograd; here by hand).

    RMS log error of the compute time + RMS log error of the step time + ``1e-3 (gamma-1)^2`` + a
    ``1e-2 (beta/alpha)^2`` pull towards an optimistic (non-retrogressing) network.
    """
    return _objective_on(theta, _FitData.of(nodes, replicas, bsz, log_accum, log_optim))


@dataclass(frozen=True)
class _FitData:
    """What :func:`_objective_on` needs that does not depend on the parameters, computed once per fit rather
    than on each of the ~100 evaluations the optimiser makes (the values, and so the fit, are the same)."""

    nodes: np.ndarray
    replicas: np.ndarray
    bsz: np.ndarray
    log_accum: np.ndarray
    log_optim: np.ndarray
    inter: np.ndarray
    intra: np.ndarray
    retro: np.ndarray
    inter_f: np.ndarray
    intra_f: np.ndarray
    no_net: np.ndarray

    @classmethod
    def of(cls, nodes: np.ndarray, replicas: np.ndarray, bsz: np.ndarray, log_accum: np.ndarray,
           log_optim: np.ndarray) -> _FitData:
        inter, intra, retro = _network_terms(nodes, replicas)
        return cls(nodes, replicas, bsz, log_accum, log_optim, inter, intra, retro, inter.astype(float),
                   intra.astype(float), _TINY + _TINY * retro)


def _objective_on(theta: np.ndarray, d: _FitData) -> tuple[float, np.ndarray]:
    """:func:`_objective` on precomputed data; ``np.add.reduce`` is what ``np.sum``/``np.mean`` call, minus
    their wrappers, so every value is the one those give."""
    ac, bc, an, bn, ar, br, g = theta
    bsz, retro, add = d.bsz, d.retro, np.add.reduce
    accum = ac + bc * bsz
    net = np.where(d.inter, an + bn * retro, np.where(d.intra, ar + br * retro, d.no_net))
    la, ln = np.log(accum), np.log(net)
    log_s = np.logaddexp(g * la, g * ln)
    pred = log_s / g
    wa, wn = np.exp(g * la - log_s), np.exp(g * ln - log_s)  # d pred / d log(accum), d pred / d log(net)
    grad = np.zeros(7)
    e1 = la - d.log_accum
    err1 = math.sqrt(float(add(e1 ** 2)) / len(e1))
    if err1 > 1e-12:
        c = e1 / (err1 * len(e1))
        grad[0] += add(c / accum)
        grad[1] += add(c * bsz / accum)
    e2 = pred - d.log_optim
    err2 = math.sqrt(float(add(e2 ** 2)) / len(e2))
    if err2 > 1e-12:
        c = e2 / (err2 * len(e2))
        d_accum, d_net = c * wa / accum, c * wn / net
        grad[0] += add(d_accum)
        grad[1] += add(d_accum * bsz)
        grad[2] += add(d_net * d.inter_f)
        grad[3] += add(d_net * d.inter_f * retro)
        grad[4] += add(d_net * d.intra_f)
        grad[5] += add(d_net * d.intra_f * retro)
        grad[6] += add(c * ((wa * la + wn * ln) / g - log_s / g ** 2))
    reg1 = 1e-3 * (g - 1) ** 2
    grad[6] += 2e-3 * (g - 1)
    reg2 = 1e-2 * ((bn / an) ** 2 + (br / ar) ** 2)
    grad[2] += -2e-2 * bn ** 2 / an ** 3
    grad[3] += 2e-2 * bn / an ** 2
    grad[4] += -2e-2 * br ** 2 / ar ** 3
    grad[5] += 2e-2 * br / ar ** 2
    return err1 + err2 + reg1 + reg2, grad


def fit_perf_params(num_nodes: Sequence[int], num_replicas: Sequence[int], atomic_bsz: Sequence[float],
                    accum_step_time: Sequence[float], optim_step_time: Sequence[float]) -> PerfParams:
    """Least-squares (in log space) fit of :class:`PerfParams` to the step times a job has observed.

    Follows ``goodput.py`` ``fit_perf_params``: start at ``(0.1, 0.01) x 3, gamma 1.001``; parameters the
    data cannot identify are pinned (``alpha_c`` to half the mean compute time when one micro-batch size
    was seen; the inter-node pair without multi-node data; the intra-node pair without single-node
    multi-GPU data; both betas without more than 2 replicas); L-BFGS-B within bounds (1e-8 below,
    ``gamma <= 10``); then, without multi-node data, assume the network across nodes is at least 10%
    slower than within one.
    """
    nodes = np.asarray(num_nodes, dtype=float)
    replicas = np.asarray(num_replicas, dtype=float)
    bsz = np.asarray(atomic_bsz, dtype=float)
    accum = np.asarray(accum_step_time, dtype=float)
    optim = np.asarray(optim_step_time, dtype=float)
    if not (len(nodes) == len(replicas) == len(bsz) == len(accum) == len(optim)) or len(nodes) == 0:
        raise ValueError("fit_perf_params needs equally long, non-empty observations")
    params = [1e-1, 1e-2] * 3 + [1.0 + 1e-3]
    lower = [1e-8, 1e-8] * 3 + [1.0]
    upper = [math.inf, math.inf] * 3 + [10.0]

    def pin(i: int, value: float) -> None:
        params[i] = lower[i] = upper[i] = value

    if len(np.unique(bsz)) == 1:
        pin(0, float(np.mean(accum)) / 2)
    if not np.any(nodes > 1):
        pin(2, lower[2])
        pin(3, lower[3])
    if not np.any((nodes == 1) & (replicas > 1)):
        pin(4, lower[4])
        pin(5, lower[5])
    if not np.any(replicas > 2):
        pin(3, lower[3])
        pin(5, lower[5])
    # The artifact minimises with scipy's default for bounds, L-BFGS-B; scipy's L-BFGS-B costs ~3 ms per
    # iteration here (0.2-1 s a fit, hundreds of fits per run), TNC (truncated Newton, also bounded) reaches
    # an equally small error in ~20 ms, so it is used instead.
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        result = scipy.optimize.minimize(
            _objective_on, np.array(params), args=(_FitData.of(nodes, replicas, bsz, np.log(accum), np.log(optim)),),
            jac=True,
            method="TNC", bounds=[(lo, None if math.isinf(hi) else hi) for lo, hi in zip(lower, upper, strict=True)])
    x = np.clip(result.x, lower, upper)
    if not np.any(nodes > 1):
        x[2] = max(x[2], x[4] * 1.1)
        x[3] = max(x[3], x[5] * 1.1)
    return PerfParams(*(float(v) for v in x))


# --------------------------------------------------------------------------------------------------
# Goodput = throughput x statistical efficiency (goodput.py GoodputFunction)
# --------------------------------------------------------------------------------------------------
def efficiency(grad_sqr: float, grad_var: float, init_batch_size: float, batch_size) -> np.ndarray:
    """``(PGNS + M0) / (PGNS + M)`` with ``PGNS = M0 var / sqr`` (``GoodputFunction.efficiency``); 1 at ``M0``."""
    scale = np.asarray(batch_size, dtype=float) / init_batch_size
    denom = grad_var / scale + grad_sqr
    gain = np.where(denom > 0, (grad_var + grad_sqr) / np.where(denom > 0, denom, 1.0), 1.0)
    return gain / scale


@dataclass(frozen=True)
class BatchLimits:
    """What the job's code says about its batch: the initial (tuned) batch, the largest it may grow to,
    and the per-GPU micro-batch range that fits in memory (``Application`` in ``applications.py``)."""

    init_batch_size: int
    max_batch_size: int
    min_local_bsz: int
    max_local_bsz: int


@dataclass(frozen=True)
class GoodputModel:
    """A job's belief about its goodput: fitted step times and its latest gradient statistics."""

    perf: PerfParams
    grad_sqr: float
    grad_var: float
    limits: BatchLimits

    def goodput(self, num_nodes, num_replicas, atomic_bsz, accum_steps) -> np.ndarray:
        """Samples of progress per second: ``batch / step time x efficiency(batch)``."""
        batch = np.asarray(num_replicas) * np.asarray(atomic_bsz) * (np.asarray(accum_steps) + 1)
        step = predict_step_time(self.perf, num_nodes, num_replicas, atomic_bsz, accum_steps)
        return batch / step * efficiency(self.grad_sqr, self.grad_var, self.limits.init_batch_size, batch)

    def optimize(self, num_nodes, num_replicas, max_batch_size: float | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Best (goodput, micro-batch, accumulation steps) per (nodes, replicas), with accumulation.

        ``GoodputFunction.optimize(accumulation=True)``: 50 total batches geometrically spaced from
        ``max(M0, min_local x replicas)`` to the largest allowed; the local batch is split into micro-batches
        that fit (at least two on a single GPU above ``M0``, for the gradient statistics); configurations
        whose micro-batch is outside the range score 0.
        """
        lim = self.limits
        max_batch = float(max_batch_size if max_batch_size is not None else lim.max_batch_size)
        nodes = np.atleast_1d(np.asarray(num_nodes, dtype=float))
        replicas = np.atleast_1d(np.asarray(num_replicas, dtype=float))
        nodes, replicas = np.broadcast_arrays(nodes, replicas)
        lo = np.maximum(lim.init_batch_size, lim.min_local_bsz * replicas)
        batch = np.geomspace(lo, max_batch, num=50)  # (50, k)
        local = batch / replicas
        accum = np.ceil(local / lim.max_local_bsz - _EPS) - 1
        accum = np.where((replicas == 1) & (local > lim.init_batch_size + _EPS), np.maximum(accum, 1), accum)
        accum = accum.astype(int)
        atomic = np.ceil(local / (accum + 1) - _EPS).astype(int)
        good = self.goodput(nodes, replicas, atomic, accum)
        good = np.where((lim.min_local_bsz <= atomic) & (atomic <= lim.max_local_bsz), good, 0.0)
        best = np.argmax(good, axis=0)
        cols = np.arange(good.shape[1])
        return good[best, cols], atomic[best, cols], accum[best, cols]


def goodput_table(model: GoodputModel, max_replicas: int, max_nodes: int) -> np.ndarray:
    """``table[n, r]``: the model's best goodput on ``r`` GPUs over ``n`` nodes (0 where ``n > r`` or n = 0)."""
    table = np.zeros((max_nodes + 1, max_replicas + 1))
    rr, nn = np.meshgrid(np.arange(1, max_replicas + 1), np.arange(1, max_nodes + 1))
    ok = nn <= rr
    if ok.any():
        good, _, _ = model.optimize(nn[ok], rr[ok])
        table[1:, 1:][ok] = good
    return table


def fair_share_goodput(model: GoodputModel, total_gpus: int, num_nodes: int, num_jobs: int) -> float:
    """The goodput every speedup is divided by: the job's fair share of the cluster.

    ``SpeedupFunction`` normalises by one GPU; ``Problem.__init__`` re-bases every job on its fair share
    (``ceil(GPUs / jobs)`` replicas on ``ceil(nodes / GPUs)`` nodes), which is what the search compares. A base
    of 0 (the fair share cannot hold the job's smallest batch) falls back to one GPU's goodput, where the
    artifact would divide by 0.
    """
    replicas = -(-total_gpus // max(num_jobs, 1))
    nodes = -(-num_nodes // max(total_gpus, 1))
    base = float(model.optimize(nodes, replicas)[0][0])
    return base if base > 0 else float(model.optimize(1, 1)[0][0])


# --------------------------------------------------------------------------------------------------
# PolluxSched's genetic search (pollux.py PolluxPolicy.optimize, Problem)
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SearchSettings:
    """Constants of the search, from ``PolluxPolicy.optimize`` and ``Problem`` unless said otherwise."""

    population: int = 100
    """``NSGA2(pop_size=100)``."""
    generations: int = 100
    """``("n_gen", 100)``."""
    patience: int | None = 20
    """Stop once the best fitness has not improved for this many generations (None: never). Not in the
    artifact: a speed choice. The search starts from last round's answers, so most rounds converge early."""
    power: float = -1.0
    """Exponent of the power mean over jobs (``p = -1``: harmonic, "more negative = more fair")."""
    restart_delay_s: float = 30.0
    """``delay = 30`` in ``Problem._evaluate``: the restart penalty's assumed cost."""
    max_nodes_per_job: int = 16
    """``max_nodes = 16`` in ``Problem._repair``."""
    keep: int = 10
    """Solutions carried to the next round's initial population (the artifact carries its final Pareto front)."""


@dataclass(frozen=True)
class SearchJob:
    """One job as the search sees it (the artifact's ``JobInfo``)."""

    name: str
    speedup: np.ndarray | None
    """``speedup[n, r]`` on the fair-share base (:func:`speedup_table`); None: no model yet (speedup = r / fair)."""
    max_replicas: int
    num_restarts: int
    age_s: float
    weight: float = 1.0
    """Multiplies the job's speedup in the objective (1: Pollux). Under p = -1 a job whose speedup is scaled
    up counts less, so a scheduler can favour some jobs (e.g. least attained service) without new operators."""


@dataclass
class SearchProblem:
    """The arrays one round's search works on. Jobs must be in priority order (least attained service first):
    where a node is over-full, repair keeps the earlier jobs' replicas."""

    jobs: Sequence[SearchJob]
    capacity: np.ndarray
    """GPUs usable per node, in node order."""
    base: np.ndarray
    """Current allocation, jobs x nodes."""
    settings: SearchSettings

    def __post_init__(self) -> None:
        jn = len(self.jobs)
        self.capacity = np.asarray(self.capacity, dtype=np.int64)
        self.base = np.asarray(self.base, dtype=np.int64).reshape(jn, len(self.capacity))
        total = max(int(self.capacity.sum()), 1)
        self.fair_replicas = math.ceil(total / max(jn, 1))  # ceil(1 / share / jobs)
        self.max_replicas = np.array([j.max_replicas for j in self.jobs], dtype=np.int64)
        rmax = int(self.max_replicas.max(initial=0))
        nmax = len(self.capacity)
        table = np.zeros((jn, nmax + 1, rmax + 1))
        for i, job in enumerate(self.jobs):
            if job.speedup is None:
                table[i] = np.arange(rmax + 1)[None, :] / self.fair_replicas
            else:
                s = job.speedup[: nmax + 1, : rmax + 1]
                table[i, : s.shape[0], : s.shape[1]] = s
        self.table = table
        self.scale = nmax / total  # speedups x dominant share x nodes (Problem._evaluate)
        restarts = np.array([j.num_restarts for j in self.jobs], dtype=float)
        age = np.array([j.age_s for j in self.jobs], dtype=float)
        d = self.settings.restart_delay_s
        self.restart_factor = np.maximum(age - restarts * d, 0.0) / (age + d)
        self.weight = np.array([j.weight for j in self.jobs], dtype=float)

    def fitness(self, states: np.ndarray) -> np.ndarray:
        """The power mean (p) of penalised, share-scaled speedups per state: higher is better."""
        nodes = np.count_nonzero(states, axis=2)
        replicas = states.sum(axis=2)
        jobs = np.arange(len(self.jobs))[None, :]
        speedup = self.table[jobs, nodes, np.minimum(replicas, self.table.shape[2] - 1)] * self.scale
        moved = np.any(states != self.base[None], axis=2)
        speedup = speedup * np.where(moved, self.restart_factor[None, :], 1.0) * self.weight[None, :]
        p = self.settings.power
        return (np.sum((speedup + 1e-3) ** p, axis=1) / states.shape[1]) ** (1.0 / p)

    def repair(self, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``Problem._repair``: one distributed job per node, at most ``max_replicas`` per job (over shuffled
        nodes) on at most ``max_nodes_per_job`` nodes, node capacity in job order."""
        states = states.copy()
        distributed = np.count_nonzero(states, axis=2) > 1
        on = (states > 0) & distributed[:, :, None]
        # Counts of booleans are summed as int32: numpy's default bool cumsum is ~5x slower; the counts are the same.
        states[np.cumsum(on, axis=1, dtype=np.int32) > 1] = 0  # later distributed jobs leave a node an earlier one uses
        shuffle = np.argsort(rng.random(states.shape), axis=2)
        states = np.take_along_axis(states, shuffle, axis=2)
        capped = np.minimum(np.cumsum(states, axis=2), self.max_replicas[None, :, None])
        states = np.diff(capped, axis=2, prepend=0)
        spread = np.minimum(np.cumsum(states > 0, axis=2, dtype=np.int32), self.settings.max_nodes_per_job)
        states[np.diff(spread, axis=2, prepend=0) == 0] = 0
        unshuffle = np.empty_like(shuffle)  # the inverse permutation, without a second sort
        np.put_along_axis(unshuffle, shuffle, np.broadcast_to(np.arange(shuffle.shape[2]), shuffle.shape), axis=2)
        states = np.take_along_axis(states, unshuffle, axis=2)
        filled = np.minimum(np.cumsum(states, axis=1), self.capacity[None, None, :])
        return np.diff(filled, axis=1, prepend=0)

    def mutate(self, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``Problem._mutation``: reset a job to its current allocation (p 0.1); zero some of a job's nodes
        (p 0.1 per job, then 0.1 per node); raise replicas on nodes with a free GPU (each job on it, or one
        job in ``jobs`` on average) to a uniform count between the current and the node's capacity."""
        p, jn, _ = states.shape
        reset = rng.random((p, jn)) < 0.1
        states = np.where(reset[:, :, None], self.base[None], states)
        zero_p = np.where(rng.random((p, jn)) < 0.1, 0.1, 0.0)
        states = np.where(rng.random(states.shape) < zero_p[:, :, None], 0, states)
        free = self.capacity[None, :] - states.sum(axis=1)  # (p, nodes)
        has_free = np.broadcast_to((free >= 1)[:, None, :], states.shape)
        prob1 = has_free / max(jn, 1)
        present = (states > 0) & has_free
        prob2 = present / np.maximum(present.sum(axis=1, keepdims=True), 1)
        hit = rng.random(states.shape) < prob1 + prob2 - prob1 * prob2
        cap = np.broadcast_to(self.capacity[None, None, :], states.shape)
        high = np.maximum(cap, states)
        raised = states + np.floor(rng.random(states.shape) * (high - states + 1)).astype(np.int64)
        return np.where(hit, raised, states)

    def crossover(self, a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``Problem._crossover``: single-point crossover over jobs; two children per pair of parents."""
        point = rng.integers(0, len(self.jobs), size=(len(a), 1, 1))
        first = np.arange(len(self.jobs))[None, :, None] < point
        return np.concatenate([np.where(first, a, b), np.where(first, b, a)])


def search(problem: SearchProblem, initial: np.ndarray | None, rng: np.random.Generator
           ) -> tuple[np.ndarray, np.ndarray]:
    """Evolve allocations; return (best state, the solutions to seed next round with).

    ``initial``: states (k x jobs x nodes) to start from, e.g. last round's answers mapped onto this round's
    jobs and nodes (``PolluxPolicy._adapt_prev_states``); None starts from the current allocation. Each
    generation: binary tournaments pick parents, crossover and mutation make ``population`` children, repair
    makes them feasible, duplicates are dropped, and the best ``population`` of parents and children survive.
    """
    s = problem.settings
    jn, nn = problem.base.shape
    if jn == 0 or nn == 0:
        return problem.base.copy(), problem.base[None].copy()
    start = problem.base[None] if initial is None or len(initial) == 0 else initial
    pop = problem.repair(np.asarray(start, dtype=np.int64), rng)
    pop = _unique(pop)
    fit = problem.fitness(pop)
    order = np.argsort(-fit, kind="stable")
    pop, fit = pop[order], fit[order]
    best, stale = float(fit[0]), 0
    for _ in range(s.generations):
        pairs = (s.population + 1) // 2
        cand = rng.integers(0, len(pop), size=(2, 2, pairs))  # two tournaments of two per mating
        winners = np.where(fit[cand[:, 0]] >= fit[cand[:, 1]], cand[:, 0], cand[:, 1])
        children = problem.crossover(pop[winners[0]], pop[winners[1]], rng)
        children = problem.repair(problem.mutate(children, rng), rng)
        merged = _unique(np.concatenate([pop, children]))
        merged_fit = problem.fitness(merged)
        order = np.argsort(-merged_fit, kind="stable")[: s.population]
        pop, fit = merged[order], merged_fit[order]
        if fit[0] > best + 1e-12:
            best, stale = float(fit[0]), 0
        else:
            stale += 1
            if s.patience is not None and stale >= s.patience:
                break
    return pop[0].copy(), pop[: s.keep].copy()


def carry_states(prev: tuple[np.ndarray, Sequence[str], Sequence[str]] | None, jobs: Sequence[str],
                 nodes: Sequence[str]) -> np.ndarray | None:
    """Last round's kept allocations ``(states, jobs, nodes)`` mapped onto this round's jobs and nodes, to
    seed the search (the artifact's ``PolluxPolicy._adapt_prev_states``): rows of jobs that finished are
    dropped, new jobs and new nodes start with nothing."""
    if prev is None:
        return None
    states, prev_jobs, prev_nodes = prev
    out = np.zeros((len(states), len(jobs), len(nodes)), dtype=np.int64)
    pj = {n: i for i, n in enumerate(prev_jobs)}
    pn = {n: i for i, n in enumerate(prev_nodes)}
    dst_j = [i for i, n in enumerate(jobs) if n in pj]
    src_j = [pj[jobs[i]] for i in dst_j]
    for i, node in enumerate(nodes):
        if node in pn and dst_j:
            out[:, dst_j, i] = states[:, src_j, pn[node]]
    return out


def _unique(states: np.ndarray) -> np.ndarray:
    """Drop duplicate states, keeping first occurrences in order (pymoo's ``eliminate_duplicates``)."""
    # A dict of row bytes, not ``np.unique(axis=0)``: the same first occurrences in the same order, without a
    # lexicographic sort of the population every generation (that sort was a quarter of a run's time).
    flat = np.ascontiguousarray(states.reshape(len(states), -1))
    width = flat.shape[1] * flat.itemsize
    raw = flat.tobytes()
    first: dict[bytes, int] = {}
    for i in range(len(flat)):
        first.setdefault(raw[i * width:(i + 1) * width], i)
    if len(first) == len(flat):
        return states
    return states[np.fromiter(first.values(), dtype=np.intp, count=len(first))]
