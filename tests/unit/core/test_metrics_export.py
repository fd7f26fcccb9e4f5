from simulator.metrics import Histogram, Recorder


def test_openmetrics_text_has_types_timestamps_and_eof(tmp_path):
    rec = Recorder()
    h = Histogram(edges=(0.1, 1.0))
    h.observe_many([0.05, 0.5, 3.0])
    rec.histogram("vllm:time_to_first_token_seconds", {"pod": "a-0", "namespace": "ns"}, 30.0, h)
    rec.counter("vllm:request_success", {"pod": "a-0"}, 30.0, 3)
    rec.gauge("DCGM_FI_DEV_GPU_UTIL", {"gpu": "0", "Hostname": 'n"1'}, 15.0, 87.5)
    path = tmp_path / "m.om.txt"
    assert rec.write_openmetrics(path) == 3 + 2 + 1 + 1
    text = path.read_text()
    assert text.endswith("# EOF\n")
    assert "# TYPE vllm:request_success counter\nvllm:request_success_total{pod=\"a-0\"} 3 30.000" in text
    assert 'vllm:time_to_first_token_seconds_bucket{le="0.1",namespace="ns",pod="a-0"} 1 30.000' in text
    assert 'le="+Inf"' in text and "_sum{" in text and "_count{" in text
    assert 'Hostname="n\\"1"' in text


def test_histogram_cumulative_counts():
    h = Histogram(edges=(1.0, 2.0))
    h.observe_many([0.5, 1.0, 1.5, 5.0])
    assert h.cumulative_buckets() == [("1.0", 2), ("2.0", 3), ("+Inf", 4)]
