"""The recorder formats its text in bulk at the end (numbers while recording); these tests pin that text
byte for byte to a line-at-a-time reference written here from the exposition rules, so a change in the
bulk formatting (values, stamps, order, grouping) fails them."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pytest
import simpy

from simulator.cluster import GpuPool
from simulator.inference.perf_model import PerfModel
from simulator.inference.service import InferenceService, ServiceSettings
from simulator.inference.traces import load_shape
from simulator.metrics import LATENCY_BUCKETS_S, Histogram, Recorder, read_openmetrics_strictly


class _Logged(Recorder):
    """A recorder that also keeps every call, for the reference formatting below."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.registered: dict[int, tuple[str, str, dict[str, str], tuple[float, ...]]] = {}
        self.calls: list[tuple[int, float, list[float]]] = []

    def series_id(self, name: str, kind: str, labels: Mapping[str, str], help: str = "",
                  edges: tuple[float, ...] = LATENCY_BUCKETS_S) -> int:
        sid = super().series_id(name, kind, labels, help, edges)
        self.registered.setdefault(sid, (name, kind, dict(labels), tuple(edges)))
        return sid

    def put(self, sid: int, t: float, value: float) -> None:
        self.calls.append((sid, t, [value]))
        super().put(sid, t, value)

    def put_many(self, sids: Sequence[int], t: float, values: Sequence[float]) -> None:
        self.calls.extend((sid, t, [value]) for sid, value in zip(sids, values, strict=True))
        super().put_many(sids, t, values)

    def put_histogram(self, sid: int, t: float, cumulative: Histogram) -> None:
        running, values = 0, []
        for c in cumulative.counts[:-1]:
            running += c
            values.append(running)
        self.calls.append((sid, t, [*values, cumulative.count, cumulative.count, cumulative.total]))
        super().put_histogram(sid, t, cumulative)


def _value(v: float) -> str:
    v = float(v)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)


def _labels(d: Mapping[str, str]) -> str:
    def esc(v: str) -> str:
        return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return "{" + ",".join(f'{k}="{esc(str(v))}"' for k, v in sorted(d.items())) + "}" if d else ""


def _reference(rec: _Logged) -> str:
    """One line per sample, formatted one at a time: family by name, series by registration, then time."""
    out = []
    names = sorted(rec.families)
    sampled = {rec.registered[sid][0] for sid, _, _ in rec.calls}
    for name in names:
        if name not in sampled:
            continue
        fam = rec.families[name]
        out.append(f"# TYPE {name} {fam.kind}\n")
        if fam.help:
            out.append(f"# HELP {name} {fam.help}\n")
        for sid in sorted(s for s, reg in rec.registered.items() if reg[0] == name):
            _, kind, labels, edges = rec.registered[sid]
            if kind == "histogram":
                les = [*(repr(float(e)) for e in edges), "+Inf"]
                prefixes = [*(f"{name}_bucket{_labels({**labels, 'le': le})}" for le in les),
                            f"{name}_count{_labels(labels)}", f"{name}_sum{_labels(labels)}"]
            else:
                prefixes = [f"{name}{'_total' if kind == 'counter' else ''}{_labels(labels)}"]
            for s, t, values in rec.calls:
                if s == sid:
                    out.extend(f"{p} {_value(v)} {t:.3f}\n" for p, v in zip(prefixes, values, strict=True))
    out.extend(f"# TYPE {name} {rec.families[name].kind}\n" for name in names if name not in sampled)
    out.append("# EOF\n")
    return "".join(out)


ODD_VALUES = [0.0, -0.0, 1.0, -3.0, 0.1, 1 / 3, 1e-7, 2.5e-300, 123456.789, 1e15 - 1, 1e15, -1e15, 1e16,
              2.0**60, 1e300, math.nan, math.inf, -math.inf, 87.5, 99.999]


