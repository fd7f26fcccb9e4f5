"""Time series of simulated metrics under the names a real cluster exports, and their OpenMetrics text.

The simulator samples every workload at a fixed scrape interval (like Prometheus would) into a
:class:`Recorder`. Names follow the real exporters so that the operator's PromQL and the Grafana
dashboards work unchanged on a simulated run imported with
``promtool tsdb create-blocks-from openmetrics metrics.om.txt DIR``:

- DCGM exporter: ``DCGM_FI_DEV_GPU_UTIL`` (0-100), ``DCGM_FI_DEV_FB_USED`` (MiB),
  ``DCGM_FI_PROF_GR_ENGINE_ACTIVE`` (0-1), labelled ``gpu``, ``Hostname``, ``namespace``, ``pod``;
- vLLM serving: ``vllm:num_requests_running``, ``vllm:num_requests_waiting``,
  ``vllm:kv_cache_usage_perc`` (0-1), histograms ``vllm:time_to_first_token_seconds``,
  ``vllm:time_per_output_token_seconds``, ``vllm:e2e_request_latency_seconds`` and the counter
  ``vllm:request_success`` (sample ``vllm:request_success_total``), labelled ``namespace``, ``pod``;
- training jobs (autocm's documented contract): ``autocm_training_throughput_samples_per_second``,
  ``autocm_training_goodput_samples_per_second``, ``autocm_training_progress_ratio``,
  ``autocm_training_gpus``, ``autocm_training_batch_size``, labelled ``namespace``, ``job``;
- cAdvisor: ``container_cpu_usage_seconds_total``, ``container_memory_working_set_bytes``.

Recording is cheap and memory stays bounded on day-long runs: a sample is kept as numbers (series id,
index of its scrape time, value; a histogram point as its raw bucket counts), a few bytes in typed arrays
that go to a spool file (a temporary file next to the output) past a size. No text is made while the
simulation runs. The OpenMetrics file is written once at the end, in bulk, in the order the format
demands: one family after another, and inside a family all samples of one series (for a histogram: one
label set, every ``le`` bucket with its ``_count`` and ``_sum``) together and in time order. That is what
strict parsers check (prometheus_client's ``text_string_to_metric_families``: "Invalid metric grouping";
``promtool`` reads it too). Values are written as ``_format_value`` says (whole
numbers as integers, otherwise the shortest round-trip ``repr``; ``NaN``, ``+Inf``, ``-Inf``), timestamps
in seconds to the millisecond.
Producers stop writing a series when its pod goes, as a real exporter does.
"""

from __future__ import annotations

import math
import os
import re
import sys
from array import array
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0,
)
"""vLLM's own bucket edges for its latency histograms (vllm/engine/metrics.py), so quantiles over
simulated and real data come out the same."""

Labels = tuple[tuple[str, str], ...]

_SUFFIX = {"gauge": "", "counter": "_total"}


def labels_of(mapping: Mapping[str, str]) -> Labels:
    return tuple(sorted((str(k), str(v)) for k, v in mapping.items()))


@dataclass
class Family:
    name: str
    kind: str  # "gauge" | "counter" | "histogram"
    help: str = ""


@dataclass
class _Series:
    family: str
    labels: Labels
    prefix: str
    """Everything of a sample line before the value (gauges, counters: ``name{labels} ``)."""
    bucket_prefixes: tuple[str, ...] = ()
    """Histograms: one prefix per line of a point (``le`` buckets, ``le="+Inf"`` last), then ``_count`` and
    ``_sum``."""
    template: str = ""
    """Histograms: one point's lines as a ``%`` format, two fields a line (the value, then ``" <t>\\n"``)."""


_DTYPES = {"i": np.int32, "q": np.int64, "d": np.float64}


