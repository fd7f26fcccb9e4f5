"""Service times of one LLM inference replica, interpolated from measured latency tables.

The bundled table is splitwise-sim's ``perf_model.csv`` (MIT): for each (model, hardware, tensor
parallel degree) it measures prompt (prefill) time and per-token (decode) time on a *star* design:

- a prompt axis: prompt 128..8192 tokens at batch 1, 128 generated tokens;
- a batch axis: batch 1..64 at prompt 512, 128 generated tokens;
- a generation axis: 128..8192 generated tokens at prompt 512, batch 1.

So no two axes are measured jointly, and the model has to say how they combine (see
docs/inference-model.md):

- prefill of ``n`` prompts of mean length ``p`` = ``P(p) * R(n)`` with ``P`` the prompt axis and
  ``R(n) = prefill(512, n) / prefill(512, 1)`` the batch axis (``prefill(512, 1)`` is measured at all
  seven generation lengths, in sessions up to 6% apart: the model pools them). At every measured
  point this is the
  measurement itself, and since ``R(n)`` is close to ``n`` it is close to "prefill time follows the
  total number of prompt tokens", which is what compute-bound prefill does;
- one decode step of a batch of ``b`` = ``D(b) * G(L) * C(p)`` with ``D`` the batch axis' token time,
  ``G(L)`` the generation axis' token time relative to its 128-token point (``L`` the mean number of
  tokens the running requests generate) and ``C(p)`` the prompt axis' token time relative to its
  512-token point (``p`` their mean prompt: attention reads a longer KV cache). Both factors are
  within about +-10% of 1 in the bundled table; we keep these measured dependences instead of
  dropping them, which is what lets a lone request reproduce every measured point.

Interpolation is piecewise linear in log-log space: the axes are doubling grids and the times are
close to power laws along them, so log-log segments are exact at the measured points, monotone
between them, and do not let the 64-wide gap between batch 32 and 64 dominate a linear fit.

Outside the measured range nothing is extrapolated silently. Every such distinct lookup (results
are memoised) is counted in :attr:`PerfModel.coverage` and summarised by :attr:`PerfModel.coverage_warnings`:

- below the smallest measured prompt or generation length: clamp to the smallest point
  (conservative: short prompts are charged the 128-token prefill);
- above the largest measured prompt: linear per token from the largest point (prefill is
  compute-bound, so its time is close to proportional to tokens; attention's quadratic part makes
  this slightly optimistic for very long prompts);
- batch above the largest trusted batch: prefill linear per prompt, decode continues the last
  measured log-log segment.

Points that contradict their neighbours are excluded and listed in :attr:`PerfModel.excluded`
(llama2-70b at TP 2 and batch 64 reports a prefill 8x *faster* than at batch 32 and an end-to-end
time 9x slower, the signature of KV-cache preemption during that measurement).
"""

from __future__ import annotations

import bisect
import csv
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from simulator.datasets import data_path

COLUMNS = ("model", "hardware", "prompt_size", "batch_size", "token_size", "peak_power", "average_power",
           "prompt_time", "token_time", "e2e_time", "tensor_parallel")
"""The columns of splitwise-sim's perf_model.csv; a user's table must have the same ones."""

E2E_CONSISTENCY_TOLERANCE = 0.05
"""A measured point whose e2e_time differs from its own prompt_time + (token_size - 1) * token_time by
more than this fraction is reported as self-inconsistent (early stop at EOS, copied rows)."""


def bundled_table() -> Path:
    return data_path("splitwise", "perf_model.csv")


@dataclass(frozen=True)
class MeasuredPoint:
    """One (prompt, batch, generated tokens) point, averaged over its repeated rows. Times in seconds."""

    prompt_size: int
    batch_size: int
    token_size: int
    prompt_time_s: float
    token_time_s: float
    e2e_time_s: float
    repeats: int
    prompt_time_range_s: tuple[float, float] = (0.0, math.inf)
    """Smallest and largest prompt_time among the repeated rows: the measurement's own noise."""

    @property
    def e2e_from_parts_s(self) -> float:
        """What the table's own prompt and token times imply: the prefill emits the first token."""
        return self.prompt_time_s + (self.token_size - 1) * self.token_time_s

    @property
    def self_consistent(self) -> bool:
        return abs(self.e2e_from_parts_s - self.e2e_time_s) <= E2E_CONSISTENCY_TOLERANCE * self.e2e_time_s


