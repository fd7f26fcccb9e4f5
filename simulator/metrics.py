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
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0,
)
"""vLLM's own bucket edges for its latency histograms (vllm/engine/metrics.py), so quantiles over
simulated and real data come out the same."""

Labels = tuple[tuple[str, str], ...]


def labels_of(mapping: Mapping[str, str]) -> Labels:
    return tuple(sorted((str(k), str(v)) for k, v in mapping.items()))


@dataclass
class Family:
    name: str
    kind: str  # "gauge" | "counter" | "histogram"
    help: str = ""
    unit: str = ""
    samples: dict[Labels, list[tuple[float, float]]] = field(default_factory=dict)


@dataclass
class Recorder:
    """Collects samples; cheap enough to call at every scrape interval for every workload."""

    families: dict[str, Family] = field(default_factory=dict)

    def _family(self, name: str, kind: str, help: str) -> Family:
        fam = self.families.get(name)
        if fam is None:
            fam = self.families[name] = Family(name, kind, help)
        elif fam.kind != kind:
            raise ValueError(f"metric {name} recorded as both {fam.kind} and {kind}")
        return fam

    def gauge(self, name: str, labels: Mapping[str, str], t: float, value: float, help: str = "") -> None:
        self._family(name, "gauge", help).samples.setdefault(labels_of(labels), []).append((t, value))

    def counter(self, name: str, labels: Mapping[str, str], t: float, total: float, help: str = "") -> None:
        """``total`` is the cumulative count so far (counters never go down)."""
        self._family(name, "counter", help).samples.setdefault(labels_of(labels), []).append((t, total))

    def histogram(self, name: str, labels: Mapping[str, str], t: float, cumulative: Histogram,
                  help: str = "") -> None:
        """Record the histogram's cumulative state at ``t`` (buckets, sum, count)."""
        fam = self._family(name, "histogram", help)
        base = dict(labels)
        for le, count in cumulative.cumulative_buckets():
            key = labels_of({**base, "le": le})
            fam.samples.setdefault(key, []).append((t, float(count)))
        fam.samples.setdefault(labels_of({**base, "__part": "sum"}), []).append((t, cumulative.total))
        count_key = labels_of({**base, "__part": "count"})
        fam.samples.setdefault(count_key, []).append((t, float(cumulative.count)))

    def series(self, name: str, **match: str) -> list[tuple[float, float]]:
        """All points of the first series of ``name`` whose labels include ``match``."""
        fam = self.families.get(name)
        if fam is None:
            return []
        for labels, pts in fam.samples.items():
            d = dict(labels)
            if all(d.get(k) == v for k, v in match.items()):
                return pts
        return []

    def write_openmetrics(self, path: Path) -> int:
        """Write every sample as OpenMetrics text with timestamps; returns the number of samples."""
        n = 0
        with path.open("w") as out:
            for fam in sorted(self.families.values(), key=lambda f: f.name):
                out.write(f"# TYPE {fam.name} {fam.kind}\n")
                if fam.help:
                    out.write(f"# HELP {fam.name} {fam.help}\n")
                for labels, pts in sorted(fam.samples.items()):
                    d = dict(labels)
                    suffix = ""
                    if fam.kind == "counter":
                        suffix = "_total"
                    elif fam.kind == "histogram":
                        part = d.pop("__part", None)
                        suffix = f"_{part}" if part else "_bucket"
                    text = _format_labels(d)
                    for t, v in pts:
                        out.write(f"{fam.name}{suffix}{text} {_format_value(v)} {t:.3f}\n")
                        n += 1
            out.write("# EOF\n")
        return n


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

    def cumulative_buckets(self) -> list[tuple[str, int]]:
        out = []
        running = 0
        for edge, c in zip(self.edges, self.counts, strict=False):
            running += c
            out.append((_format_value(edge), running))
        out.append(("+Inf", self.count))
        return out


def _format_labels(d: Mapping[str, str]) -> str:
    if not d:
        return ""
    body = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(d.items()))
    return "{" + body + "}"


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _format_value(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if float(v).is_integer() and abs(v) < 1e15:
        return str(int(v))
    return repr(float(v))
