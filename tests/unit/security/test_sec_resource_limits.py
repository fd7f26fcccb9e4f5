"""Valid-looking objects cannot exhaust the operator: knob spaces are arithmetic and capped, checkpoints
are decompressed against a limit, and every duration has a maximum.

Before the fix a knob over 1e8 values took 4 GB and 42 s per move (learners/space.py built the whole
tuple on every ``values``/``move``), and a 713 KB checkpoint ConfigMap decompressed to 1.4 GB.
"""

from __future__ import annotations

import json
import time
import tracemalloc
import zlib

import pytest

from controller import checkpoint as ckpt
from controller.policy import LIMITS, PolicyError, parse
from learners.base import registered
from learners.space import ConfigSpace, Grid, Knob


def bounded(fn, max_s: float = 1.0, max_bytes: int = 8 * 2**20):
    """fn() (its result, or its exception re-raised) after checking it ran within time and memory."""
    tracemalloc.start()
    t0 = time.perf_counter()
    error = None
    try:
        out = fn()
    except Exception as exc:  # checked below, then re-raised
        out, error = None, exc
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    took = time.perf_counter() - t0
    assert took < max_s, f"took {took:.2f}s"
    assert peak < max_bytes, f"peak {peak / 2**20:.1f} MiB"
    if error is not None:
        raise error
    return out


@pytest.fixture(scope="module", autouse=True)
def _learners_imported():
    """Import every learner (torch) before measuring: an import is not the work being bounded."""
    registered()