class LogLogCurve:
    """Piecewise-linear interpolation in log-log space over a few measured (x, y) points.

    Scalar calls are pure Python (bisect + math), because the simulator asks millions of times for
    one value and numpy's per-call overhead would dominate. ``below``/``above`` say what happens
    outside the measured range: ``"clamp"``, ``"linear"`` (y proportional to x from the end point)
    or ``"slope"`` (continue the last log-log segment).
    """

    def __init__(self, xs: Sequence[float], ys: Sequence[float], below: str = "clamp",
                 above: str = "clamp") -> None:
        if len(xs) != len(ys) or not xs:
            raise ValueError("a curve needs as many y as x values, at least one")
        order = sorted(range(len(xs)), key=lambda i: xs[i])
        self.xs = [float(xs[i]) for i in order]
        self.ys = [float(ys[i]) for i in order]
        if any(x <= 0 for x in self.xs) or any(y <= 0 for y in self.ys):
            raise ValueError("log-log interpolation needs positive x and y")
        if len(set(self.xs)) != len(self.xs):
            raise ValueError("duplicate x values")
        self._lx = [math.log(x) for x in self.xs]
        self._ly = [math.log(y) for y in self.ys]
        self.below, self.above = below, above

    @property
    def lo(self) -> float:
        return self.xs[0]

    @property
    def hi(self) -> float:
        return self.xs[-1]

    def _segment(self, lx: float, i: int) -> float:
        x0, x1, y0, y1 = self._lx[i], self._lx[i + 1], self._ly[i], self._ly[i + 1]
        return math.exp(y0 + (y1 - y0) * (lx - x0) / (x1 - x0))

    def __call__(self, x: float) -> float:
        xs = self.xs
        if x <= xs[0]:
            if x == xs[0] or self.below == "clamp":
                return self.ys[0]
            if self.below == "linear":
                return self.ys[0] * x / xs[0]
            return self._segment(math.log(x), 0) if len(xs) > 1 else self.ys[0]
        if x >= xs[-1]:
            if x == xs[-1] or self.above == "clamp" or (len(xs) == 1 and self.above == "slope"):
                return self.ys[-1]
            if self.above == "linear":
                return self.ys[-1] * x / xs[-1]
            return self._segment(math.log(x), len(xs) - 2)
        i = bisect.bisect_right(xs, x) - 1
        return self._segment(math.log(x), i)

    def many(self, x: Iterable[float]) -> np.ndarray:
        """The curve at many points (numpy), for vectorised callers such as the oracle."""
        return np.array([self(float(v)) for v in x], dtype=float)


@dataclass
class _Degree:
    """The curves of one tensor-parallel degree."""

    prompt: LogLogCurve      # prefill seconds of one prompt vs prompt tokens (batch 1)
    prefill_batch: LogLogCurve  # prefill time at batch n relative to batch 1 (reference prompt)
    decode: LogLogCurve      # seconds per decode step vs batch (reference generation length)
    generation: LogLogCurve  # decode step time relative to the reference generation length, vs length
    context: LogLogCurve     # decode step time relative to the reference prompt, vs prompt length
    decode_table: list[float]  # decode(b) for b = 0..max_batch_table, precomputed for the hot path
    prefill_batch_table: list[float]
    trusted_batch: int


