"""The benchmark's train/test split of the bundled data, and the traces built from each side.

Split (docs/evaluation.md):

- the Azure code trace (8,819 requests, 57 min) is cut at its median arrival time: rows of the first
  half (``TRAIN``) feed training traces, rows of the second half (``EVAL``) feed evaluation traces,
  both as arrival patterns (recorded trace, block-bootstrapped) and as the pool request sizes are
  drawn from;
- each bundled load shape (one hour, one rate per second) is cut at 30 min: the first half shapes
  training traces, the second half evaluation traces;
- seeds: evaluation uses seeds from :data:`EVAL_SEED0` on, training from :data:`TRAIN_SEED0` on.

Every generated trace carries its provenance (:class:`Built`): the source rows and shape seconds it
used, as hashes, so a test can check that no training trace touches what an evaluation trace uses.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simulator.datasets import data_path
from simulator.inference.traces import SHAPES, Trace, read_shape

TRAIN, EVAL = "train", "eval"
EVAL_SEED0 = 101
"""Evaluation seeds are 101, 102, ...; training seeds 1, 2, ... (disjoint for any K < 100)."""
TRAIN_SEED0 = 1
BLOCK_S = 60.0
"""Block length of the block bootstrap: one minute keeps the trace's bursts (about 10 s) whole."""


@dataclass(frozen=True)
class Built:
    """A generated trace and the hashes of the source segments it was made of."""

    trace: Trace
    sources: frozenset[str]


def _rows() -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """The code trace's rows in arrival order: (arrival from 0, prompt, output, raw line)."""
    path = data_path("azure-llm-2023", "AzureLLMInferenceTrace_code.csv")
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    body = lines[1:] if not lines[0][:1].isdigit() else lines
    ts = np.array([np.datetime64(ln.split(",")[0].strip().replace(" ", "T")) for ln in body], dtype="datetime64[ns]")
    t = (ts - ts.min()).astype(np.int64) / 1e9
    prompt = np.array([int(float(ln.split(",")[1])) for ln in body], dtype=np.int64)
    output = np.array([int(float(ln.split(",")[2])) for ln in body], dtype=np.int64)
    order = np.argsort(t, kind="stable")
    return t[order], np.maximum(prompt[order], 1), np.maximum(output[order], 1), [body[i] for i in order]


_CACHE: dict[str, tuple] = {}


def code_rows(side: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """One half of the code trace: arrival (from the half's start), prompt, output, raw lines."""
    if side not in (TRAIN, EVAL):
        raise ValueError(f"side must be {TRAIN!r} or {EVAL!r}, got {side!r}")
    if "rows" not in _CACHE:
        _CACHE["rows"] = _rows()
    t, p, o, raw = _CACHE["rows"]
    cut = float(np.median(t))
    keep = t < cut if side == TRAIN else t >= cut
    idx = np.flatnonzero(keep)
    return t[idx] - t[idx][0], p[idx], o[idx], [raw[i] for i in idx]


def row_hash(line: str) -> str:
    return "row:" + hashlib.sha1(line.encode()).hexdigest()[:16]


def code_half(side: str) -> Built:
    """The half as recorded."""
    t, p, o, raw = code_rows(side)
    return Built(Trace(t.astype(float), p, o), frozenset(row_hash(r) for r in raw))


def code_bootstrap(side: str, duration_s: float, seed: int) -> Built:
    """A moving-block bootstrap of one half: random one-minute blocks of it, back to back."""
    t, p, o, raw = code_rows(side)
    rng = np.random.default_rng([seed, 0xB007])
    span = float(t[-1])
    parts_a, parts_i = [], []
    at = 0.0
    while at < duration_s:
        start = rng.uniform(0.0, max(span - BLOCK_S, 0.0))
        sel = np.flatnonzero((t >= start) & (t < start + BLOCK_S))
        parts_a.append(t[sel] - start + at)
        parts_i.append(sel)
        at += BLOCK_S
    a = np.concatenate(parts_a)
    i = np.concatenate(parts_i)
    keep = a < duration_s
    a, i = a[keep], i[keep]
    return Built(Trace(a, p[i], o[i]), frozenset(row_hash(raw[j]) for j in np.unique(i)))


def shape_half(shape: str, side: str) -> tuple[np.ndarray, frozenset[str]]:
    """Per-second rates of one half of a bundled load shape, and the seconds used."""
    if shape not in SHAPES:
        raise ValueError(f"unknown bundled shape {shape!r}; bundled: {SHAPES}")
    rates = read_shape(shape)
    half = len(rates) // 2
    lo, hi = (0, half) if side == TRAIN else (half, len(rates))
    return rates[lo:hi], frozenset(f"shape:{shape}:{s}" for s in range(lo, hi))


def poisson_trace(rates: np.ndarray, mean_rate_per_s: float, duration_s: float, side: str, seed: int) -> Built:
    """Poisson arrivals whose per-second rate tiles ``rates`` scaled to ``mean_rate_per_s``; request
    sizes (prompt and output together) drawn from that side's half of the code trace."""
    rng = np.random.default_rng([seed, 0x5A9E])
    n = int(np.ceil(duration_s))
    per_s = np.resize(rates, n) * (mean_rate_per_s / float(np.mean(np.resize(rates, n))))
    counts = rng.poisson(per_s)
    second = np.repeat(np.arange(n, dtype=float), counts)
    arrival = np.sort(second + rng.random(second.size))
    arrival = arrival[arrival < duration_s]
    _, p, o, raw = code_rows(side)
    pick = rng.integers(0, len(p), size=arrival.size)
    return Built(Trace(arrival, p[pick], o[pick]), frozenset(row_hash(raw[j]) for j in np.unique(pick)))


def shape_trace(shape: str, side: str, mean_rate_per_s: float, duration_s: float, seed: int) -> Built:
    rates, used = shape_half(shape, side)
    built = poisson_trace(rates, mean_rate_per_s, duration_s, side, seed)
    return Built(built.trace, built.sources | used)


def step_trace(side: str, low_rate: float, factor: float, at_fraction: float, duration_s: float,
               seed: int) -> Built:
    """A constant rate that steps up by ``factor`` at ``at_fraction`` of the run (sizes from ``side``)."""
    n = int(np.ceil(duration_s))
    cut = int(n * at_fraction)
    rates = np.where(np.arange(n) < cut, low_rate, low_rate * factor)
    return poisson_trace(rates, float(rates.mean()), duration_s, side, seed)


def write_csv(trace: Trace, path: Path) -> Path:
    """As a request log (seconds, input tokens, output tokens) that ``trace: {kind: request-log}`` reads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["timestamp_s,input_tokens,output_tokens"]
    lines += [f"{a:.6f},{int(p)},{int(o)}" for a, p, o in zip(trace.arrival_s, trace.prompt_tokens,
                                                              trace.output_tokens, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path