@pytest.mark.parametrize(("lower", "upper", "step"), [(0, 1e12, 1), (1, 2, 1e-9), (0, 1e15, 0.5)])
def test_a_huge_knob_moves_in_bounded_time_and_memory(lower, upper, step):
    knob = Knob("memory_mib", lower, upper, step)
    space = ConfigSpace.of(knob, Knob("replicas", 1, 8))

    def work():
        n = len(knob.values)
        mid = knob.values[n // 2]
        moved = space.move({"memory_mib": mid, "replicas": 2}, {"memory_mib": +1})
        down = knob.move(knob.upper, -3)
        return (n, mid, moved, down, knob.index(mid), knob.clip(upper * 10), space.normalise(moved), space.size(),
                mid in knob.values, knob.values[-1], knob.values.index(knob.values[7]))

    n, mid, moved, down, index, clipped, norm, size, contained, last, seven = bounded(work)
    assert n == knob.size == round((upper - lower) / step) + 1
    assert moved["memory_mib"] == knob.values[n // 2 + 1] > mid
    assert down == knob.values[n - 4]
    assert index == n // 2 and contained and seven == 7
    assert clipped == last <= upper
    assert 0.49 < norm[0] < 0.51
    assert size == n * 8


def test_a_lazy_grid_still_behaves_like_the_tuple_it_replaced():
    knob = Knob("batch", 8, 64, 8)
    assert knob.values == tuple(float(v) for v in range(8, 65, 8))
    assert list(knob.values) == [8.0, 16.0, 24.0, 32.0, 40.0, 48.0, 56.0, 64.0]
    assert knob.values[1:3] == (16.0, 24.0) and knob.values[-1] == 64.0
    assert 24.0 in knob.values and 25.0 not in knob.values and float("nan") not in knob.values
    with pytest.raises(IndexError):
        knob.values[8]
    assert max(knob.values) == 64.0 and next(reversed(knob.values)) == 64.0
    assert Grid(0, 1, 3) == Grid(0, 1, 3) and hash(Grid(0, 1, 3)) == hash(Grid(0, 1, 3))
    # a range that is not a multiple of its step ends at the last value within it, and clip agrees
    odd = Knob("x", 0, 10, 6)
    assert odd.values == (0.0, 6.0) and odd.clip(10) == 6.0 and odd.move(0, 5) == 6.0


def spec(**over):
    base = {"targetRef": {"kind": "Deployment", "name": "web"},
            "objective": {"metric": "ttft_p99_seconds", "target": 0.5},
            "knobs": {"replicas": {"min": 1, "max": 8}}, "learner": {"name": "static"}}
    return {**base, **over}


@pytest.mark.parametrize(("over", "field", "words"), [
    ({"knobs": {"memory": {"min": 0, "max": 1e12}}}, "spec.knobs.memory.max", "at most 1e+09"),
    ({"knobs": {"memory": {"min": 0, "max": 1e9}}}, "spec.knobs.memory", "more than 1,000,000; raise step"),
    ({"knobs": {"cpu": {"min": 1, "max": 2, "step": 1e-9}}}, "spec.knobs.cpu", "more than 1,000,000"),
    ({"knobs": {"cpu": {"min": 0, "max": 10, "step": 0}}}, "spec.knobs.cpu.step", "must be positive"),
    ({"knobs": {"replicas": {"choices": list(range(65))}}}, "spec.knobs.replicas.choices", "at most 64"),
    ({"knobs": {"replicas": {"choices": [1, 1e10]}}}, "spec.knobs.replicas.choices[1]", "at most 1e+09"),
    ({"intervalSeconds": 1e12}, "spec.intervalSeconds", "at most 86400"),
    ({"intervalSeconds": float("inf")}, "spec.intervalSeconds", "finite number"),
    ({"intervalSeconds": 0.5}, "spec.intervalSeconds", "at least 1"),
    ({"metrics": {"windowSeconds": 1e9}}, "spec.metrics.windowSeconds", "at most 86400"),
    ({"metrics": {"staleAfterSeconds": 1e9}}, "spec.metrics.staleAfterSeconds", "at most"),
    ({"guards": {"cooldownSeconds": 1e12}}, "spec.guards.cooldownSeconds", "at most"),
    ({"guards": {"pendingTimeoutSeconds": 1e12}}, "spec.guards.pendingTimeoutSeconds", "at most 604800"),
    ({"guards": {"maxStepsPerInterval": 10**9}}, "spec.guards.maxStepsPerInterval", "between 1 and 1000"),
    ({"learner": {"name": "vconf", "settings": {"hidden": 10**9}}}, "spec.learner.settings.hidden",
     "between 1 and 4096"),
    ({"learner": {"name": "vconf", "settings": {"memory": 10**12}}}, "spec.learner.settings.memory",
     "between 1 and 1000000"),
    ({"learner": {"name": "bayesopt", "settings": {"max_candidates": 10**9}}},
     "spec.learner.settings.max_candidates", "between 1 and 100000"),
])
def test_parse_caps_what_a_policy_may_cost(over, field, words):
    with pytest.raises(PolicyError) as err:
        bounded(lambda: parse(spec(**over), "ml", "p"))
    msg = str(err.value)
    assert msg.startswith(field + ":") and words in msg, msg


def test_the_largest_admitted_knob_parses_fast():
    p = bounded(lambda: parse(spec(knobs={"memory": {"min": 1, "max": LIMITS.knob_values}}), "ml", "p"))
    assert len(p.space["memory_mib"].values) == LIMITS.knob_values


def test_a_decompression_bomb_is_refused_without_inflating_it():
    z = zlib.compressobj(9)
    chunk = b"0" * 2**20
    bomb = z.compress(b'{"format": "autocm-checkpoint", "pad": "')
    for _ in range(256):  # 256 MiB of JSON in ~250 KB
        bomb += z.compress(chunk)
    bomb += z.compress(b'"}') + z.flush()
    assert len(bomb) < 1_000_000  # fits a ConfigMap
    with pytest.raises(ckpt.CheckpointError, match="decompresses to more than"):
        bounded(lambda: ckpt.decode(bomb), max_s=2.0, max_bytes=3 * ckpt.MAX_DECOMPRESSED_BYTES)


@pytest.mark.parametrize(("doc", "words"), [
    ([1, 2, 3], "a JSON list, expected an object"),
    ("checkpoint", "a JSON str"),
    ({"format": "autocm-checkpoint", "version": 1, "learner": "static", "knobs": []}, "damaged"),
    ({"format": "autocm-checkpoint", "version": 1, "learner": "static", "knobs": [], "state": [1]}, "damaged"),
    ({"format": "autocm-checkpoint", "version": 1, "learner": "static", "knobs": [],
      "state": {"w": {"__ndarray__": {"dtype": "float64", "shape": [3, 3], "data": "AAAA"}}}}, "damaged"),
    ({"format": "autocm-checkpoint", "version": 1, "learner": "static", "knobs": [],
      "state": {"w": {"__ndarray__": {"dtype": "object", "shape": [1], "data": "AAAAAAAAAAA="}}}}, "damaged"),
    ({"format": "other"}, "format 'other'"),
    ({"format": "autocm-checkpoint", "version": 99}, "version 99"),
])
def test_malformed_checkpoints_are_clear_errors(doc, words):
    with pytest.raises(ckpt.CheckpointError, match=words):
        ckpt.decode(zlib.compress(json.dumps(doc).encode()))


def test_truncated_and_non_base64_checkpoints_are_clear_errors():
    blob = zlib.compress(json.dumps({"format": "autocm-checkpoint"}).encode())
    with pytest.raises(ckpt.CheckpointError, match=r"truncated|not an autocm checkpoint"):
        ckpt.decode(blob[:-4])
    with pytest.raises(ckpt.CheckpointError, match="not base64"):
        ckpt.blob_of({"metadata": {"name": "c"}, "binaryData": {ckpt.KEY: "%%%"}})
