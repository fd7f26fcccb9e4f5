"""Request traces for inference services: recorded logs and synthetic load shapes.

Every loader returns a :class:`Trace`, a named tuple of three numpy arrays sorted by arrival time
(``arrival_s`` from 0, ``prompt_tokens``, ``output_tokens``), so callers can write
``arrival_s, prompt, output = azure_code()``.

- :func:`azure_code`: the Azure LLM inference trace 2023, code service (CC-BY-4.0; about 57 minutes,
  8,819 requests, 2.57 requests/s);
- :func:`request_log`: a user's CSV whose first three columns are timestamp (seconds, or a date-time),
  input tokens and output tokens (a header row is optional);
- :func:`load_shape`: one request rate per second (Autothrottle's ``bursty``/``noisy``, MIT) scaled to a
  target mean rate; arrivals are a Poisson process whose rate is constant within each second, and
  request sizes are drawn (prompt and output together, so their correlation survives) from the Azure
  code trace, seeded. A scenario longer than the shape *tiles* it (repeats the hour): stretching
  one hour over a day would turn 10-second bursts into 4-minute ones, and the bursts are what tests
  an autoscaler's reaction time. ``fit="stretch"`` is there for the other reading.

``rate_scale`` multiplies the request rate (a recorded trace is compressed in time by that factor);
``duration_s`` cuts the trace at that time (a recorded trace shorter than ``duration_s`` is tiled).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import NamedTuple

import numpy as np

from simulator.datasets import data_path

SHAPES = ("bursty", "noisy")


class Trace(NamedTuple):
    arrival_s: np.ndarray
    prompt_tokens: np.ndarray
    output_tokens: np.ndarray

    def __len__(self) -> int:
        return int(self.arrival_s.shape[0])

    @property
    def duration_s(self) -> float:
        return float(self.arrival_s[-1]) if len(self) else 0.0

    @property
    def mean_rate_per_s(self) -> float:
        return len(self) / self.duration_s if self.duration_s > 0 else 0.0


def _finish(arrival: np.ndarray, prompt: np.ndarray, output: np.ndarray, rate_scale: float,
            duration_s: float | None) -> Trace:
    if rate_scale <= 0:
        raise ValueError(f"rate_scale must be positive, got {rate_scale}")
    order = np.argsort(arrival, kind="stable")
    a = (arrival[order] - arrival[order][0]) / rate_scale if len(arrival) else arrival.astype(float)
    p = np.maximum(prompt[order].astype(np.int64), 1)
    o = np.maximum(output[order].astype(np.int64), 1)
    if duration_s is not None:
        if duration_s <= 0:
            raise ValueError(f"duration_s must be positive, got {duration_s}")
        if len(a) and a[-1] < duration_s:
            a, p, o = _tile(a, p, o, duration_s)
        keep = a < duration_s
        a, p, o = a[keep], p[keep], o[keep]
    return Trace(a.astype(float), p, o)


def _tile(a: np.ndarray, p: np.ndarray, o: np.ndarray, duration_s: float) -> tuple[np.ndarray, ...]:
    """Repeat a recorded trace back to back (period = its span plus one mean gap) up to ``duration_s``."""
    period = a[-1] + (a[-1] / max(len(a) - 1, 1))
    copies = int(np.ceil(duration_s / period))
    shift = np.repeat(np.arange(copies) * period, len(a))
    return np.tile(a, copies) + shift, np.tile(p, copies), np.tile(o, copies)


def _parse_times(values: list[str]) -> np.ndarray:
    """Seconds as float, or date-times (ISO, with space or T, any fraction digits) -> seconds."""
    try:
        return np.array([float(v) for v in values], dtype=float)
    except ValueError:
        pass
    stamps = np.array([v.strip().replace(" ", "T") for v in values], dtype="datetime64[ns]")
    return (stamps - stamps.min()).astype(np.int64) / 1e9


def request_log(path: Path | str, rate_scale: float = 1.0, duration_s: float | None = None) -> Trace:
    """A user's request log: first three columns timestamp, input tokens, output tokens."""
    path = Path(path)
    with path.open(newline="") as f:
        rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    if rows and len(rows[0]) >= 3 and not _numeric(rows[0][1]) and not _numeric(rows[0][2]):
        rows = rows[1:]  # header
    if not rows:
        raise ValueError(f"{path}: no requests")
    bad = [i for i, r in enumerate(rows) if len(r) < 3 or not (_numeric(r[1]) and _numeric(r[2]))]
    if bad:
        raise ValueError(f"{path}: row {bad[0] + 1} is not 'timestamp, input tokens, output tokens': "
                         f"{rows[bad[0]]}")
    arrival = _parse_times([r[0] for r in rows])
    prompt = np.array([int(float(r[1])) for r in rows], dtype=np.int64)
    output = np.array([int(float(r[2])) for r in rows], dtype=np.int64)
    return _finish(arrival, prompt, output, rate_scale, duration_s)


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def azure_code(path: Path | str | None = None, rate_scale: float = 1.0,
               duration_s: float | None = None) -> Trace:
    """The Azure LLM code trace (bundled copy unless ``path`` is given)."""
    src = Path(path) if path is not None else data_path("azure-llm-2023", "AzureLLMInferenceTrace_code.csv")
    return request_log(src, rate_scale=rate_scale, duration_s=duration_s)


