"""The Prometheus adapter: PromQL over the HTTP API, one query per metric per interval for all workloads.

A cluster with 1,000 managed workloads must not send 1,000 x 10 queries every interval. So every
default query selects *all* managed namespaces at once and keeps per-pod series
(``sum by (namespace, pod, ...)``); :class:`SharedMetrics` runs each query once per refresh and
splits the answer per workload in Python, joining series to workloads by namespace and pod name
(the names the workload controllers give their pods). Latency percentiles are computed *after*
summing the per-pod histogram buckets of a workload, as Prometheus' ``histogram_quantile`` would on
``sum by (le)``: averaging per-pod percentiles would be wrong.

Per-object timers call :meth:`SharedMetrics.metrics_for`; the first call in an interval refreshes
the cache (under a lock), the others read it.

Query overrides (``spec.metrics.queries``) are templates. ``{selector}`` and ``{window}`` keep a
query shared; ``{namespace}``, ``{name}`` or ``{pod_regex}`` make it per workload (their values are
escaped for PromQL string literals and regexes). See docs/operator.md.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from controller.policy import TargetRef
from controller.promql_template import TemplateError, check_template


@dataclass(frozen=True)
class PrometheusSettings:
    timeout_s: float = 5.0
    """Per HTTP request. Prometheus' own default query timeout is 2 min; a control loop cannot wait
    that long, and a query over one interval's data answers in milliseconds when healthy."""

    cache_fraction: float = 0.9
    """The shared result is reused for 0.9 of the shortest control interval, so each query runs at
    most once per interval while every timer still sees data younger than its own interval."""

    min_cache_s: float = 0.5
    """Floor of the cache lifetime: never hammer Prometheus more than twice a second."""

    quantile: float = 0.99
    """The p99 of ``*_p99_seconds`` metrics (learners.types.METRICS)."""


class PrometheusError(RuntimeError):
    """Prometheus could not be reached or refused a query; the message says which and why."""


@dataclass(frozen=True)
class Sample:
    labels: Mapping[str, str]
    value: float
    time_s: float