class _Column:
    """A growing column of numbers: the newest in memory (``array``, a few bytes a sample), older ones
    spilled to the spool file, so a long run's memory does not grow with its samples."""

    def __init__(self, typecode: str) -> None:
        self.typecode = typecode
        self.data = array(typecode)
        self.spilled: list[tuple[int, int]] = []  # (offset in the spool, items)

    def spill(self, spool: BinaryIO) -> None:
        if self.data:
            self.spilled.append((spool.tell(), len(self.data)))
            self.data.tofile(spool)
            self.data = array(self.typecode)

    def load(self, spool: BinaryIO | None) -> np.ndarray:
        """Every value, spilled and in memory, as one numpy array (read back for the export only)."""
        dtype = _DTYPES[self.typecode]
        parts = []
        for offset, n in self.spilled:
            assert spool is not None
            spool.seek(offset)
            parts.append(np.fromfile(spool, dtype=dtype, count=n))
        parts.append(np.frombuffer(self.data, dtype=dtype).copy() if self.data else np.zeros(0, dtype))
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


class _Store:
    """Columns of one kind of record, appended together (one row a sample or a histogram point). Each
    column is also an attribute (the in-memory array), so the recording path appends with no lookup."""

    sid: array[int]
    ti: array[int]
    value: array[float]      # gauges, counters
    counts: array[int]       # histograms
    count: array[int]
    total: array[float]

    def __init__(self, **typecodes: str) -> None:
        self.columns = {name: _Column(code) for name, code in typecodes.items()}
        for name, col in self.columns.items():
            setattr(self, name, col.data)

    def spill(self, spool: BinaryIO) -> None:
        for name, col in self.columns.items():
            col.spill(spool)
            setattr(self, name, col.data)  # the hot path appends to the attribute: point it at the new array

    def load(self, spool: BinaryIO | None) -> dict[str, np.ndarray]:
        return {name: col.load(spool) for name, col in self.columns.items()}


def _scalar_store() -> _Store:
    """Gauge and counter samples: series, scrape time (index into the formatted stamps), value."""
    return _Store(sid="i", ti="i", value="d")


def _points_store() -> _Store:
    """Histogram points of one width: series, time index, the raw bucket counts (``width`` a point, flat),
    count and sum."""
    return _Store(sid="i", ti="i", counts="q", count="q", total="d")


_LINES_PER_WRITE = 16384
"""Gauge/counter lines formatted by one ``%`` (large enough to amortise the call, small enough to stay in
cache)."""
_POINTS_PER_WRITE = 1024
"""Histogram points formatted by one ``%``."""


