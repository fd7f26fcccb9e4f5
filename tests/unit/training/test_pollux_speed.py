"""Pollux's speed-ups change no result: the faster duplicate removal, repair and model-fit objective give exactly
what the straightforward versions they replaced give (kept here as references), piece by piece and for a whole
seeded run, where the JCTs must be equal to the last bit."""

from __future__ import annotations

import math

import numpy as np
import pytest

import learners.pollux as lp
from learners.pollux import SearchJob, SearchProblem, SearchSettings
from simulator.cluster import GpuPool
from simulator.datasets import data_path
from simulator.training import load_profiles, load_workload, simulate_training, workload_path
from simulator.training.pollux import PolluxScheduler

POLLUX = data_path("pollux")


def unique_by_sort(states: np.ndarray) -> np.ndarray:
    """The previous ``_unique``: ``np.unique(axis=0)``, first occurrences in order."""
    _, first = np.unique(states.reshape(len(states), -1), axis=0, return_index=True)
    return states[np.sort(first)]


def repair_by_two_sorts(problem: SearchProblem, states: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The previous ``SearchProblem.repair``: the inverse shuffle found by sorting the shuffle."""
    states = states.copy()
    distributed = np.count_nonzero(states, axis=2) > 1
    on = (states > 0) & distributed[:, :, None]
    states[np.cumsum(on, axis=1) > 1] = 0
    shuffle = np.argsort(rng.random(states.shape), axis=2)
    states = np.take_along_axis(states, shuffle, axis=2)
    capped = np.minimum(np.cumsum(states, axis=2), problem.max_replicas[None, :, None])
    states = np.diff(capped, axis=2, prepend=0)
    spread = np.minimum(np.cumsum(states > 0, axis=2), problem.settings.max_nodes_per_job)
    states[np.diff(spread, axis=2, prepend=0) == 0] = 0
    states = np.take_along_axis(states, np.argsort(shuffle, axis=2), axis=2)
    filled = np.minimum(np.cumsum(states, axis=1), problem.capacity[None, None, :])
    return np.diff(filled, axis=1, prepend=0)


def objective_reference(theta, nodes, replicas, bsz, log_accum, log_optim):
    """The previous ``_objective`` body (network terms and ``np.sum``/``np.mean`` on every call)."""
    ac, bc, an, bn, ar, br, g = theta
    inter, intra, retro = lp._network_terms(nodes, replicas)
    accum = ac + bc * bsz
    net = np.where(inter, an + bn * retro, np.where(intra, ar + br * retro, lp._TINY + lp._TINY * retro))
    la, ln = np.log(accum), np.log(net)
    log_s = np.logaddexp(g * la, g * ln)
    pred = log_s / g
    wa, wn = np.exp(g * la - log_s), np.exp(g * ln - log_s)
    grad = np.zeros(7)
    e1 = la - log_accum
    err1 = math.sqrt(float(np.mean(e1 ** 2)))
    if err1 > 1e-12:
        c = e1 / (err1 * len(e1))
        grad[0] += np.sum(c / accum)
        grad[1] += np.sum(c * bsz / accum)
    e2 = pred - log_optim
    err2 = math.sqrt(float(np.mean(e2 ** 2)))
    if err2 > 1e-12:
        c = e2 / (err2 * len(e2))
        d_accum, d_net = c * wa / accum, c * wn / net
        grad[0] += np.sum(d_accum)
        grad[1] += np.sum(d_accum * bsz)
        grad[2] += np.sum(d_net * inter)
        grad[3] += np.sum(d_net * inter * retro)
        grad[4] += np.sum(d_net * intra)
        grad[5] += np.sum(d_net * intra * retro)
        grad[6] += np.sum(c * ((wa * la + wn * ln) / g - log_s / g ** 2))
    reg1 = 1e-3 * (g - 1) ** 2
    grad[6] += 2e-3 * (g - 1)
    reg2 = 1e-2 * ((bn / an) ** 2 + (br / ar) ** 2)
    grad[2] += -2e-2 * bn ** 2 / an ** 3
    grad[3] += 2e-2 * bn / an ** 2
    grad[4] += -2e-2 * br ** 2 / ar ** 3
    grad[5] += 2e-2 * br / ar ** 2
    return err1 + err2 + reg1 + reg2, grad


def _problem(rng: np.random.Generator, jobs: int, nodes: int) -> SearchProblem:
    search_jobs = [SearchJob(f"j{i}", None, int(rng.integers(1, 12)), 0, 600.0) for i in range(jobs)]
    return SearchProblem(search_jobs, np.full(nodes, 4), np.zeros((jobs, nodes), int), SearchSettings())


@pytest.mark.parametrize("seed", range(10))
def test_duplicate_removal_keeps_the_same_rows_in_the_same_order(seed):
    rng = np.random.default_rng(seed)
    states = rng.integers(0, 3, size=(200, int(rng.integers(1, 6)), int(rng.integers(1, 4))))
    states = np.concatenate([states, states[rng.integers(0, 200, size=50)]])  # duplicates, some far apart
    assert np.array_equal(lp._unique(states), unique_by_sort(states))


@pytest.mark.parametrize("seed", range(10))
def test_repair_gives_the_same_states_and_leaves_the_generator_in_the_same_place(seed):
    rng = np.random.default_rng(seed)
    problem = _problem(rng, jobs=int(rng.integers(1, 30)), nodes=16)
    states = rng.integers(0, 5, size=(100, len(problem.jobs), 16))
    a, b = np.random.default_rng(seed + 100), np.random.default_rng(seed + 100)
    assert np.array_equal(problem.repair(states, a), repair_by_two_sorts(problem, states, b))
    assert a.random() == b.random()


@pytest.mark.parametrize("seed", range(10))
def test_the_fit_objective_and_its_gradient_are_bit_identical(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 20))
    nodes = rng.integers(1, 5, size=n).astype(float)
    replicas = nodes * rng.integers(1, 5, size=n)
    bsz, acc, opt = rng.uniform(16, 512, n), np.log(rng.uniform(0.01, 1, n)), np.log(rng.uniform(0.01, 2, n))
    theta = np.concatenate([rng.uniform(1e-3, 0.2, 6), rng.uniform(1, 10, 1)])
    value, grad = lp._objective(theta, nodes, replicas, bsz, acc, opt)
    ref_value, ref_grad = objective_reference(theta, nodes, replicas, bsz, acc, opt)
    assert value == ref_value and np.array_equal(grad, ref_grad)


def test_a_seeded_run_gives_the_same_jcts_as_the_straightforward_versions(monkeypatch):
    """A 12-job stream, run with the new code and again with the three references patched in."""
    profiles = load_profiles(POLLUX / "profiles")
    stream = load_workload(workload_path(POLLUX, 1.0, 1))[:12]

    def run():
        return simulate_training(stream, PolluxScheduler(seed=3), pool=GpuPool.uniform(4, 4), profiles=profiles)

    fast = run()
    monkeypatch.setattr(lp, "_unique", unique_by_sort)
    monkeypatch.setattr(SearchProblem, "repair", repair_by_two_sorts)
    monkeypatch.setattr(lp, "_objective_on", lambda theta, d: objective_reference(
        theta, d.nodes, d.replicas, d.bsz, d.log_accum, d.log_optim))
    slow = run()
    assert fast.jcts_s == slow.jcts_s and fast.num_restarts == slow.num_restarts
    assert not fast.unfinished
