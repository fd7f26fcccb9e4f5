"""The simulated-metrics export at day scale: series stop with their pod, samples stream to disk instead of
memory, the file passes a strict OpenMetrics parser, and ``--metrics/--no-metrics`` decides the export."""

from __future__ import annotations

import tracemalloc

import pytest
import simpy
from click.testing import CliRunner

from controller.cli import main
from simulator.cluster import GpuPool
from simulator.inference.perf_model import PerfModel
from simulator.inference.service import InferenceService, ServiceSettings
from simulator.inference.traces import load_shape
from simulator.metrics import Histogram, Recorder, read_openmetrics_strictly

PERF = PerfModel.load("llama2-70b", "a100-80gb")


def _service_with_scale_down(rec: Recorder) -> tuple[simpy.Environment, InferenceService]:
    trace = load_shape("noisy", 3.0, duration_s=900.0, seed=4)
    env = simpy.Environment()
    settings = ServiceSettings(initial={"replicas": 2, "gpus_per_replica": 4, "max_batch_size": 32})
    svc = InferenceService(env, GpuPool.uniform(2, 8), PERF, trace, settings, recorder=rec)

    def shrink():
        yield env.timeout(300.0)
        svc.apply("llm", {"replicas": 1}, "test: scale down")

    env.process(shrink())
    env.run(until=900.0)
    return env, svc


def test_a_deleted_pods_series_stop_and_the_file_passes_a_strict_parser(tmp_path):
    rec = Recorder(spool=tmp_path / "spool")
    _env, svc = _service_with_scale_down(rec)
    gone = {f"llm-{i}" for i in (0, 1)} - {svc.pod_name(r) for r in svc.replicas}
    assert len(gone) == 1
    path = tmp_path / "m.om.txt"
    rec.write_openmetrics(path)
    assert not (tmp_path / "spool").exists()
    families = read_openmetrics_strictly(path.read_text())
    for name in ("vllm:time_to_first_token_seconds", "vllm:request_success", "DCGM_FI_DEV_GPU_UTIL",
                 "vllm:num_requests_running"):
        times = [float(s.timestamp) for s in families[name] if s.labels.get("pod") in gone]
        assert times and max(times) <= 300.0, f"{name} kept a series of the deleted pod until {max(times)}"
        assert any(float(s.timestamp) > 800 for s in families[name]), name  # the live pod goes on


def test_histograms_have_ordered_buckets_and_canonical_le(tmp_path):
    rec = Recorder()
    h = Histogram(edges=(0.5, 1.0, 2.0))
    for t in (15.0, 30.0, 45.0):
        h.observe_many([0.2, 1.5])
        rec.histogram("lat_seconds", {"pod": "a"}, t, h)
        rec.gauge("up", {"pod": "a"}, t, 1.0)
    path = tmp_path / "m.om.txt"
    assert rec.write_openmetrics(path) == 3 * (4 + 2) + 3
    text = path.read_text()
    assert 'le="1.0"' in text  # Go float formatting, as OpenMetrics requires
    samples = read_openmetrics_strictly(text)["lat_seconds"]
    counts = [s.value for s in samples if s.name == "lat_seconds_count"]
    assert counts == [2, 4, 6]


@pytest.mark.parametrize("text, why", [
    ('# TYPE up gauge\nup{pod="a"} 1 15.000\nup{pod="b"} 1 15.000\nup{pod="a"} 1 30.000\n# EOF\n', "grouping"),
    ('# TYPE h histogram\nh_bucket{le="1.0",pod="a"} 1 15.000\nh_bucket{le="+Inf",pod="a"} 1 15.000\n'
     'h_count{pod="a"} 1 15.000\nh_sum{pod="a"} 0.5 15.000\nh_bucket{le="1.0",pod="b"} 1 15.000\n'
     'h_bucket{le="1.0",pod="a"} 1 30.000\n# EOF\n', "grouping"),
    ('# TYPE up gauge\nup{pod="a"} 1 15.000\n', "EOF"),
])
def test_the_strict_reader_rejects_what_the_old_export_wrote(text, why):
    """Samples of one series interleaved with another's (what the exporter wrote before) are refused."""
    with pytest.raises(ValueError, match=why):
        read_openmetrics_strictly(text)


def test_streaming_recorder_memory_does_not_grow_with_samples(tmp_path):
    """A day of scrapes: the recorder keeps numbers, not text, and past ``spill_rows`` they go to the spool
    file, so what stays in memory is bounded however long the run (the text is made at the end)."""
    rec = Recorder(spool=tmp_path / "spool", spill_rows=4096)
    h = Histogram()
    h.observe_many([0.1, 0.7, 3.0])
    labels = [{"namespace": "ns", "pod": f"p-{i}"} for i in range(10)]
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for step in range(600):
        for lb in labels:
            rec.histogram("vllm:e2e_request_latency_seconds", lb, 15.0 * step, h)
            rec.gauge("vllm:num_requests_running", lb, 15.0 * step, 3.0)
    grown = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    spooled = (tmp_path / "spool").stat().st_size
    assert spooled > 1_000_000  # the numbers of 6,000 histogram points and 6,000 samples went to disk ...
    path = tmp_path / "m.om.txt"
    rec.write_openmetrics(path)
    assert not (tmp_path / "spool").exists()
    text = path.stat().st_size
    assert text > 10_000_000  # ... for about 12 MB of text ...
    assert grown < 0.05 * text, (grown, text)  # ... and a few hundred kB stayed in memory
    assert float(read_openmetrics_strictly(path.read_text())["vllm:num_requests_running"][-1].timestamp) == 15.0 * 599


LONG = """
name: long-and-quiet
description: five hours of a trickle of requests
seed: 1
control_interval_s: 300
cluster: {nodes: 1, gpus_per_node: 8}
inference:
  - name: svc
    trace: {kind: load-shape, shape: noisy, mean_rate_per_s: 0.02, duration_s: 18000}
    slo: {ttft_seconds: 10.0, attainment: 0.9}
    knobs: {replicas: {min: 1, max: 1}, gpus_per_replica: [8], max_batch_size: {min: 64, max: 64}}
    initial: {replicas: 1, gpus_per_replica: 8}
policies: [{name: static}]
"""


def test_metrics_default_off_beyond_four_hours_and_the_flags_decide(tmp_path):
    path = tmp_path / "long.yaml"
    path.write_text(LONG)
    runner = CliRunner()
    res = runner.invoke(main, ["sim", str(path), "--out", str(tmp_path / "auto"), "-q"])
    assert res.exit_code == 0, res.output
    assert not list((tmp_path / "auto").glob("metrics/*.om.txt"))
    assert "--metrics" in (tmp_path / "auto" / "summary.md").read_text()
    res = runner.invoke(main, ["sim", str(path), "--out", str(tmp_path / "on"), "-q", "--metrics"])
    assert res.exit_code == 0, res.output
    files = list((tmp_path / "on").glob("metrics/*.om.txt"))
    assert [f.name for f in files] == ["static.om.txt"] and not list((tmp_path / "on").glob("metrics/.*"))
    read_openmetrics_strictly(files[0].read_text())
    assert "--no-metrics" in runner.invoke(main, ["sim", "--help"]).output