@dataclass
class Recorder:
    """Records samples as numbers; cheap enough to call at every scrape interval for every workload.

    A sample costs a few appends to typed arrays (series id, time index, value; a histogram point its raw
    bucket counts), not a formatted line: text is made once, in bulk, by :meth:`write_openmetrics`, which
    is where nearly all of an export's bytes are produced. ``spool``: a file that takes the numbers past
    ``spill_rows`` samples in memory (removed by :meth:`write_openmetrics` / :meth:`close`), or None to keep
    them in memory (tests, short runs).
    """

    spool: Path | None = None
    families: dict[str, Family] = field(default_factory=dict)
    samples_written: int = 0
    spill_rows: int = 1 << 20
    """Gauge/counter samples kept in memory before they go to the spool (histogram points: an eighth)."""

    def __post_init__(self) -> None:
        self._ids: dict[tuple[str, Labels], int] = {}
        self._series: list[_Series] = []
        self._stamps: list[str] = []  # " <t:.3f>\n" per distinct scrape time, formatted once
        self._times: dict[float, int] = {}
        self._pairs: dict[Labels, list[str]] = {}
        self._scalars = _scalar_store()
        self._points: dict[int, _Store] = {}  # by width (bucket counts a point)
        self._spool_file: BinaryIO | None = None
        self._closed = False
        # without a spool the numbers stay in memory: never check again
        self._spill_at = self.spill_rows if self.spool is not None else sys.maxsize

    # ------------------------------------------------------------------ recording

    def _family(self, name: str, kind: str, help: str) -> Family:
        fam = self.families.get(name)
        if fam is None:
            fam = self.families[name] = Family(name, kind, help)
        elif fam.kind != kind:
            raise ValueError(f"metric {name} recorded as both {fam.kind} and {kind}")
        elif help and not fam.help:
            fam.help = help
        return fam

    def series_id(self, name: str, kind: str, labels: Mapping[str, str], help: str = "",
                  edges: tuple[float, ...] = LATENCY_BUCKETS_S) -> int:
        """A handle for one series (``kind``: gauge, counter, histogram with bucket ``edges``): producers
        that sample the same series every scrape keep it and call :meth:`put` / :meth:`put_histogram`."""
        key = (name, labels_of(labels))
        sid = self._ids.get(key)
        if sid is not None:
            return sid
        self._family(name, kind, help)
        pairs = self._label_pairs(key[1])
        text = "{" + ",".join(pairs) + "}" if pairs else ""
        if kind == "histogram":
            les = (*(_format_le(e) for e in edges), "+Inf")
            buckets = [f"{name}_bucket{_with_le(key[1], pairs, le)} " for le in les]
            prefixes = (*buckets, f"{name}_count{text} ", f"{name}_sum{text} ")
            template = "".join(p.replace("%", "%%") + "%s%s" for p in prefixes)
            series = _Series(name, key[1], "", prefixes, template)
        else:
            series = _Series(name, key[1], f"{name}{_SUFFIX[kind]}{text} ")
        sid = self._ids[key] = len(self._series)
        self._series.append(series)
        return sid

    def _label_pairs(self, labels: Labels) -> list[str]:
        """``k="v"`` (escaped) of each label, in key order, made once per label set: a pod's GPUs have
        three DCGM series each, and pods come and go all day."""
        pairs = self._pairs.get(labels)
        if pairs is None:
            pairs = self._pairs[labels] = [f'{k}="{_escape(v)}"' for k, v in labels]
        return pairs

    def _time(self, t: float) -> int:
        """The index of ``t``'s formatted stamp (every sample of a scrape shares one)."""
        ti = self._times.get(t)
        if ti is None:
            ti = self._times[t] = len(self._stamps)
            self._stamps.append(f" {t:.3f}\n")
        return ti

    def put(self, sid: int, t: float, value: float) -> None:
        """One sample of a gauge or counter series (a counter's cumulative total)."""
        ti = self._times.get(t)
        if ti is None:
            ti = self._time(t)
        sc = self._scalars
        sc.sid.append(sid)
        sc.ti.append(ti)
        sc.value.append(value)
        self.samples_written += 1
        if len(sc.sid) >= self._spill_at:
            self._spill()

    def put_many(self, sids: Sequence[int], t: float, values: Sequence[float]) -> None:
        """One sample for each of several gauge/counter series at ``t`` (``values[i]`` for ``sids[i]``):
        what a producer scrapes together (a pod's gauges) costs one call."""
        if len(values) != len(sids):
            raise ValueError(f"{len(sids)} series but {len(values)} values")
        ti = self._times.get(t)
        if ti is None:
            ti = self._time(t)
        n = len(sids)
        sc = self._scalars
        sc.sid.extend(sids)
        sc.ti.extend([ti] * n)
        sc.value.extend(values)
        self.samples_written += n
        if len(sc.sid) >= self._spill_at:
            self._spill()

    def put_histogram(self, sid: int, t: float, cumulative: Histogram) -> None:
        """The histogram's cumulative state at ``t`` (every bucket, then count and sum)."""
        counts = cumulative.counts
        width = len(counts)
        lines = len(self._series[sid].bucket_prefixes)
        if width + 2 != lines:
            raise ValueError(f"histogram with {width - 1} edges recorded into a series with {lines - 3}")
        ti = self._times.get(t)
        if ti is None:
            ti = self._time(t)
        pts = self._points.get(width)
        if pts is None:
            pts = self._points[width] = _points_store()
        pts.sid.append(sid)
        pts.ti.append(ti)
        pts.counts.extend(counts)
        pts.count.append(cumulative.count)
        pts.total.append(cumulative.total)
        self.samples_written += lines
        if len(pts.sid) >= self._spill_at >> 3:
            self._spill()

    def gauge(self, name: str, labels: Mapping[str, str], t: float, value: float, help: str = "") -> None:
        self.put(self.series_id(name, "gauge", labels, help), t, value)

    def counter(self, name: str, labels: Mapping[str, str], t: float, total: float, help: str = "") -> None:
        """``total`` is the cumulative count so far (counters never go down)."""
        self.put(self.series_id(name, "counter", labels, help), t, total)

    def histogram(self, name: str, labels: Mapping[str, str], t: float, cumulative: Histogram,
                  help: str = "") -> None:
        """Record the histogram's cumulative state at ``t`` (every bucket, then count and sum)."""
        self.put_histogram(self.series_id(name, "histogram", labels, help, cumulative.edges), t, cumulative)

    def _spill(self) -> None:
        """Move the numbers in memory to the spool file (nothing without one: they stay in memory)."""
        if self.spool is None:
            return
        if self._spool_file is None:
            self._spool_file = open(self.spool, "w+b")  # noqa: SIM115 (closed by close())
        self._spool_file.seek(0, os.SEEK_END)  # reading back (points()) moves the position
        self._scalars.spill(self._spool_file)
        for pts in self._points.values():
            pts.spill(self._spool_file)

    def _load(self, store: _Store) -> dict[str, np.ndarray]:
        if self._spool_file is not None:
            self._spool_file.flush()
        return store.load(self._spool_file)

    # ------------------------------------------------------------------ reading back

    def points(self, name: str) -> dict[Labels, list[tuple[float, float]]]:
        """Every gauge/counter series of ``name``: labels -> [(t, value)], as the file has them (time to
        the millisecond): for tests and small runs."""
        wanted = {i: s.labels for i, s in enumerate(self._series) if s.family == name and not s.bucket_prefixes}
        out: dict[Labels, list[tuple[float, float]]] = {labels: [] for labels in wanted.values()}
        if not wanted or self._closed:
            return out
        cols = self._load(self._scalars)
        for sid, ti, value in zip(cols["sid"].tolist(), cols["ti"].tolist(), cols["value"].tolist(), strict=True):
            labels = wanted.get(sid)
            if labels is not None:
                out[labels].append((float(self._stamps[ti]), float(_format_value(value))))
        return out

    def series(self, name: str, **match: str) -> list[tuple[float, float]]:
        """All points of the first gauge/counter series of ``name`` whose labels include ``match``."""
        for labels, pts in self.points(name).items():
            d = dict(labels)
            if all(d.get(k) == v for k, v in match.items()):
                return pts
        return []

    # ------------------------------------------------------------------ the file

    def write_openmetrics(self, path: Path) -> int:
        """Write every sample as OpenMetrics text with timestamps, grouped as the format requires;
        returns the number of samples. The spool is removed afterwards.

        Order: family by name, inside a family series by first registration, inside a series time (the
        order of recording). The text is made here, in bulk: values become Python objects whose ``str``
        is the exposition text (:func:`_value_objects`, vectorised), and thousands of lines at a time go
        through one ``%`` format (gauge lines: prefix, value and stamp as fields; histogram points: their
        series' label prefixes as the format's literal text)."""
        names = sorted(self.families)
        rank = {n: i for i, n in enumerate(names)}
        series_rank = np.array([rank[s.family] for s in self._series], dtype=np.int64)
        stamps = np.array([*self._stamps, ""], dtype=object)[:-1]  # 1-D object array, even when empty
        scalars = _in_series_order(self._load(self._scalars), series_rank)
        points = {w: _in_series_order(self._load(p), series_rank, w) for w, p in self._points.items()}
        written: set[str] = set()
        with path.open("wb", buffering=1 << 20) as out:
            for r, name in enumerate(names):
                fam = self.families[name]
                parts = _family_rows(scalars, r) if fam.kind != "histogram" else \
                    [(w, rows) for w, cols in points.items() if (rows := _family_rows(cols, r)) is not None]
                if not parts:
                    continue
                written.add(name)
                out.write(f"# TYPE {name} {fam.kind}\n".encode())
                if fam.help:
                    out.write(f"# HELP {name} {_escape_help(fam.help)}\n".encode())
                if fam.kind == "histogram":
                    self._write_points(out, points, parts, stamps)  # type: ignore[arg-type]
                else:
                    self._write_scalars(out, scalars, parts, stamps)  # type: ignore[arg-type]
            for name in names:  # families declared but never sampled
                if name not in written:
                    out.write(f"# TYPE {name} {self.families[name].kind}\n".encode())
            out.write(b"# EOF\n")
        self.close()
        return self.samples_written

    def _write_scalars(self, out: BinaryIO, cols: dict[str, np.ndarray], rows: tuple[int, int],
                       stamps: np.ndarray) -> None:
        """Gauge/counter lines ``prefix value stamp``: three ``%s`` fields a line, the prefix gathered per
        line (a family has thousands of short series; a loop over them would cost more than the field).
        Each distinct value of the family is formatted once (a pod's GPUs share theirs, memory in use
        hardly changes): float ``repr`` is the dearest part of a line."""
        prefixes = np.array([*(s.prefix for s in self._series), ""], dtype=object)
        sid, ti = cols["sid"], cols["ti"]
        lo, hi = rows
        distinct, which = np.unique(cols["value"][lo:hi], return_inverse=True)
        texts = np.array([*map(str, _value_objects(distinct).tolist()), ""], dtype=object)[:-1]
        for a in range(lo, hi, _LINES_PER_WRITE):
            b = min(hi, a + _LINES_PER_WRITE)
            fields = np.empty((b - a, 3), dtype=object)
            fields[:, 0] = prefixes[sid[a:b]]
            fields[:, 1] = texts[which[a - lo:b - lo]]
            fields[:, 2] = stamps[ti[a:b]]
            out.write((("%s%s%s" * (b - a)) % tuple(fields.ravel().tolist())).encode())

    def _write_points(self, out: BinaryIO, points: dict[int, dict[str, np.ndarray]],
                      parts: list[tuple[int, tuple[int, int]]], stamps: np.ndarray) -> None:
        """Histogram points, series after series (from stores of any width, by series id), each point
        through its series' template (prefixes as literal text, two fields a line)."""
        runs: list[tuple[int, int, int, int]] = []  # (series, width, first row, end row)
        for width, (lo, hi) in parts:
            sid = points[width]["sid"][lo:hi]
            starts = [0, *(np.flatnonzero(np.diff(sid)) + 1).tolist()]
            ends = [*starts[1:], hi - lo]
            runs.extend((int(sid[s]), width, lo + s, lo + e) for s, e in zip(starts, ends, strict=True))
        runs.sort()
        for sid, width, lo, hi in runs:
            cols = points[width]
            template = self._series[sid].template
            for a in range(lo, hi, _POINTS_PER_WRITE):
                b = min(hi, a + _POINTS_PER_WRITE)
                fields = _point_fields(cols, width, a, b, stamps)
                out.write(((template * (b - a)) % tuple(fields.ravel().tolist())).encode())

    def close(self) -> None:
        """Drop the numbers and the spool (the recorder cannot be written again)."""
        self._closed = True
        if self._spool_file is not None:
            self._spool_file.close()
            self._spool_file = None
        if self.spool is not None and self.spool.exists():
            os.unlink(self.spool)
        self._scalars = _scalar_store()
        self._points = {}


