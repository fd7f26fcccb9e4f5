"""The Prometheus adapter against a fake HTTP API: shared queries, joins, percentiles, escaping, failures."""

from __future__ import annotations

import math

import pytest
from operator_fakes import fake_prometheus, vector

from controller.policy import TargetRef
from controller.prometheus import (
    DEFAULT_QUERIES,
    PrometheusClient,
    PrometheusError,
    PrometheusSettings,
    Registration,
    SharedMetrics,
    escape_regex,
    escape_string,
    histogram_fraction,
    histogram_quantile,
    pod_regex,
)

INFERENCE_QUERIES = len({q.template for q in DEFAULT_QUERIES.values() if "inference" in q.kinds})  # distinct texts


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def deployment(ns: str, name: str) -> TargetRef:
    return TargetRef("Deployment", name, ns, "apps/v1")


def reg(target: TargetRef, interval_s: float = 10.0, overrides=None) -> Registration:
    return Registration(target, "inference", 60.0, interval_s, overrides or {})


# --- histogram_quantile: known answers ----------------------------------------------------------


def test_histogram_quantile_matches_prometheus_test_table():
    # prometheus/promql/promqltest/testdata/histograms.test, series start="positive": bucket
    # increments 5, 7, 11, 12 at le 0.1, 0.2, 1, +Inf; histogram_quantile(0.5, ...) is 0.15.
    buckets = [(0.1, 5.0), (0.2, 7.0), (1.0, 11.0), (math.inf, 12.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.15)
    # Rank in the first bucket interpolates from 0: 0.25 * 12 = 3 of 5 -> 0.06.
    assert histogram_quantile(0.25, buckets) == pytest.approx(0.06)
    # Rank in the +Inf bucket answers the largest finite bound.
    assert histogram_quantile(0.99, buckets) == 1.0
    assert histogram_quantile(1.5, buckets) == math.inf and histogram_quantile(-1, buckets) == -math.inf
    assert math.isnan(histogram_quantile(0.5, [(1.0, 0.0), (math.inf, 0.0)]))  # no observations
    assert math.isnan(histogram_quantile(0.5, [(1.0, 3.0)]))  # no +Inf bucket


def test_histogram_quantile_repairs_non_monotonic_counts():
    # Rates of buckets scraped at slightly different times can decrease; Prometheus takes the max.
    assert histogram_quantile(0.5, [(1.0, 4.0), (2.0, 3.0), (math.inf, 8.0)]) == pytest.approx(
        histogram_quantile(0.5, [(1.0, 4.0), (2.0, 4.0), (math.inf, 8.0)]))


def test_histogram_fraction_is_the_bucket_ratio_at_a_bound_and_interpolates_between():
    buckets = [(0.1, 5.0), (0.2, 7.0), (1.0, 11.0), (math.inf, 12.0)]
    assert histogram_fraction(0.2, buckets) == pytest.approx(7 / 12)  # bucket{le="0.2"} / count
    assert histogram_fraction(0.6, buckets) == pytest.approx(9 / 12)  # halfway from 7 to 11
    assert histogram_fraction(0.05, buckets) == pytest.approx(2.5 / 12)  # from 0 in the first bucket
    assert histogram_fraction(5.0, buckets) == pytest.approx(11 / 12)  # nothing known past 1.0
    assert histogram_fraction(histogram_quantile(0.5, buckets), buckets) == pytest.approx(0.5)
    assert math.isnan(histogram_fraction(1.0, [(1.0, 0.0), (math.inf, 0.0)]))
    assert math.isnan(histogram_fraction(1.0, [(1.0, 3.0)]))


def test_slo_attainment_is_derived_from_the_objectives_histogram_unless_a_query_is_given():
    with fake_prometheus(ttft_and_rate) as prom:
        shared = SharedMetrics(PrometheusClient(prom.url), clock=Clock())
        target = deployment("a", "web")
        shared.register("a/web", Registration(target, "inference", 60.0, 10.0, {}, slo=("ttft_p99_seconds", 0.5)))
        shared.register("a/plain", Registration(deployment("a", "plain"), "inference", 60.0, 10.0, {}))
        # a/web's pods sum to 9 of 20 requests per s under 0.5 s (see ttft_and_rate).
        assert shared.metrics_for("a/web").values["slo_attainment"] == pytest.approx(9 / 20)
        assert "slo_attainment" not in shared.metrics_for("a/plain").values  # no SLO stated: nothing made up
    mine = vector([({"namespace": "a", "pod": "web-5d8f7c9b4-aaaaa"}, 0.97)])
    with fake_prometheus(lambda q: mine if "my_attainment" in q else ttft_and_rate(q)) as prom:
        shared = SharedMetrics(PrometheusClient(prom.url), clock=Clock())
        override = {"slo_attainment": "my_attainment{{{selector}}}"}
        shared.register("a/web", Registration(target, "inference", 60.0, 10.0, override, slo=("ttft_p99_seconds", 0.5)))
        assert shared.metrics_for("a/web").values["slo_attainment"] == pytest.approx(0.97)  # the user's query wins


# --- escaping -----------------------------------------------------------------------------------


def test_escaping_round_trips_through_regex_and_string_literals():
    nasty = 'a.b"c\\d|e'
    assert escape_string(nasty) == 'a.b\\"c\\\\d|e'
    assert escape_regex("a.b|c") == "a\\.b\\|c"
    import re

    # RE2 and Python agree on these escapes: the escaped regex matches only the literal.
    assert re.fullmatch(escape_regex("a.b|c"), "a.b|c") and not re.fullmatch(escape_regex("a.b|c"), "aXb")


@pytest.mark.parametrize(
    ("kind", "pod", "matches"),
    [
        ("Deployment", "llama-7c9f8d6b5-x2x9q", True),
        ("Deployment", "llama-big-7c9f8d6b5-x2x9q", False),  # another Deployment's pod
        ("Deployment", "llama-0", False),
        ("StatefulSet", "llama-12", True),
        ("StatefulSet", "llama-big-0", False),
        ("Job", "llama-x2x9q", True),
        ("Job", "llama-3-x2x9q", True),  # indexed Job
    ],
)
def test_pods_join_to_their_workload_only(kind, pod, matches):
    import re

    assert (re.fullmatch(pod_regex(TargetRef(kind, "llama", "ml", "v1")), pod) is not None) is matches


# --- the shared cache ---------------------------------------------------------------------------


def ttft_and_rate(query: str) -> tuple[int, dict]:
    """Two workloads in two namespaces, two pods each; other metrics empty."""
    if "time_to_first_token" in query:
        series = []
        for ns, pod, counts in (
            ("a", "web-5d8f7c9b4-aaaaa", (90, 100, 100)),   # fast pod
            ("a", "web-5d8f7c9b4-bbbbb", (0, 50, 100)),     # slow pod
            ("b", "web-6f7d8c9b5-ccccc", (10, 10, 10)),
            ("b", "other-6f7d8c9b5-ddddd", (0, 0, 99)),     # not a pod of b/web
        ):
            for le, c in zip(("0.5", "1.0", "+Inf"), counts, strict=True):
                series.append(({"namespace": ns, "pod": pod, "le": le}, c / 10))
        return vector(series)
    if "request_success" in query:
        return vector([({"namespace": "a", "pod": "web-5d8f7c9b4-aaaaa"}, 3.0),
                       ({"namespace": "a", "pod": "web-5d8f7c9b4-bbbbb"}, 4.0),
                       ({"namespace": "b", "pod": "web-6f7d8c9b5-ccccc"}, 1.0)])
    if "kv_cache" in query:
        return vector([({"namespace": "a", "pod": "web-5d8f7c9b4-aaaaa"}, math.nan)])
    return vector([])


def test_one_query_per_metric_for_all_workloads_and_correct_join():
    with fake_prometheus(ttft_and_rate) as prom:
        shared = SharedMetrics(PrometheusClient(prom.url), clock=Clock())
        shared.register("a/web", reg(deployment("a", "web")))
        shared.register("b/web", reg(deployment("b", "web")))
        for i in range(40):  # many more workloads: the number of queries must not grow
            shared.register(f"c/w{i}", reg(deployment(f"c{i % 3}", f"w{i}")))
        a = shared.metrics_for("a/web")
        b = shared.metrics_for("b/web")
        for i in range(40):
            shared.metrics_for(f"c/w{i}")
        assert len(prom.queries) == INFERENCE_QUERIES
        ttft_query = next(q for q in prom.queries if "time_to_first_token" in q)
        assert 'namespace=~"a|b|c0|c1|c2"' in ttft_query and "[60s]" in ttft_query
    # a/web: buckets summed over both pods (9+0, 10+5, 10+10 per s) before the quantile.
    summed = histogram_quantile(0.99, [(0.5, 9.0), (1.0, 15.0), (math.inf, 20.0)])
    assert a.values["ttft_p99_seconds"] == pytest.approx(summed)
    per_pod_mean = (histogram_quantile(0.99, [(0.5, 9), (1.0, 10), (math.inf, 10)])
                    + histogram_quantile(0.99, [(0.5, 0), (1.0, 5), (math.inf, 10)])) / 2
    assert a.values["ttft_p99_seconds"] != pytest.approx(per_pod_mean)
    assert a.values["request_rate_per_second"] == pytest.approx(7.0)
    assert math.isnan(a.values["kv_cache_usage"])  # NaN reaches the loop, which freezes on it
    # b/web sees its own pod only, never b/other's.
    assert b.values["ttft_p99_seconds"] == pytest.approx(0.5 * 0.99)  # rank 0.99 of the first bucket
    assert b.values["request_rate_per_second"] == 1.0
    assert a.time_s == 1000.0


def test_cache_is_shared_within_an_interval_and_refreshed_after():
    clock = Clock()
    with fake_prometheus(ttft_and_rate) as prom:
        shared = SharedMetrics(PrometheusClient(prom.url), PrometheusSettings(cache_fraction=0.9), clock)
        shared.register("a/web", reg(deployment("a", "web"), interval_s=10))
        shared.metrics_for("a/web")
        clock.t += 8.9  # within 0.9 x 10 s
        shared.metrics_for("a/web")
        assert len(prom.queries) == INFERENCE_QUERIES
        clock.t += 0.2
        assert shared.metrics_for("a/web").time_s == clock.t
        assert len(prom.queries) == 2 * INFERENCE_QUERIES


def test_overrides_per_workload_are_escaped_and_shared_ones_are_grouped():
    answers = {"custom_ttft": 0.42}

    def responder(q: str):
        if "tgi_request_queue_duration" in q:
            return vector([({"namespace": "we\"ird", "pod": "x"}, answers["custom_ttft"])])
        if "triton_queue" in q:
            return vector([({"namespace": "a", "pod": "web-5d8f7c9b4-aaaaa"}, 2.0),
                           ({"namespace": "a", "pod": "web-5d8f7c9b4-bbbbb"}, 3.0)])
        return vector([])

    weird = TargetRef("Deployment", "tgi.v2", 'we"ird', "apps/v1")
    per = 'max(tgi_request_queue_duration{{namespace="{namespace}", pod=~"{pod_regex}"}})'
    shared_q = "sum by (namespace, pod) (triton_queue{{{selector}}})"
    with fake_prometheus(responder) as prom:
        shared = SharedMetrics(PrometheusClient(prom.url), clock=Clock())
        shared.register("w/tgi", reg(weird, overrides={"ttft_p99_seconds": per}))
        shared.register("a/web", reg(deployment("a", "web"), overrides={"queue_length": shared_q}))
        shared.register("b/web", reg(deployment("b", "web"), overrides={"queue_length": shared_q}))
        tgi = shared.metrics_for("w/tgi")
        web = shared.metrics_for("a/web")
        sent = list(prom.queries)
    per_sent = [q for q in sent if "tgi_request" in q]
    assert per_sent == ['max(tgi_request_queue_duration{namespace="we\\"ird", '
                        'pod=~"tgi\\\\.v2-[a-z0-9]{1,10}-[a-z0-9]{5}"})']
    assert tgi.values["ttft_p99_seconds"] == 0.42
    triton = [q for q in sent if "triton_queue" in q]
    assert triton == ['sum by (namespace, pod) (triton_queue{namespace=~"a|b"})']
    assert web.values["queue_length"] == 5.0
    # The default queue_length query is not sent for anyone: all of its users overrode it.
    assert not any("num_requests_waiting" in q for q in sent if 'namespace=~"a|b"' in q)


def test_prometheus_down_freezes_everyone_then_recovers():
    clock = Clock()
    with fake_prometheus(ttft_and_rate) as prom:
        url = prom.url
    shared = SharedMetrics(PrometheusClient(url, PrometheusSettings(timeout_s=0.5)), clock=clock)
    shared.register("a/web", reg(deployment("a", "web")))
    assert shared.metrics_for("a/web") is None
    assert "unreachable" in (shared.last_error or "")
    with fake_prometheus(ttft_and_rate) as prom:
        shared.client = PrometheusClient(prom.url)
        clock.t += 10
        got = shared.metrics_for("a/web")
    assert got is not None and shared.last_error is None
    assert got.values["request_rate_per_second"] == 7.0


def test_a_refused_query_is_a_problem_for_that_metric_only():
    def responder(q: str):
        if "request_success" in q:
            return 400, {"status": "error", "errorType": "bad_data", "error": "parse error at char 3"}
        return ttft_and_rate(q)

    with fake_prometheus(responder) as prom:
        shared = SharedMetrics(PrometheusClient(prom.url), clock=Clock())
        shared.register("a/web", reg(deployment("a", "web")))
        got = shared.metrics_for("a/web")
    assert "request_rate_per_second" not in got.values
    assert "ttft_p99_seconds" in got.values
    assert any("parse error at char 3" in p and p.startswith("request_rate_per_second") for p in got.problems)


def test_client_reports_non_json_and_scalars():
    with fake_prometheus(lambda q: (200, {"status": "success",
                                          "data": {"resultType": "scalar", "result": [5, "2.5"]}})) as prom:
        (s,) = PrometheusClient(prom.url).query("2.5")
        assert s.value == 2.5 and s.time_s == 5
    with fake_prometheus(lambda q: (200, {"status": "success",
                                          "data": {"resultType": "matrix", "result": []}})) as prom, \
            pytest.raises(PrometheusError, match="instant vector"):
        PrometheusClient(prom.url).query("x[1m]")


def test_training_series_join_by_pod_or_exported_job():
    def responder(q: str):
        if "throughput" in q:
            return vector([({"namespace": "ml", "exported_job": "bert"}, 100.0),
                           ({"namespace": "ml", "exported_job": "bert-large"}, 7.0)])
        return vector([])

    with fake_prometheus(responder) as prom:
        shared = SharedMetrics(PrometheusClient(prom.url), clock=Clock())
        shared.register("ml/bert", Registration(TargetRef("Job", "bert", "ml", "batch/v1"), "training",
                                                60.0, 10.0, {}))
        got = shared.metrics_for("ml/bert")
        assert not any("vllm:" in q for q in prom.queries)  # training workloads skip serving metrics
    assert got.values["throughput_samples_per_second"] == 100.0


# --- the burst: request_rate_peak_per_second --------------------------------------------------------


def test_the_burst_is_the_largest_total_over_the_workloads_pods_at_one_time():
    """The simulator's burst is the largest 10 s rate of the service's arrivals; the operator's is the
    largest short-window rate summed over the workload's pods at each point of a subquery. Two pods
    peaking at different times must not add up to a peak that never happened (the sum of per-pod maxima
    would be 9 here, the workload's peak is 7), and another workload's pods never count."""
    def matrix(series):
        result = [{"metric": labels, "values": [[t, repr(v)] for t, v in points]} for labels, points in series]
        return 200, {"status": "success", "data": {"resultType": "matrix", "result": result}}

    def responder(q: str):
        if q.startswith("sum by (namespace, pod) (rate(vllm:request_success_total") and "[5s]))[10s:2500ms]" in q:
            return matrix([({"namespace": "a", "pod": "web-5d8f7c9b4-aaaaa"}, [(990, 2.0), (995, 5.0), (1000, 1.0)]),
                           ({"namespace": "a", "pod": "web-5d8f7c9b4-bbbbb"}, [(990, 4.0), (995, 2.0), (1000, 4.0)]),
                           ({"namespace": "a", "pod": "api-7c9b4d8f5-ccccc"}, [(995, 50.0)])])
        return vector([])

    with fake_prometheus(responder) as prom:
        shared = SharedMetrics(PrometheusClient(prom.url), clock=Clock())
        shared.register("a/web", Registration(deployment("a", "web"), "inference", 10.0, 10.0, {}))
        got = shared.metrics_for("a/web")
    assert got.values["request_rate_peak_per_second"] == 7.0, got
    assert not got.problems


def test_the_burst_window_is_ten_seconds_or_half_a_short_rate_window():
    from controller.prometheus import render_shared

    template = DEFAULT_QUERIES["request_rate_peak_per_second"].template
    assert render_shared(template, ["a"], 60.0).endswith('[10s]))[60s:5s]')
    assert render_shared(template, ["a"], 4.0).endswith('[2s]))[4s:1s]')


def test_a_range_vector_is_refused_for_every_other_metric():
    """Only the burst's query may answer with a matrix: an override for an instant metric that returns a
    range vector would otherwise be summed over every point of it, silently."""
    def responder(q: str):
        return 200, {"status": "success", "data": {"resultType": "matrix", "result": [
            {"metric": {"namespace": "a", "pod": "web-5d8f7c9b4-aaaaa"}, "values": [[990, "1"], [1000, "2"]]}]}}

    with fake_prometheus(responder) as prom:
        shared = SharedMetrics(PrometheusClient(prom.url), clock=Clock())
        shared.register("a/web", reg(deployment("a", "web")))
        got = shared.metrics_for("a/web")
    assert "request_rate_per_second" not in got.values and "queue_length" not in got.values
    assert got.values.get("request_rate_peak_per_second") == 2.0
    assert any(p.startswith("request_rate_per_second") and "instant vector" in p for p in got.problems)


def test_the_bursts_subquery_asks_for_at_most_sixty_points_whatever_the_window():
    """A tenant's spec.metrics.windowSeconds may be a day: 5 s points over it would be 17,280 per pod in
    every refresh of the shared query, each parsed by the operator."""
    from controller.prometheus import BURST_POINTS, burst_fields

    for window in (1.0, 4.0, 60.0, 600.0, 3600.0, 86_400.0):
        f = burst_fields(window)
        step = float(f["burst_step"].removesuffix("ms")) / 1000 if f["burst_step"].endswith("ms") \
            else float(f["burst_step"].removesuffix("s"))
        assert window / step <= BURST_POINTS, (window, f)
    assert burst_fields(86_400.0) == {"burst_window": "10s", "burst_step": "1440s"}
