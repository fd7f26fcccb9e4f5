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

Memory stays bounded on day-long runs: every scrape is appended as text to a spool (a temporary file
next to the output, or a buffer in memory for small uses) and only a few integers per scrape of a
series are kept to find it again. The OpenMetrics file is written once at the end by copying the
spooled blocks in the order the format demands: one family after another, and inside a family all
samples of one series (for a histogram: one label set, every ``le`` bucket with its ``_count`` and
``_sum``) together and in time order. That is what strict parsers check (prometheus_client's
``text_string_to_metric_families``: "Invalid metric grouping"; ``promtool`` reads it too).
Producers stop writing a series when its pod goes, as a real exporter does.
"""

from __future__ import annotations

import io
import math
import mmap
import os
import re
from array import array
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
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
    """Histograms: one prefix per bucket (``le`` last), then ``_count`` and ``_sum``."""
    ascii: bool = True
    """Every prefix is ASCII (one byte per character), so a block's length needs no encoding."""
    template: str = ""
    """Histograms: the whole block as one format string (values positional, ``{ts}`` the timestamp)."""


@dataclass
class Recorder:
    """Streams samples to a spool; cheap enough to call at every scrape interval for every workload.

    ``spool``: a file to append to (removed by :meth:`write_openmetrics`), or None to buffer in memory
    (tests, short runs).
    """

    spool: Path | None = None
    families: dict[str, Family] = field(default_factory=dict)
    samples_written: int = 0

    def __post_init__(self) -> None:
        self._ids: dict[tuple[str, Labels], int] = {}
        self._series: list[_Series] = []
        self._sid = array("i")      # per block: which series
        self._offset = array("q")   # per block: where in the spool
        self._length = array("i")
        self._pos = 0
        self._buf: list[str] = []
        self._buffered = 0
        self._out: BinaryIO = (open(self.spool, "wb", buffering=1 << 20) if self.spool is not None  # noqa: SIM115
                               else io.BytesIO())

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
        d = dict(key[1])
        if kind == "histogram":
            les = (*(_format_le(e) for e in edges), "+Inf")
            buckets = [f"{name}_bucket{_format_labels({**d, 'le': le})} " for le in les]
            prefixes = (*buckets, f"{name}_count{_format_labels(d)} ", f"{name}_sum{_format_labels(d)} ")
            template = "".join(p.replace("{", "{{").replace("}", "}}") + "{" + str(i) + "} {ts}\n"
                               for i, p in enumerate(prefixes))
            series = _Series(name, key[1], "", prefixes, all(p.isascii() for p in prefixes), template)
        else:
            prefix = f"{name}{_SUFFIX[kind]}{_format_labels(d)} "
            series = _Series(name, key[1], prefix, ascii=prefix.isascii())
        sid = self._ids[key] = len(self._series)
        self._series.append(series)
        return sid

    def _append(self, sid: int, text: str) -> None:
        # text is buffered and written in large pieces; lengths are in bytes (ASCII: one per character;
        # values and timestamps always are, so a series' prefixes decide)
        n = len(text) if self._series[sid].ascii else len(text.encode())
        self._buf.append(text)
        self._sid.append(sid)
        self._offset.append(self._pos)
        self._length.append(n)
        self._pos += n
        self._buffered += n
        if self._buffered >= 1 << 20:
            self._flush()

    def _flush(self) -> None:
        if self._buf:
            self._out.write("".join(self._buf).encode())
            self._buf.clear()
            self._buffered = 0
        self._out.flush()

    def put(self, sid: int, t: float, value: float) -> None:
        """One sample of a gauge or counter series (a counter's cumulative total)."""
        self._append(sid, f"{self._series[sid].prefix}{_format_value(value)} {t:.3f}\n")
        self.samples_written += 1

    def put_same(self, sids: Sequence[int], t: float, value: float) -> None:
        """The same value for several series at once (a pod's GPUs)."""
        tail = f"{_format_value(value)} {t:.3f}\n"
        series = self._series
        if not all(series[sid].ascii for sid in sids):
            for sid in sids:
                self._append(sid, series[sid].prefix + tail)
            self.samples_written += len(sids)
            return
        lines = [series[sid].prefix + tail for sid in sids]
        lengths = [len(line) for line in lines]
        offsets = list(accumulate(lengths, initial=self._pos))
        self._buf.extend(lines)
        self._sid.extend(sids)
        self._length.extend(lengths)
        self._offset.extend(offsets[:-1])
        self._buffered += offsets[-1] - self._pos
        self._pos = offsets[-1]
        self.samples_written += len(sids)
        if self._buffered >= 1 << 20:
            self._flush()

    def put_histogram(self, sid: int, t: float, cumulative: Histogram) -> None:
        """The histogram's cumulative state at ``t`` (every bucket, then count and sum)."""
        series = self._series[sid]
        counts = cumulative.counts
        if len(counts) + 2 != len(series.bucket_prefixes):
            raise ValueError(f"histogram with {len(counts) - 1} edges recorded into a series with "
                             f"{len(series.bucket_prefixes) - 3}")
        # one format call per block: the template holds every line's prefix (see series_id)
        self._append(sid, series.template.format(*accumulate(counts[:-1]), cumulative.count, cumulative.count,
                                                 _format_value(cumulative.total), ts=f"{t:.3f}"))
        self.samples_written += len(series.bucket_prefixes)

    def gauge(self, name: str, labels: Mapping[str, str], t: float, value: float, help: str = "") -> None:
        self.put(self.series_id(name, "gauge", labels, help), t, value)

    def counter(self, name: str, labels: Mapping[str, str], t: float, total: float, help: str = "") -> None:
        """``total`` is the cumulative count so far (counters never go down)."""
        self.put(self.series_id(name, "counter", labels, help), t, total)

    def histogram(self, name: str, labels: Mapping[str, str], t: float, cumulative: Histogram,
                  help: str = "") -> None:
        """Record the histogram's cumulative state at ``t`` (every bucket, then count and sum)."""
        self.put_histogram(self.series_id(name, "histogram", labels, help, cumulative.edges), t, cumulative)

    # ------------------------------------------------------------------ reading back

    def _blocks(self) -> bytes | memoryview | mmap.mmap:
        """The spooled text: the buffer itself, or the spool file mapped (never read into memory)."""
        self._flush()
        if isinstance(self._out, io.BytesIO):
            return self._out.getbuffer()
        if self._pos == 0:
            return b""
        with open(self.spool, "rb") as f:  # type: ignore[arg-type]
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)

    def points(self, name: str) -> dict[Labels, list[tuple[float, float]]]:
        """Every gauge/counter series of ``name``: labels -> [(t, value)] (reads the spool back: for
        tests and small runs)."""
        wanted = {i: s.labels for i, s in enumerate(self._series) if s.family == name and not s.bucket_prefixes}
        out: dict[Labels, list[tuple[float, float]]] = {labels: [] for labels in wanted.values()}
        if not wanted:
            return out
        data = self._blocks()
        for i in range(len(self._sid)):
            labels = wanted.get(self._sid[i])
            if labels is not None:
                line = bytes(data[self._offset[i]:self._offset[i] + self._length[i]]).decode()
                value, t = line.split()[-2:]
                out[labels].append((float(t), float(value)))
        if isinstance(data, memoryview):
            data.release()
        elif isinstance(data, mmap.mmap):
            data.close()
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
        returns the number of samples. A file-backed spool is removed afterwards."""
        self._flush()
        names = sorted(self.families)
        fam_rank = {n: i for i, n in enumerate(names)}
        # order: family by name, then series by first appearance, then time (append order, stable sort)
        series_key = np.array([fam_rank[s.family] for s in self._series], dtype=np.int64) * (1 << 32) \
            + np.arange(len(self._series), dtype=np.int64)
        block_sid = np.frombuffer(self._sid, dtype=np.int32) if len(self._sid) else np.zeros(0, np.int32)
        blocks = np.argsort(series_key[block_sid], kind="stable").tolist() if block_sid.size else []
        offset, length, series, sids = self._offset, self._length, self._series, self._sid
        # the spool is mapped, not read: its pages are file cache the kernel can drop, never heap
        data = self._blocks()
        view = memoryview(data)
        written: set[str] = set()
        current = None
        chunk: list[memoryview] = []  # written in pieces of a few thousand blocks
        try:
            with path.open("wb", buffering=1 << 20) as out:
                for i in blocks:
                    fam_name = series[sids[i]].family
                    if fam_name is not current:
                        current = fam_name
                        out.write(b"".join(chunk))
                        chunk.clear()
                        if fam_name not in written:
                            written.add(fam_name)
                            fam = self.families[fam_name]
                            out.write(f"# TYPE {fam.name} {fam.kind}\n".encode())
                            if fam.help:
                                out.write(f"# HELP {fam.name} {_escape_help(fam.help)}\n".encode())
                    chunk.append(view[offset[i]:offset[i] + length[i]])
                    if len(chunk) >= 4096:
                        out.write(b"".join(chunk))
                        chunk.clear()
                out.write(b"".join(chunk))
                chunk.clear()
                for fam_name in names:  # families declared but never sampled
                    if fam_name not in written:
                        out.write(f"# TYPE {fam_name} {self.families[fam_name].kind}\n".encode())
                out.write(b"# EOF\n")
        finally:
            chunk.clear()
            view.release()
            if isinstance(data, mmap.mmap):
                data.close()
            elif isinstance(data, memoryview):
                data.release()
        self.close()
        return self.samples_written

    def close(self) -> None:
        """Drop the spool (the recorder cannot be written again)."""
        self._out.close()
        if self.spool is not None and self.spool.exists():
            os.unlink(self.spool)
        self._sid, self._offset, self._length = array("i"), array("q"), array("i")


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