def _in_series_order(cols: dict[str, np.ndarray], series_rank: np.ndarray, width: int = 0) -> dict[str, np.ndarray]:
    """The rows sorted by (family rank, series id), recording order kept inside a series (stable sort);
    adds ``fam`` (each row's family rank) and, for histogram points, shapes ``counts`` as rows x width."""
    sid = cols["sid"]
    fam = series_rank[sid] if sid.size else np.zeros(0, np.int64)
    order = np.argsort((fam << 32) | sid.astype(np.int64), kind="stable")
    out = {name: col.reshape(-1, width)[order] if name == "counts" else col[order] for name, col in cols.items()}
    out["fam"] = fam[order]
    return out


def _family_rows(cols: dict[str, np.ndarray], rank: int) -> tuple[int, int] | None:
    """The sorted rows of the family of ``rank`` (first, end), or None."""
    lo, hi = np.searchsorted(cols["fam"], [rank, rank + 1]).tolist()
    return (lo, hi) if hi > lo else None


def _point_fields(cols: dict[str, np.ndarray], width: int, a: int, b: int, stamps: np.ndarray) -> np.ndarray:
    """The ``%`` fields of histogram points ``a:b``, one row a point: for each line its value and stamp
    (cumulative ``le`` buckets, then ``+Inf`` and ``_count`` both the count, then the sum)."""
    lines = width + 2
    fields = np.empty((b - a, 2 * lines), dtype=object)
    fields[:, 0:2 * (width - 1):2] = np.cumsum(cols["counts"][a:b, :width - 1], axis=1)
    fields[:, 2 * (width - 1)] = cols["count"][a:b]
    fields[:, 2 * width] = cols["count"][a:b]
    fields[:, 2 * (width + 1)] = _value_objects(cols["total"][a:b])
    fields[:, 1::2] = stamps[cols["ti"][a:b]][:, None]
    return fields