@dataclass
class PerfModel:
    """Prefill and decode times of one (model, hardware) at each measured tensor-parallel degree."""

    model: str
    hardware: str
    points: dict[int, list[MeasuredPoint]]
    reference_prompt: int = 512
    reference_tokens: int = 128
    excluded: list[str] = field(default_factory=list)
    coverage: Counter[str] = field(default_factory=Counter)
    max_batch_table: int = 1024

    def __post_init__(self) -> None:
        if not self.points:
            raise ValueError(f"no measured points for {self.model} on {self.hardware}")
        self._deg: dict[int, _Degree] = {tp: self._fit(tp, pts) for tp, pts in sorted(self.points.items())}
        # The simulator asks for the same few (prompt, batch) and (batch, length) values very often.
        self._prefill_memo: dict[tuple[float, int, int], float] = {}
        self._decode_memo: dict[tuple[int, int, float | None, float | None], float] = {}

    # ---------------------------------------------------------------- construction

    @classmethod
    def load(cls, model: str = "llama2-70b", hardware: str = "a100-80gb",
             path: Path | str | None = None) -> PerfModel:
        """Read a splitwise-format table (bundled by default) and build the model of one (model, hardware)."""
        table = Path(path) if path is not None else bundled_table()
        if table.is_dir():
            raise ValueError(f"{table}: is a folder, expected a latency table CSV with splitwise's columns")
        try:
            with table.open(newline="", encoding="utf-8-sig") as f:
                reader = csv.DictReader(f)
                missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
                if missing:
                    raise ValueError(f"{table}: missing column(s) {missing}; "
                                     f"expected splitwise's {list(COLUMNS)}")
                rows = []
                for r in reader:
                    if r["model"] == model and r["hardware"] == hardware:
                        _check_row(r, table, reader.line_num)
                        rows.append(r)
        except UnicodeDecodeError as exc:
            raise ValueError(f"{table}: not a text (UTF-8) CSV file (byte {exc.start}); expected a latency "
                             "table with splitwise's columns") from None
        except csv.Error as exc:
            raise ValueError(f"{table}: not a readable CSV file: {exc}") from None
        if not rows:
            raise ValueError(f"{table}: no rows for model {model!r} on hardware {hardware!r}; "
                             f"available: {sorted(available(table))}")
        return cls(model, hardware, average_rows(rows))

    def _fit(self, tp: int, pts: list[MeasuredPoint]) -> _Degree:
        by_key = {(p.prompt_size, p.batch_size, p.token_size): p for p in pts}
        ref_p, ref_t = self.reference_prompt, self.reference_tokens
        prompt_pts = sorted((p for p in pts if p.batch_size == 1 and p.token_size == ref_t),
                            key=lambda p: p.prompt_size)
        batch_pts = sorted((p for p in pts if p.prompt_size == ref_p and p.token_size == ref_t),
                           key=lambda p: p.batch_size)
        gen_pts = sorted((p for p in pts if p.prompt_size == ref_p and p.batch_size == 1),
                         key=lambda p: p.token_size)
        if (ref_p, 1, ref_t) not in by_key:
            raise ValueError(f"{self.model}/{self.hardware} TP{tp}: the reference point (prompt {ref_p}, "
                             f"batch 1, {ref_t} tokens) is not measured")
        # A prefill of more prompts cannot be faster than of fewer: such a point was disturbed.
        trusted = [batch_pts[0]]
        for p in batch_pts[1:]:
            if p.prompt_time_s < trusted[-1].prompt_time_s:
                self.excluded.append(
                    f"TP{tp} prompt {p.prompt_size} batch {p.batch_size}: "
                    f"prefill {p.prompt_time_s * 1e3:.0f} ms "
                    f"is below batch {trusted[-1].batch_size}'s {trusted[-1].prompt_time_s * 1e3:.0f} ms "
                    f"(and e2e {p.e2e_time_s:.1f} s): excluded as disturbed (KV-cache preemption)")
                continue
            trusted.append(p)
        base = by_key[(ref_p, 1, ref_t)]
        # The reference prefill (prompt 512, batch 1) is measured again at every generation length, in
        # sessions that differ by up to 6%: pool all of them (weighted by repeats) for that one value.
        pooled = sum(p.prompt_time_s * p.repeats for p in gen_pts) / sum(p.repeats for p in gen_pts)

        def prefill_of(p: MeasuredPoint) -> float:
            return pooled if (p.prompt_size, p.batch_size) == (ref_p, 1) else p.prompt_time_s

        prompt = LogLogCurve([p.prompt_size for p in prompt_pts], [prefill_of(p) for p in prompt_pts],
                             below="clamp", above="linear")
        prefill_batch = LogLogCurve([p.batch_size for p in trusted],
                                    [prefill_of(p) / pooled for p in trusted],
                                    below="clamp", above="linear")
        decode = LogLogCurve([p.batch_size for p in trusted], [p.token_time_s for p in trusted],
                             below="clamp", above="slope")
        generation = LogLogCurve([p.token_size for p in gen_pts],
                                 [p.token_time_s / base.token_time_s for p in gen_pts],
                                 below="clamp", above="clamp")
        context = LogLogCurve([p.prompt_size for p in prompt_pts],
                              [p.token_time_s / base.token_time_s for p in prompt_pts],
                              below="clamp", above="clamp")
        decode_table = [decode(max(b, 1)) for b in range(self.max_batch_table + 1)]
        prefill_table = [prefill_batch(max(b, 1)) for b in range(self.max_batch_table + 1)]
        return _Degree(prompt, prefill_batch, decode, generation, context, decode_table, prefill_table,
                       trusted[-1].batch_size)

    # ---------------------------------------------------------------- queries

    @property
    def tp_degrees(self) -> tuple[int, ...]:
        """Measured tensor-parallel degrees: the only ``gpus_per_replica`` a service may use."""
        return tuple(self._deg)

    def max_measured_batch(self, tp: int) -> int:
        return max(p.batch_size for p in self.points[self._check_tp(tp)])

    def trusted_batch(self, tp: int) -> int:
        """Largest batch whose measurement is used (after excluding disturbed points)."""
        return self._deg[self._check_tp(tp)].trusted_batch

    def _check_tp(self, tp: int) -> int:
        tp = int(tp)
        if tp not in self._deg:
            raise ValueError(f"{self.model}/{self.hardware}: TP {tp} was not measured; "
                             f"measured degrees are {list(self._deg)}")
        return tp

    def prefill_time_s(self, prompt_tokens: float, batch: int, tp: int) -> float:
        """Seconds to prefill ``batch`` prompts of mean length ``prompt_tokens`` in one step."""
        key = (prompt_tokens, batch, tp)
        t = self._prefill_memo.get(key)
        if t is None:  # coverage is counted once per distinct lookup, on this (memo-miss) path
            d = self._deg[tp]
            if prompt_tokens < d.prompt.lo:
                self.coverage["prompt shorter than measured (clamped)"] += 1
            elif prompt_tokens > d.prompt.hi:
                self.coverage["prompt longer than measured (linear per token)"] += 1
            if batch > d.trusted_batch:
                self.coverage["prefill batch above measured (linear per prompt)"] += 1
            ratio = d.prefill_batch_table[batch] if batch <= self.max_batch_table else d.prefill_batch(batch)
            t = self._prefill_memo[key] = d.prompt(prompt_tokens) * ratio
        return t

    def decode_step_s(self, batch: int, tp: int, mean_generated_tokens: float | None = None,
                      mean_prompt_tokens: float | None = None) -> float:
        """Seconds of one decode iteration of ``batch`` running requests (every one emits a token).

        Without the means, the reference request's (512-token prompt, 128 generated tokens) time.
        """
        key = (batch, tp, mean_generated_tokens, mean_prompt_tokens)
        t = self._decode_memo.get(key)
        if t is None:
            d = self._deg[tp]
            if batch > d.trusted_batch:
                self.coverage["decode batch above measured (last log-log segment continued)"] += 1
            t = d.decode_table[batch] if batch <= self.max_batch_table else d.decode(batch)
            for value, curve, what in ((mean_generated_tokens, d.generation, "generation"),
                                       (mean_prompt_tokens, d.context, "decode context (prompt)")):
                if value is None:
                    continue
                if value < curve.lo:
                    self.coverage[f"{what} shorter than measured (factor clamped)"] += 1
                elif value > curve.hi:
                    self.coverage[f"{what} longer than measured (factor clamped)"] += 1
                t *= curve(value)
            self._decode_memo[key] = t
        return t

    def lone_request_s(self, prompt_tokens: float, output_tokens: int, tp: int,
                       batch: int = 1) -> tuple[float, float]:
        """(time to first token, end-to-end) of ``batch`` identical requests served together."""
        ttft = self.prefill_time_s(prompt_tokens, batch, tp)
        step = self.decode_step_s(batch, tp, output_tokens, prompt_tokens)
        return ttft, ttft + (max(output_tokens, 1) - 1) * step

    def prefill_profile(self, prompts: Sequence[float], tp: int) -> list[list[float]]:
        """Rows ``[prompt_tokens, seconds]`` of one prompt's prefill at batch 1: the offline profile a
        capacity planner such as SageServe builds from this table. A profile is not a simulated request, so
        it counts no coverage and leaves the memo as it was (a lookup made here must still be counted when
        a request makes it)."""
        coverage, memo = Counter(self.coverage), dict(self._prefill_memo)
        try:
            return [[float(p), self.prefill_time_s(float(p), 1, tp)] for p in prompts]
        finally:  # in place: whoever holds these objects sees them as they were
            self.coverage.clear()
            self.coverage.update(coverage)
            self._prefill_memo.clear()
            self._prefill_memo.update(memo)

    @property
    def coverage_warnings(self) -> list[str]:
        """Everything the model could not take from a measurement, in words (exclusions + counts)."""
        out = [f"excluded point: {e}" for e in self.excluded]
        out += [f"{what}: {n} distinct lookups" for what, n in sorted(self.coverage.items())]
        return out