def azure_code_half(which: str = "all") -> Trace:
    """The Azure code trace's requests, all of them or only the first/second half in arrival order:
    training scenarios draw sizes from one half and evaluation scenarios from the other, so no request
    size an evaluation sees was seen in training."""
    full = azure_code()
    if which == "all":
        return full
    half = len(full) // 2
    if which == "first-half":
        sel = slice(0, half)
    elif which == "second-half":
        sel = slice(half, len(full))
    else:
        raise ValueError(f"sizes must be 'all', 'first-half' or 'second-half', got {which!r}")
    return Trace(full.arrival_s[sel], full.prompt_tokens[sel], full.output_tokens[sel])


def read_shape(shape: str | Path) -> np.ndarray:
    """Rates per second of a bundled shape (``bursty``, ``noisy``) or of a file (one number a line)."""
    src = data_path("load-shapes", f"{shape}.txt") if str(shape) in SHAPES else Path(shape)
    rates = np.loadtxt(src, dtype=float, ndmin=1)
    if rates.size == 0 or np.any(rates < 0) or not np.all(np.isfinite(rates)) or rates.sum() == 0:
        raise ValueError(f"{src}: a load shape needs non-negative finite rates, not all zero")
    return rates


def shape_rates(shape: str | Path, mean_rate_per_s: float, duration_s: float,
                fit: str = "tile") -> np.ndarray:
    """Per-second rates over ``duration_s``, with mean ``mean_rate_per_s`` (before rate_scale)."""
    rates = read_shape(shape)
    n = int(np.ceil(duration_s))
    if fit == "tile":
        out = np.resize(rates, n)  # repeats the shape back to back
    elif fit == "stretch":
        idx = np.minimum((np.arange(n) * len(rates) / n).astype(int), len(rates) - 1)
        out = rates[idx]
    else:
        raise ValueError(f"fit must be 'tile' or 'stretch', got {fit!r}")
    return out * (mean_rate_per_s / out.mean())


def load_shape(shape: str | Path, mean_rate_per_s: float, duration_s: float = 3600.0, seed: int = 0,
               sizes: Trace | None = None, rate_scale: float = 1.0, fit: str = "tile") -> Trace:
    """Poisson arrivals following a load shape; sizes resampled from ``sizes`` (the Azure code trace)."""
    if mean_rate_per_s <= 0:
        raise ValueError(f"mean_rate_per_s must be positive, got {mean_rate_per_s}")
    rng = np.random.default_rng(seed)
    rates = shape_rates(shape, mean_rate_per_s * rate_scale, duration_s, fit)
    counts = rng.poisson(rates)
    second = np.repeat(np.arange(len(rates), dtype=float), counts)
    arrival = np.sort(second + rng.random(second.size))
    arrival = arrival[arrival < duration_s]
    pool = sizes if sizes is not None else azure_code()
    pick = rng.integers(0, len(pool), size=arrival.size)
    return Trace(arrival, pool.prompt_tokens[pick].copy(), pool.output_tokens[pick].copy())