def _value_objects(values: np.ndarray) -> np.ndarray:
    """Objects whose ``str`` is :func:`_format_value` of each value, for a whole array at once: Python
    ints for whole numbers below 1e15, the ``NaN``/``+Inf``/``-Inf`` words, Python floats otherwise
    (``str`` of a float is its shortest round-trip ``repr``)."""
    out = values.astype(object)
    with np.errstate(invalid="ignore"):
        whole = (np.abs(values) < 1e15) & (values == np.trunc(values))
    if whole.any():
        out[whole] = values[whole].astype(np.int64)
    special = ~np.isfinite(values)
    if special.any():
        out[np.isnan(values)] = "NaN"
        out[values == math.inf] = "+Inf"
        out[values == -math.inf] = "-Inf"
    return out


def read_openmetrics_strictly(text: str) -> dict[str, list[Any]]:
    """Parse OpenMetrics text with prometheus_client's strict parser (family grouping, series grouping,
    time order, histogram rules): family name -> samples. Raises ValueError on anything invalid; the
    tests run every exported file through it.

    One allowance: prometheus_client (0.26, ``text_fd_to_metric_families``) never resets its duplicate
    filter ``group_timestamp_samples`` when a histogram's timestamp changes, so it drops every sample but
    the first of a classic histogram's second and later points and then reports "+Inf bucket missing".
    Histogram families are therefore parsed one point (one timestamp) at a time, each point through the
    same strict parser, after checking here what the parser would have: each series contiguous, in time order.
    """
    lines = text.splitlines()
    if not lines or lines[-1] != "# EOF":
        raise ValueError("Missing # EOF at end")
    families: dict[str, list[str]] = {}
    kinds: dict[str, str] = {}
    current = None
    for line in lines[:-1]:
        if line.startswith("# TYPE "):
            _, _, current, kind = line.split(" ", 3)
            if current in families:
                raise ValueError(f"Invalid metric grouping: family {current} appears twice")
            families[current], kinds[current] = [], kind
        if current is not None:
            families[current].append(line)
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    out: dict[str, list[Any]] = {}
    plain = [ln for name, body in families.items() if kinds[name] != "histogram" for ln in body]
    for fam in text_string_to_metric_families("\n".join([*plain, "# EOF"]) + "\n"):
        out[fam.name] = fam.samples
    for name, body in families.items():
        if kinds[name] != "histogram":
            continue
        header = [ln for ln in body if ln.startswith("#")]
        seen: set[tuple[tuple[str, str], ...]] = set()
        last: tuple[Any, float] | None = None
        by_time: dict[float, list[str]] = defaultdict(list)
        for ln in body:
            if ln.startswith("#"):
                continue
            m = _SAMPLE.match(ln)
            if m is None:
                raise ValueError(f"not a sample line: {ln}")
            group = tuple(kv for kv in _LABEL.findall(m["labels"] or "") if kv[0] != "le")
            t = float(m["t"])
            if last is None or group != last[0]:
                if group in seen:
                    raise ValueError(f"Invalid metric grouping: {name}: series {group} is not contiguous")
                seen.add(group)
            else:
                if t < last[1]:
                    raise ValueError(f"Timestamps went backwards within a group: {name} {group}")
            last = (group, t)
            by_time[t].append(ln)
        out[name] = []
        for t in sorted(by_time):
            for fam in text_string_to_metric_families("\n".join([*header, *by_time[t], "# EOF"]) + "\n"):
                out[name].extend(fam.samples)
    return out