def _scripted(rec: _Logged) -> None:
    """Gauges with odd values, counters, histograms of two widths in one family, a series that stops (a
    deleted pod), labels that need escaping (quotes, a percent sign, non-ASCII), a family never sampled."""
    rec.series_id("never_sampled", "gauge", {"pod": "x"}, "declared only")
    small = Histogram(edges=(0.5, 1.0, 2.0))
    big = Histogram()
    gpus = [rec.series_id("DCGM_FI_DEV_GPU_UTIL", "gauge", {"gpu": str(g), "Hostname": 'n"1', "pod": "a"})
            for g in range(4)]
    for step in range(40):
        t = 15.0 * step + (0.0004 if step % 7 == 0 else 0.0)
        small.observe_many([0.2, 1.5, 7.0][: step % 4])
        big.observe_many([0.003 * step, 0.9, 45.0][: step % 3])
        if step % 11 == 5:
            big.total = math.nan if step < 20 else math.inf
        rec.put_many(gpus, t, [ODD_VALUES[step % len(ODD_VALUES)]] * len(gpus))  # a pod's GPUs share a value
        rec.put_many(gpus[:2], t, [ODD_VALUES[(step + 5) % len(ODD_VALUES)], step])  # a second sample at t
        rec.gauge("kv_usage", {"pod": "b%d", "zone": "züri"}, t, ODD_VALUES[(3 * step) % len(ODD_VALUES)],
                  "a gauge with help")
        rec.counter("vllm:request_success", {"pod": "a"}, t, float(step * 3))
        rec.histogram("latency_seconds", {"pod": "a"}, t, small, "two widths")
        rec.histogram("latency_seconds", {"pod": "c"}, t, big)
        rec.histogram("latency_seconds", {"job": "j", "zone": 'a\\b"c'}, t, small)  # keys either side of le
        if step == 20:  # reading back mid-run (it reads the spool) must not disturb what follows
            assert len(rec.series("kv_usage", pod="b%d")) == 21
        if step < 10:  # pod d is deleted after 10 scrapes: its series stop
            rec.gauge("kv_usage", {"pod": "d"}, t, step / 7)
            rec.histogram("latency_seconds", {"pod": "d"}, t, small)


@pytest.mark.parametrize("spill_rows", [None, 64, 1 << 20])
def test_bulk_text_is_byte_identical_to_a_line_at_a_time_reference(tmp_path, spill_rows):
    rec = _Logged() if spill_rows is None else _Logged(spool=tmp_path / "spool", spill_rows=spill_rows)
    _scripted(rec)
    if spill_rows == 64:
        assert (tmp_path / "spool").stat().st_size > 0  # the numbers really went through the spool
    expected = _reference(rec)
    path = tmp_path / "m.om.txt"
    assert rec.write_openmetrics(path) == len(expected.splitlines()) - 1 - expected.count("\n#")
    assert path.read_bytes() == expected.encode()
    for needle in (" NaN ", " +Inf ", " -Inf ", " 1e+16 ", " 999999999999999 ", " 1.152921504606847e+18 ",
                   "_sum{pod=\"c\"} NaN", 'pod="b%d"'):
        assert needle in expected, needle
    # (not through the strict reader: a NaN histogram sum is formatted here on purpose, which it refuses)


def test_a_simulated_service_exports_the_reference_text(tmp_path):
    """A small recorded run (one of two pods deleted after 5 minutes) through the same reference."""
    rec = _Logged(spool=tmp_path / "spool", spill_rows=256)
    env = simpy.Environment()
    settings = ServiceSettings(initial={"replicas": 2, "gpus_per_replica": 4, "max_batch_size": 32})
    svc = InferenceService(env, GpuPool.uniform(2, 8), PerfModel.load("llama2-70b", "a100-80gb"),
                           load_shape("noisy", 3.0, duration_s=900.0, seed=4), settings, recorder=rec)

    def shrink():
        yield env.timeout(300.0)
        svc.apply("llm", {"replicas": 1}, "test: scale down")

    env.process(shrink())
    env.run(until=900.0)
    assert len(svc.replicas) == 1
    expected = _reference(rec)
    path = tmp_path / "m.om.txt"
    rec.write_openmetrics(path)
    assert path.read_bytes() == expected.encode()
    read_openmetrics_strictly(expected)


def test_points_read_back_what_the_file_says():
    rec = Recorder()
    for step, v in enumerate(ODD_VALUES):
        rec.gauge("g", {"pod": "a"}, 15.0 * step + 0.0004, v)
    pts = rec.series("g", pod="a")
    assert [t for t, _ in pts] == [15.0 * step for step in range(len(ODD_VALUES))]
    assert [repr(v) for _, v in pts] == [repr(float(_value(v))) for v in ODD_VALUES]