_WHOLE_COLUMNS = ("prompt_size", "batch_size", "token_size", "tensor_parallel")
_TIME_COLUMNS = ("prompt_time", "token_time", "e2e_time")
MAX_TABLE_SIZE = 1 << 20
"""Largest prompt, batch, token count or TP degree a table row may give (2^20: far beyond any measurement)."""


def _check_row(row: dict[str, str | None], table: Path, line: int) -> None:
    """One measured row: sizes are whole numbers from 1 to MAX_TABLE_SIZE, times positive finite milliseconds.
    A bad cell would otherwise reach the log-log fit as NaN, zero or a negative time (silently wrong)."""
    for col in (*_WHOLE_COLUMNS, *_TIME_COLUMNS):
        text = (row.get(col) or "").strip()
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{table}: line {line}: {col} {text!r} is not a number") from None
        if col in _WHOLE_COLUMNS and not (math.isfinite(value) and value == int(value)
                                          and 1 <= value <= MAX_TABLE_SIZE):
            raise ValueError(f"{table}: line {line}: {col} {text!r}: expected a whole number from 1 to "
                             f"{MAX_TABLE_SIZE}")
        if col in _TIME_COLUMNS and not (math.isfinite(value) and value > 0):
            raise ValueError(f"{table}: line {line}: {col} {text!r}: expected a positive finite time in ms")


