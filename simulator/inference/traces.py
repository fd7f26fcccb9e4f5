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
import math
import warnings
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


MAX_TOKENS_PER_REQUEST = 10_000_000
"""Prompt or output tokens of one request: far above any model's context window, so a larger count is a typo."""
MAX_TRACE_REQUESTS = 5_000_000
"""Requests a trace may hold after tiling to ``duration_s`` (simulator/scenario.py ``MAX_REQUESTS``)."""


def _finish(arrival: np.ndarray, prompt: np.ndarray, output: np.ndarray, rate_scale: float,
            duration_s: float | None, source: object = "trace") -> Trace:
    if not (math.isfinite(rate_scale) and rate_scale > 0):
        raise ValueError(f"{source}: rate_scale must be a positive finite number, got {rate_scale}")
    order = np.argsort(arrival, kind="stable")
    a = (arrival[order] - arrival[order][0]) / rate_scale if len(arrival) else arrival.astype(float)
    p = np.maximum(prompt[order].astype(np.int64), 1)
    o = np.maximum(output[order].astype(np.int64), 1)
    if duration_s is not None:
        if not (math.isfinite(duration_s) and duration_s > 0):
            raise ValueError(f"{source}: duration_s must be a positive finite number, got {duration_s}")
        if len(a) and a[-1] < duration_s:
            if a[-1] <= 0:
                raise ValueError(f"{source}: every request arrives at the same instant, so the log cannot be "
                                 f"repeated to fill duration_s {duration_s:g}; give a log that spans some time")
            period = a[-1] + (a[-1] / max(len(a) - 1, 1))
            implied = len(a) * math.ceil(duration_s / period)
            if implied > MAX_TRACE_REQUESTS:
                raise ValueError(f"{source}: repeating its {len(a)} requests over {a[-1]:g} s to fill duration_s "
                                 f"{duration_s:g} makes {implied:.3g} requests, above the limit of "
                                 f"{MAX_TRACE_REQUESTS}")
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


def _parse_times(values: list[str], lines: list[int] | None = None, source: object = "trace") -> np.ndarray:
    """Seconds as float, or date-times (ISO, with space or T, any fraction digits) -> seconds."""
    lines = lines or list(range(1, len(values) + 1))
    if all(_numeric(v) for v in values):
        out = np.array([float(v) for v in values], dtype=float)
        bad = np.flatnonzero(~np.isfinite(out))
        if bad.size:
            raise ValueError(f"{source}: line {lines[bad[0]]}: timestamp {values[bad[0]].strip()!r} is not a "
                             "finite number of seconds")
        return out
    stamps = []
    for v, line in zip(values, lines, strict=True):
        try:
            stamps.append(np.datetime64(v.strip().replace(" ", "T"), "ns"))
        except ValueError:
            raise ValueError(f"{source}: line {line}: timestamp {v.strip()!r} is neither seconds nor a date-time "
                             "like 2023-11-16 18:17:03.98 (and every row must use the same kind)") from None
    arr = np.array(stamps, dtype="datetime64[ns]")
    if np.isnat(arr).any():
        line = lines[int(np.flatnonzero(np.isnat(arr))[0])]
        raise ValueError(f"{source}: line {line}: timestamp is not a date-time")
    return (arr - arr.min()).astype(np.int64) / 1e9


def _tokens(text: str, line: int, column: str, source: object) -> int:
    """A token count: a whole number from 0 to MAX_TOKENS_PER_REQUEST (1.0 is fine, 1.5 and -3 are not).
    Zero is kept as a count (a request that stopped at once); :func:`_finish` charges it one token."""
    value = float(text)
    if not math.isfinite(value) or value != int(value) or not 0 <= value <= MAX_TOKENS_PER_REQUEST:
        raise ValueError(f"{source}: line {line}: {column} {text.strip()!r} is not a whole number of tokens "
                         f"from 0 to {MAX_TOKENS_PER_REQUEST}")
    return int(value)


def request_log(path: Path | str, rate_scale: float = 1.0, duration_s: float | None = None) -> Trace:
    """A user's request log: first three columns timestamp, input tokens, output tokens."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a folder, expected a CSV request log")
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            rows = [(reader.line_num, r) for r in reader if r and any(c.strip() for c in r)]
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a text (UTF-8) CSV file (byte {exc.start}); expected "
                         "'timestamp, input tokens, output tokens' rows") from None
    except csv.Error as exc:
        raise ValueError(f"{path}: not a readable CSV file: {exc}") from None
    if rows and len(rows[0][1]) >= 3 and not _numeric(rows[0][1][1]) and not _numeric(rows[0][1][2]):
        rows = rows[1:]  # header
    if not rows:
        raise ValueError(f"{path}: no requests")
    if len(rows) > MAX_TRACE_REQUESTS:
        raise ValueError(f"{path}: {len(rows)} requests, above the limit of {MAX_TRACE_REQUESTS}")
    bad = [(line, r) for line, r in rows if len(r) < 3 or not (_numeric(r[1]) and _numeric(r[2]))]
    if bad:
        raise ValueError(f"{path}: line {bad[0][0]} is not 'timestamp, input tokens, output tokens': {bad[0][1]}")
    lines = [line for line, _ in rows]
    arrival = _parse_times([r[0] for _, r in rows], lines, path)
    prompt = np.array([_tokens(r[1], line, "input tokens", path) for line, r in rows], dtype=np.int64)
    output = np.array([_tokens(r[2], line, "output tokens", path) for line, r in rows], dtype=np.int64)
    return _finish(arrival, prompt, output, rate_scale, duration_s, path)


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
    if src.is_dir():
        raise ValueError(f"{src}: is a folder, expected a load shape file (one request rate a line)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy warns on an empty file; the check below says it better
            rates = np.loadtxt(src, dtype=float, ndmin=1)
    except (ValueError, UnicodeDecodeError) as exc:
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise ValueError(f"{src}: not a load shape (one request rate a line): {reason}") from None
    if rates.ndim != 1:
        raise ValueError(f"{src}: a load shape has one number a line, this file has {rates.shape[1]} columns")
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