class PrometheusClient:
    """Instant queries over ``/api/v1/query`` with a hard timeout.

    No retries: the next interval is the retry, and a stuck query must not delay every timer.
    """

    def __init__(self, url: str, settings: PrometheusSettings | None = None) -> None:
        self.url = url.rstrip("/")
        self.settings = settings or PrometheusSettings()
        self.queries_sent = 0

    def query(self, promql: str, at: float | None = None, *, matrix: bool = False) -> list[Sample]:
        """The samples of an instant query at ``at``. ``matrix``: a range-vector answer (a subquery) is
        accepted too, one sample per point with the point's time; otherwise it is refused."""
        params = {"query": promql, "timeout": f"{round(self.settings.timeout_s * 1000)}ms"}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = urllib.parse.urlencode(params).encode()
        req = urllib.request.Request(f"{self.url}/api/v1/query", data=data, method="POST",
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.queries_sent += 1
        try:
            with urllib.request.urlopen(req, timeout=self.settings.timeout_s) as resp:
                payload = json.loads(resp.read())
        except urllib.error.HTTPError as err:
            try:
                detail = json.loads(err.read()).get("error", "")
            except (ValueError, OSError):
                detail = ""
            raise PrometheusError(f"Prometheus refused the query ({err.code}): {detail or err.reason}; "
                                  f"query: {promql}") from err
        except (urllib.error.URLError, OSError, TimeoutError) as err:
            raise PrometheusError(f"Prometheus at {self.url} unreachable: {err}") from err
        except ValueError as err:
            raise PrometheusError(f"Prometheus at {self.url} answered something that is not JSON") from err
        if payload.get("status") != "success":
            raise PrometheusError(f"Prometheus query failed: {payload.get('error', payload)}; "
                                  f"query: {promql}")
        return parse_result(payload.get("data", {}), matrix=matrix)


def parse_result(data: Mapping, *, matrix: bool = False) -> list[Sample]:
    """Instant-vector or scalar results as samples; values are floats ("NaN", "+Inf" included). With
    ``matrix``, a range vector's points too, each a sample at its own time."""
    kind = data.get("resultType")
    result = data.get("result", [])
    if kind == "matrix" and matrix:
        return [Sample(r.get("metric", {}), float(v), float(t)) for r in result for t, v in r.get("values", [])]
    if kind == "vector":
        # The label dicts are fresh from json.loads: no copy (25,000 of them a refresh at 1,000 workloads).
        return [Sample(r.get("metric", {}), float(r["value"][1]), float(r["value"][0])) for r in result]
    if kind == "scalar":
        return [Sample({}, float(result[1]), float(result[0]))]
    raise PrometheusError(f"expected an instant vector, got a {kind}")


# --- escaping ---------------------------------------------------------------------------------------


def escape_string(value: str) -> str:
    """A PromQL double-quoted string literal's body (Go string-literal escapes)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


_RE2_META = re.compile(r"([\\.+*?()|\[\]{}^$])")


def escape_regex(value: str) -> str:
    """Quote RE2 metacharacters, for use inside a regex matcher (then also :func:`escape_string` it)."""
    return _RE2_META.sub(r"\\\1", value)


def namespace_selector(namespaces: Iterable[str]) -> str:
    """``namespace=~"a|b"``: every managed namespace in one matcher (Prometheus anchors regexes)."""
    alts = "|".join(escape_regex(n) for n in sorted(set(namespaces)))
    return f'namespace=~"{escape_string(alts)}"'


def pod_regex(target: TargetRef) -> str:
    """Names the workload controllers give a workload's pods (RE2, anchored by Prometheus).

    Deployment: ``<name>-<pod-template-hash>-<5 chars>``; StatefulSet: ``<name>-<ordinal>``; Job:
    ``<name>-<5 chars>`` or, for indexed Jobs, ``<name>-<index>-<5 chars>`` (the generateName
    suffix is 5 characters from k8s.io/apiserver's names.SimpleNameGenerator); Kubeflow PyTorchJob:
    ``<name>-master-<i>`` and ``<name>-worker-<i>`` (the training operator's pod names).
    """
    base = escape_regex(target.name)
    if target.kind == "PyTorchJob":
        return f"{base}-(master|worker)-[0-9]+"
    if target.kind == "Deployment":
        return f"{base}-[a-z0-9]{{1,10}}-[a-z0-9]{{5}}"
    if target.kind == "StatefulSet":
        return f"{base}-[0-9]+"
    return f"{base}-([0-9]+-)?[a-z0-9]{{5}}"


# --- queries --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricQuery:
    """How one loop metric comes out of Prometheus.

    ``reduce`` combines a workload's per-pod values: ``sum`` (rates, queues), ``mean`` (utilisation),
    ``max`` (memory peak), ``quantile`` (sum the pods' buckets, then take the p99) or ``peak`` (a
    subquery's points: sum the pods' values at each time, then take the largest sum).
    """

    metric: str
    template: str
    reduce: str
    kinds: tuple[str, ...] = ("inference",)


def _hist(name: str) -> str:
    return f"sum by (namespace, pod, le) (rate({name}_bucket{{{{{{selector}}}}}}[{{window}}]))"


DEFAULT_QUERIES: dict[str, MetricQuery] = {
    q.metric: q
    for q in (
        MetricQuery("ttft_p99_seconds", _hist("vllm:time_to_first_token_seconds"), "quantile"),
        MetricQuery("tbt_p99_seconds", _hist("vllm:time_per_output_token_seconds"), "quantile"),
        MetricQuery("e2e_p99_seconds", _hist("vllm:e2e_request_latency_seconds"), "quantile"),
        MetricQuery("request_rate_per_second",
                    "sum by (namespace, pod) (rate(vllm:request_success_total{{{selector}}}[{window}]))",
                    "sum"),
        # The burst: the largest short-window rate within the window, summed over the workload's pods
        # at each point (simulator/inference/service.py reports the largest 10 s arrival rate).
        MetricQuery("request_rate_peak_per_second",
                    "sum by (namespace, pod) (rate(vllm:request_success_total{{{selector}}}[{burst_window}]))"
                    "[{window}:{burst_step}]",
                    "peak"),
        MetricQuery("queue_length",
                    "sum by (namespace, pod) (vllm:num_requests_waiting{{{selector}}})", "sum"),
        MetricQuery("concurrency_per_replica",
                    "sum by (namespace, pod) (vllm:num_requests_running{{{selector}}})", "mean"),
        MetricQuery("requests_running",
                    "sum by (namespace, pod) (vllm:num_requests_running{{{selector}}})", "sum"),
        MetricQuery("prompt_tokens_per_second",
                    "sum by (namespace, pod) (rate(vllm:prompt_tokens_total{{{selector}}}[{window}]))", "sum"),
        MetricQuery("kv_cache_usage",
                    "avg by (namespace, pod) (vllm:kv_cache_usage_perc{{{selector}}})", "mean"),
        MetricQuery("gpu_utilization",
                    "avg by (namespace, pod) (DCGM_FI_DEV_GPU_UTIL{{{selector}}}) / 100", "mean",
                    ("inference", "training")),
        MetricQuery("memory_bytes_peak",
                    "max by (namespace, pod) "
                    '(container_memory_working_set_bytes{{{selector}, container!=""}})',
                    "max", ("inference", "training")),
        # The training contract (docs/operator.md): the job's pods export these gauges.
        MetricQuery("throughput_samples_per_second",
                    "sum by (namespace, pod, job, exported_job) "
                    "(autocm_training_throughput_samples_per_second{{{selector}}})",
                    "sum", ("training",)),
        MetricQuery("goodput_samples_per_second",
                    "sum by (namespace, pod, job, exported_job) "
                    "(autocm_training_goodput_samples_per_second{{{selector}}})",
                    "sum", ("training",)),
    )
}
"""Defaults target exactly the names simulator/metrics.py exports (DCGM, vLLM, autocm_training_*)."""

PER_WORKLOAD_FIELDS = ("{namespace}", "{name}", "{pod_regex}")


def format_window(seconds: float) -> str:
    return f"{round(seconds * 1000)}ms" if seconds != int(seconds) else f"{int(seconds)}s"


BURST_WINDOW_S = 10.0
"""The short window of ``request_rate_peak_per_second``: the simulator's (its largest 10 s rate)."""
BURST_POINTS = 60
"""The most points the burst's subquery asks for per series: a policy may set a window of a day, and 5 s
points over a day would be 17,280 per pod in every refresh of the shared query, parsed in the operator."""


def burst_fields(window_s: float) -> dict[str, str]:
    """``{burst_window}`` (10 s, or half the rate window when that is shorter, so there are at least two
    short windows to compare) and ``{burst_step}`` (half of it: the subquery's resolution, coarser when the
    window would need more than :data:`BURST_POINTS` points; the peak is then the largest of those samples).
    A short window needs two scrapes within it: with a scrape interval above 5 s the default query returns
    nothing and slo-rl's burst feature is 0; override the metric's query with a longer ``[...]`` then
    (docs/operator.md)."""
    burst = min(BURST_WINDOW_S, window_s / 2)
    step = max(burst / 2, math.ceil(window_s / BURST_POINTS))
    return {"burst_window": format_window(burst), "burst_step": format_window(step)}


def render_shared(template: str, namespaces: Iterable[str], window_s: float) -> str:
    return template.format(selector=namespace_selector(namespaces), window=format_window(window_s),
                           **burst_fields(window_s))


def render_for(template: str, target: TargetRef, window_s: float) -> str:
    """A per-workload template; every substituted value is escaped."""
    return template.format(
        selector=f'namespace="{escape_string(target.namespace)}"',
        window=format_window(window_s),
        **burst_fields(window_s),
        namespace=escape_string(target.namespace),
        name=escape_string(target.name),
        pod_regex=escape_string(pod_regex(target)),
    )


def _monotonic(buckets: Sequence[tuple[float, float]]) -> tuple[list[tuple[float, float]], list[float]] | None:
    """Buckets sorted by bound and their counts made monotonic (rates of buckets scraped at slightly
    different times can decrease; Prometheus takes the running max); None without a +Inf bucket."""
    if not buckets:
        return None
    ordered = sorted(buckets)
    if not math.isinf(ordered[-1][0]):
        return None
    counts, running = [], 0.0
    for _, c in ordered:
        running = max(running, c)
        counts.append(running)
    return ordered, counts


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float:
    """Prometheus' ``histogram_quantile`` on (upper bound, cumulative count) pairs.

    Same rules as promql/quantile.go (bucketQuantile): NaN without observations; counts made
    monotonic; the answer in the +Inf bucket is the largest finite bound; linear interpolation
    inside a bucket, from 0 for the first bucket when its bound is positive.
    """
    if not buckets or math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    cumulative = _monotonic(buckets)
    if cumulative is None:
        return math.nan
    ordered, counts = cumulative
    if len(ordered) < 2 or counts[-1] == 0:
        return math.nan
    rank = q * counts[-1]
    i = next(k for k, c in enumerate(counts) if c >= rank)
    if i == len(ordered) - 1:
        return ordered[-2][0]
    if i == 0 and ordered[0][0] <= 0:
        return ordered[0][0]
    start = 0.0 if i == 0 else ordered[i - 1][0]
    below = 0.0 if i == 0 else counts[i - 1]
    end, count = ordered[i][0], counts[i] - below
    if count == 0:
        return end
    return start + (end - start) * ((rank - below) / count)


def histogram_fraction(upper: float, buckets: Sequence[tuple[float, float]]) -> float:
    """The share of observations at or under ``upper`` from (upper bound, cumulative count) pairs.

    Classic buckets only say how many observations fell under each bound, so inside the bucket that
    holds ``upper`` the count is interpolated linearly, as :func:`histogram_quantile` does for a rank
    (and as ``bucket{le="5.0"} / count`` would give exactly when ``upper`` is a bound). NaN without
    observations or without the +Inf bucket.
    """
    cumulative = _monotonic(buckets) if not math.isnan(upper) else None
    if cumulative is None:
        return math.nan
    ordered, counts = cumulative
    total = counts[-1]
    if total <= 0:
        return math.nan
    below_bound, below_count = 0.0, 0.0
    for (bound, _), count in zip(ordered, counts, strict=True):
        if upper < bound:
            if math.isinf(bound):  # past the largest finite bound: nothing more is known
                return below_count / total
            share = (upper - below_bound) / (bound - below_bound) if bound > below_bound else 1.0
            return (below_count + (count - below_count) * max(0.0, share)) / total
        below_bound, below_count = bound, count
    return below_count / total


def histogram_buckets(samples: Sequence[Sample]) -> list[tuple[float, float]]:
    """Per-pod bucket samples summed by ``le`` (the workload's histogram)."""
    per_le: dict[float, float] = defaultdict(float)
    for s in samples:
        if "le" in s.labels and math.isfinite(s.value):
            per_le[float(s.labels["le"])] += s.value
    return list(per_le.items())


def reduce_values(how: str, samples: Sequence[Sample], quantile: float) -> float:
    """Combine one workload's per-pod samples into one number."""
    if not samples:
        return math.nan
    if how == "quantile" and any("le" in s.labels for s in samples):
        return histogram_quantile(quantile, histogram_buckets(samples))
    if how == "peak":  # a subquery's points: the workload's total at each time, then the largest
        totals: dict[float, float] = defaultdict(float)
        for s in samples:
            if math.isfinite(s.value):
                totals[s.time_s] += s.value
        return max(totals.values()) if totals else math.nan
    values = [s.value for s in samples]
    if how == "sum":
        return math.fsum(values)
    if how == "mean":
        return math.fsum(values) / len(values)
    return max(values)  # "max", and a quantile override that already returns the percentile


# --- the shared cache -------------------------------------------------------------------------------


@dataclass
class Registration:
    target: TargetRef
    workload: str
    window_s: float
    interval_s: float
    overrides: Mapping[str, str]
    invalid: Mapping[str, str] = field(default_factory=dict)
    """metric -> why its override template was refused (set by :meth:`SharedMetrics.register`): that
    metric is not queried for this workload and its problem is reported, nobody else is affected."""
    slo: tuple[str, float] | None = None
    """(latency metric, target) of the policy's objective, e.g. ("ttft_p99_seconds", 5.0): when that
    metric is a histogram and no ``slo_attainment`` query is given, the share of the window's requests
    at or under the target is derived from the same buckets (:func:`histogram_fraction`). Without it a
    learner that prices SLO misses (slo-rl's dual variable) would never see one in the operator."""
    metrics: frozenset[str] | None = None
    """Query only these metrics for this workload (None: every metric of its kind and every override).
    The operator's fast timescale registers a second, short-window view of the queue and the request
    rate only: a backlog check every few seconds must not re-run the histograms."""


@dataclass(frozen=True)
class WorkloadMetrics:
    """One workload's metrics from the latest refresh, and why any are absent."""

    values: dict[str, float]
    time_s: float
    problems: tuple[str, ...] = ()


@dataclass
class SharedMetrics:
    """Runs every needed query once per refresh for all registered workloads; timers read the result."""

    client: PrometheusClient
    settings: PrometheusSettings = field(default_factory=PrometheusSettings)
    clock: Callable[[], float] = time.time
    on_query: Callable[[str, float, bool], None] | None = None
    """Called with (metric, seconds, ok) after every query: the operator's /metrics hook."""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._workloads: dict[str, Registration] = {}
        self._matchers: dict[str, re.Pattern[str]] = {}
        self._shortest_s: float | None = None  # shortest registered interval; None: to be recomputed
        self._results: dict[str, list[Sample]] = {}  # query text -> samples
        self._errors: dict[str, str] = {}  # query text -> error
        self._refreshed_at = -math.inf
        self._evaluated_at = math.nan
        self._fatal: str | None = None
        self._assignment: dict[tuple[str, str], str] = {}
        # query text -> (namespace, possible owner name) -> samples: see _index_by_owner.
        self._by_owner: dict[str, dict[tuple[str, str], list[Sample]]] = {}
        # (metric, template, window) -> (query text, namespaces it selects), as of the last refresh.
        self._groups: dict[tuple[str, str, float], tuple[str, frozenset[str]]] = {}
        self.refreshes = 0

    # registration ----------------------------------------------------------------------------------
    def register(self, key: str, reg: Registration) -> None:
        # parse() already refuses such templates; checked again here so that a template that does not
        # render, or reads outside its namespace, only ever costs its own policy that metric.
        invalid: dict[str, str] = {}
        for metric, template in reg.overrides.items():
            try:
                check_template(template)
            except TemplateError as exc:
                invalid[metric] = f"spec.metrics.queries.{metric}: {exc}"
        reg = replace(reg, overrides={m: t for m, t in reg.overrides.items() if m not in invalid},
                      invalid=invalid)
        with self._lock:
            self._workloads[key] = reg
            # Compiled once: with 1,000 workloads re's own cache (512 patterns) would recompile each time.
            self._matchers[key] = re.compile(pod_regex(reg.target))
            self._shortest_s = None
            if not self._covered(key, reg):
                self._refreshed_at = -math.inf  # it needs queries the last refresh did not run

    def unregister(self, key: str) -> None:
        with self._lock:
            self._workloads.pop(key, None)
            self._matchers.pop(key, None)
            self._shortest_s = None

    def _covered(self, key: str, reg: Registration) -> bool:
        """True (and ``key`` joined to them) when the last refresh's shared queries already select its series.

        Without this every new policy forced a refresh of every query: 1,000 policies appearing at
        start-up (or a restart) cost 1,000 full refreshes, each parsing every workload's series.
        """
        found: dict[tuple[str, str], str] = {}
        for metric, text in self._queries_of(reg).items():
            if text is not None:
                return False  # a per-workload query of its own, never run yet
            template = reg.overrides.get(metric, DEFAULT_QUERIES[metric].template)
            group = self._groups.get((metric, template, reg.window_s))
            if group is None or reg.target.namespace not in group[1]:
                return False
            found[(key, metric)] = group[0]
        self._assignment.update(found)
        return True

    def _plan(self) -> tuple[dict[str, str], dict[tuple[str, str], str],
                             dict[tuple[str, str, float], tuple[str, frozenset[str]]]]:
        """The deduplicated query texts of one refresh (text -> metric), and (workload, metric) -> text.

        Shared queries are grouped by (metric, template, window): workloads that agree on those share
        one query whose namespace matcher lists all of their namespaces.
        """
        groups: dict[tuple[str, str, float], list[str]] = defaultdict(list)
        assignment: dict[tuple[str, str], str] = {}
        plan: dict[str, str] = {}
        for key, reg in self._workloads.items():
            for metric, text in self._queries_of(reg).items():
                if text is None:
                    # Not .get(metric, DEFAULT_QUERIES[metric]...): a shared override for a metric with no
                    # default (slo_attainment) would raise KeyError in everyone's refresh.
                    template = reg.overrides[metric] if metric in reg.overrides else DEFAULT_QUERIES[metric].template
                    groups[(metric, template, reg.window_s)].append(key)
                else:
                    plan[text] = metric
                    assignment[(key, metric)] = text
        covered: dict[tuple[str, str, float], tuple[str, frozenset[str]]] = {}
        for (metric, template, window), keys in groups.items():
            namespaces = frozenset(self._workloads[k].target.namespace for k in keys)
            try:
                text = render_shared(template, namespaces, window)
            except (KeyError, IndexError, ValueError):  # register() refuses these; never fail everyone's refresh
                continue
            plan[text] = metric
            covered[(metric, template, window)] = (text, namespaces)
            for k in keys:
                assignment[(k, metric)] = text
        return plan, assignment, covered

    def _queries_of(self, reg: Registration) -> dict[str, str | None]:
        """metric -> rendered per-workload query, or None when the query is a shared one."""
        out: dict[str, str | None] = {}
        for metric, q in DEFAULT_QUERIES.items():
            if reg.workload in q.kinds and metric not in reg.overrides:
                out[metric] = None
        for metric in reg.invalid:
            out.pop(metric, None)
        for metric, template in reg.overrides.items():
            per = any(f in template for f in PER_WORKLOAD_FIELDS)
            out[metric] = render_for(template, reg.target, reg.window_s) if per else None
        if reg.metrics is not None:
            out = {m: t for m, t in out.items() if m in reg.metrics}
        return out

    # refresh ---------------------------------------------------------------------------------------
    def _ttl(self) -> float:
        if self._shortest_s is None:  # every timer asks on every step: not a scan of 1,000 registrations
            self._shortest_s = min((r.interval_s for r in self._workloads.values()), default=60.0)
        shortest = self._shortest_s
        return max(self.settings.min_cache_s, self.settings.cache_fraction * shortest)

    def refresh(self, force: bool = False) -> None:
        """Run every query once if the cache is older than its lifetime (callers share the result)."""
        with self._lock:
            now = self.clock()
            if not force and now - self._refreshed_at < self._ttl():
                return
            plan, assignment, groups = self._plan()
            results: dict[str, list[Sample]] = {}
            errors: dict[str, str] = {}
            fatal = None
            for text, metric in plan.items():
                t0 = time.perf_counter()
                try:
                    results[text] = self.client.query(text, at=now, matrix=metric in DEFAULT_QUERIES
                                                      and DEFAULT_QUERIES[metric].reduce == "peak")
                    ok = True
                except PrometheusError as exc:
                    errors[text] = str(exc)
                    ok = False
                    if "unreachable" in str(exc):
                        fatal = str(exc)
                        break  # the others would time out the same way
                finally:
                    if self.on_query is not None:
                        self.on_query(metric, time.perf_counter() - t0, ok)
            self._results, self._errors, self._fatal = results, errors, fatal
            self._by_owner = {text: _index_by_owner(samples) for text, samples in results.items()}
            self._assignment = assignment
            self._groups = {g: v for g, v in groups.items() if v[0] in results}
            self._refreshed_at = now
            self._evaluated_at = now
            self.refreshes += 1

    @property
    def last_error(self) -> str | None:
        return self._fatal

    def metrics_for(self, key: str) -> WorkloadMetrics | None:
        """The workload's metrics from the shared result (refreshed if due); None if Prometheus is down."""
        self.refresh()
        with self._lock:
            reg = self._workloads.get(key)
            if reg is None or self._fatal is not None:
                return None
            matcher = self._matchers[key]
            values: dict[str, float] = {}
            problems: list[str] = list(reg.invalid.values())
            for metric in self._queries_of(reg):
                text = self._assignment.get((key, metric))
                if text is None:
                    continue
                if text in self._errors:
                    problems.append(f"{metric}: {self._errors[text]}")
                    continue
                samples = self._results.get(text)
                if samples is None:
                    continue
                per_workload = metric in reg.overrides and any(
                    f in reg.overrides[metric] for f in PER_WORKLOAD_FIELDS)
                # A per-workload template's series are its own; any that name another namespace are
                # dropped (check_template already requires the namespace matcher on every selector).
                mine = [s for s in samples if s.labels.get("namespace", reg.target.namespace)
                        == reg.target.namespace] if per_workload else [
                    s for s in self._by_owner[text].get((reg.target.namespace, reg.target.name), ())
                    if _belongs(s, reg.target, matcher)
                ]
                if not mine:
                    continue
                how = DEFAULT_QUERIES[metric].reduce if metric in DEFAULT_QUERIES else "mean"
                values[metric] = reduce_values(how, mine, self.settings.quantile)
                if reg.slo is not None and metric == reg.slo[0] and "slo_attainment" not in reg.overrides \
                        and any("le" in s.labels for s in mine):
                    share = histogram_fraction(reg.slo[1], histogram_buckets(mine))
                    if math.isfinite(share):
                        values["slo_attainment"] = share
            return WorkloadMetrics(values, self._evaluated_at, tuple(problems))


def _index_by_owner(samples: Sequence[Sample]) -> dict[tuple[str, str], list[Sample]]:
    """Samples by (namespace, every name the series could belong to), built once per refresh.

    Without it every workload scans every sample of a shared query: 1,000 workloads x 20,000
    histogram samples is 20 million regex matches a cycle. A pod's owner is its name less one
    dash-separated suffix (StatefulSet ``<name>-<n>``, Job ``<name>-<5>``) or two (Deployment
    ``<name>-<hash>-<5>``, indexed Job ``<name>-<i>-<5>``), the forms :func:`pod_regex` accepts; a
    training series without a pod label belongs to its ``job``/``exported_job``. :func:`_belongs`
    still checks the exact form. A histogram has ~20 series per pod, so a pod's owners are worked out
    once and its series appended to the same lists.
    """
    index: dict[tuple[str, str], list[Sample]] = defaultdict(list)
    lists_of: dict[tuple[str, str | None, str | None, str | None], list[list[Sample]]] = {}
    for s in samples:
        labels = s.labels
        series = (labels.get("namespace", ""), labels.get("pod"), labels.get("job"), labels.get("exported_job"))
        lists = lists_of.get(series)
        if lists is None:
            ns, pod, job, exported_job = series
            if pod is not None:
                owners = {pod.rsplit("-", k)[0] for k in (1, 2) if pod.count("-") >= k}
            else:
                owners = {job, exported_job} - {None}
            lists = lists_of[series] = [index[(ns, owner)] for owner in owners]
        for owned in lists:
            owned.append(s)
    return index


def _belongs(sample: Sample, target: TargetRef, pods: re.Pattern[str]) -> bool:
    """Joins a series to a workload by pod name; training series may carry the Job name instead."""
    pod = sample.labels.get("pod")
    if pod is not None:
        return pods.fullmatch(pod) is not None
    if target.kind in ("Job", "PyTorchJob"):
        # Without honor_labels Prometheus renames an exported ``job`` label to ``exported_job``.
        return target.name in (sample.labels.get("exported_job"), sample.labels.get("job"))
    return False