def average_rows(rows: Iterable[dict[str, str]]) -> dict[int, list[MeasuredPoint]]:
    """Repeated rows of a point -> one averaged point (ms -> s), grouped by tensor-parallel degree."""
    groups: dict[tuple[int, int, int, int], list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        key = (int(float(r["tensor_parallel"])), int(float(r["prompt_size"])), int(float(r["batch_size"])),
               int(float(r["token_size"])))
        groups[key].append(r)
    out: dict[int, list[MeasuredPoint]] = defaultdict(list)
    for (tp, p, b, t), rs in sorted(groups.items()):
        def mean(col: str, rs: list[dict[str, str]] = rs) -> float:
            return sum(float(r[col]) for r in rs) / len(rs) / 1000.0

        prompts = [float(r["prompt_time"]) / 1000.0 for r in rs]
        out[tp].append(MeasuredPoint(p, b, t, mean("prompt_time"), mean("token_time"), mean("e2e_time"),
                                     len(rs), (min(prompts), max(prompts))))
    return dict(out)


def available(path: Path | str | None = None) -> set[tuple[str, str]]:
    """(model, hardware) pairs a table measures."""
    table = Path(path) if path is not None else bundled_table()
    with table.open(newline="") as f:
        return {(r["model"], r["hardware"]) for r in csv.DictReader(f)}