@dataclass
class Histogram:
    """A cumulative Prometheus-style histogram (observations never forgotten)."""

    edges: tuple[float, ...] = LATENCY_BUCKETS_S
    counts: list[int] = field(default_factory=list)
    total: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.edges) + 1)

    def observe(self, value: float) -> None:
        lo, hi = 0, len(self.edges)
        while lo < hi:  # first edge >= value
            mid = (lo + hi) // 2
            if self.edges[mid] < value:
                lo = mid + 1
            else:
                hi = mid
        self.counts[lo] += 1
        self.total += value
        self.count += 1

    def observe_many(self, values: Iterable[float]) -> None:
        for v in values:
            self.observe(v)

    def le_labels(self) -> tuple[str, ...]:
        """Bucket bounds as OpenMetrics wants them (Go's float formatting: ``1.0``, ``+Inf``)."""
        return (*(_format_le(e) for e in self.edges), "+Inf")

    def cumulative_counts(self) -> list[int]:
        out, running = [], 0
        for c in self.counts[: len(self.edges)]:
            running += c
            out.append(running)
        out.append(self.count)
        return out

    def cumulative_buckets(self) -> list[tuple[str, int]]:
        return list(zip(self.le_labels(), self.cumulative_counts(), strict=True))


_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
_SAMPLE = re.compile(r"^(?P<name>[^{ ]+)(?P<labels>\{[^}]*\})? (?P<value>\S+) (?P<t>\S+)$")


def _format_labels(d: Mapping[str, str]) -> str:
    if not d:
        return ""
    body = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(d.items()))
    return "{" + body + "}"


def _with_le(labels: Labels, pairs: list[str], le: str) -> str:
    """The label text of a histogram bucket: ``labels`` (their ``pairs``) with ``le`` in key order, as
    :func:`_format_labels` would write ``{**labels, "le": le}``."""
    keys = [k for k, _ in labels]
    if "le" in keys:
        return _format_labels({**dict(labels), "le": le})
    at = bisect_left(keys, "le")
    return "{" + ",".join([*pairs[:at], f'le="{_escape(le)}"', *pairs[at:]]) + "}"


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n")


def _format_le(edge: float) -> str:
    if math.isinf(edge):
        return "+Inf" if edge > 0 else "-Inf"
    return repr(float(edge))


def _format_value(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if float(v).is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(float(v))
