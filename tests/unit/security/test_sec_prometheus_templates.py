"""One tenant's query template can neither break every tenant's metrics nor read another namespace.

``parse()`` refuses a template that does not render with the documented placeholders or whose series
selectors lack the namespace matcher; the shared cache checks again when a policy registers, so a bad
template that got that far costs only its own policy that metric (with the reason), and a per-workload
query's series from other namespaces never reach the tenant's status.
"""

from __future__ import annotations

import pytest
from operator_fakes import fake_prometheus, vector

from controller.policy import PolicyError, TargetRef, parse
from controller.prometheus import DEFAULT_QUERIES, PrometheusClient, Registration, SharedMetrics
from controller.promql_template import TemplateError, check_template


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def spec(queries):
    return {"targetRef": {"kind": "Deployment", "name": "web"},
            "objective": {"metric": "ttft_p99_seconds", "target": 0.5},
            "knobs": {"replicas": {"min": 1, "max": 8}}, "learner": {"name": "static"},
            "metrics": {"queries": queries}}


BAD_TEMPLATES = [
    ('up{job="x"}', "unknown placeholder"),                        # plain PromQL: KeyError at refresh before
    ("up{{job=\"x\"}}", "no namespace matcher"),
    ("up", "no namespace matcher"),
    ("sum(rate(x[5m]))", "no namespace matcher"),
    ('x{{namespace="victim"}}', "no namespace matcher"),
    ('x{{namespace=~".+"}}', "no namespace matcher"),
    ('x{{namespace!="{namespace}"}}', "no namespace matcher"),
    ('x{{namespace=~"{namespace}|victim"}}', "no namespace matcher"),
    ('{{__name__="secret_metric"}}', "no namespace matcher"),
    ("x{{{selector}}} + on() group_left y", "no namespace matcher"),
    ("x{{{selector}}} unless y{{pod=\"{name}\"}}", "no namespace matcher"),
    ('x{{{selector} or namespace="victim"}}', "'or' between label matchers"),
    ("{name.__class__}", "unknown placeholder"),
    ("{selector.__init__.__globals__}", "unknown placeholder"),
    ("{0}", "unknown placeholder"),
    ("{}", "unknown placeholder"),
    ("{selector!r}", "unknown placeholder"),
    ("{window:>99999999}", "unknown placeholder"),
    ("x{{{selector}}", "not a template"),
    ("x{{{selector}}}}", "not a template"),
    ("", "expected a PromQL template string"),
    ("   ", "expected a PromQL template string"),
    ("x{{{selector}}} + " * 400 + "1", "more than 4096"),
    ("x{{{selector}}} ~~ y", "cannot read the query"),
]


@pytest.mark.parametrize(("template", "why"), BAD_TEMPLATES)
def test_parse_refuses_bad_templates_with_the_field_and_the_reason(template, why):
    with pytest.raises(PolicyError, match=r"^spec\.metrics\.queries\.queue_length: ") as err:
        parse(spec({"queue_length": template}), "tenant", "p")
    assert why in str(err.value)


@pytest.mark.parametrize("template", [None, 3, ["x"], {"a": 1}])
def test_parse_refuses_templates_that_are_not_strings(template):
    with pytest.raises(PolicyError, match=r"^spec\.metrics\.queries\.queue_length: expected a PromQL template"):
        parse(spec({"queue_length": template}), "tenant", "p")


GOOD_TEMPLATES = [
    *[q.template for q in DEFAULT_QUERIES.values()],
    # docs/operator.md's examples, and the constants the e2e tests use
    'histogram_quantile(0.99, sum by (le) (rate(tgi_request_queue_duration_bucket{{namespace="{namespace}", '
    'pod=~"{pod_regex}"}}[{window}])))',
    "sum by (namespace, pod) (triton_queue{{{selector}}})",
    'label_replace(vector(0.2), "deployment", "{name}", "", "")',
    "vector(1)",
    "sum(rate(x{{{selector}}}[5m] offset 1m)) by (namespace, pod) / on(namespace, pod) group_left "
    'sum by (namespace, pod) (y{{{selector}, a!="b"}})',
    "max_over_time(x{{{selector}}}[{window}:15s])",
    "topk(3, x{{{selector}}}) > bool 1e3",
]


@pytest.mark.parametrize("template", GOOD_TEMPLATES)
def test_documented_and_default_templates_are_accepted(template):
    check_template(template)
    parse(spec({"queue_length": template}), "tenant", "p")


def registration(ns, name, overrides=None):
    return Registration(TargetRef("Deployment", name, ns, "apps/v1"), "inference", 60.0, 10.0, overrides or {})


def answers(q: str):
    if "num_requests_waiting" in q:
        return vector([({"namespace": "good", "pod": "web-5d8f7c9b4-aaaaa"}, 3.0)])
    if "secret_metric" in q:
        return vector([({"namespace": "victim", "pod": "db-0"}, 42.0),
                       ({"namespace": "tenant", "pod": "web-5d8f7c9b4-aaaaa"}, 1.0)])
    return vector([])


def test_a_bad_template_past_parse_breaks_only_its_own_policy():
    """Before the fix the shared refresh raised KeyError for every policy."""
    with fake_prometheus(answers) as prom:
        shared = SharedMetrics(PrometheusClient(prom.url), clock=Clock())
        shared.register("good/web", registration("good", "web"))
        shared.register("tenant/web", registration("tenant", "web", {"queue_length": 'up{job="x"}'}))
        good = shared.metrics_for("good/web")
        bad = shared.metrics_for("tenant/web")
    assert good is not None and good.values["queue_length"] == 3.0
    assert good.problems == ()
    assert bad is not None and "queue_length" not in bad.values
    assert any(p.startswith("spec.metrics.queries.queue_length: unknown placeholder") for p in bad.problems)


def test_a_per_workload_template_never_returns_another_namespaces_series():
    """Before the fix the victim's 42 came back as the tenant's metric (the per-workload path had no filter)."""
    leaky = 'max(secret_metric{{namespace="{namespace}"}}) or max(secret_metric{{pod="{name}"}})'
    with pytest.raises(TemplateError):
        check_template(leaky)
    scoped = 'max by (namespace) (secret_metric{{namespace="{namespace}"}})'
    with fake_prometheus(answers) as prom:
        shared = SharedMetrics(PrometheusClient(prom.url), clock=Clock())
        shared.register("tenant/web", registration("tenant", "web", {"queue_length": leaky}))
        shared.register("tenant/api", registration("tenant", "api", {"kv_cache_usage": scoped}))
        leaked = shared.metrics_for("tenant/web")
        got = shared.metrics_for("tenant/api")
    assert "queue_length" not in leaked.values  # refused at registration: the query is never sent
    assert got.values["kv_cache_usage"] == 1.0  # the fake answers victim's series too: they are dropped


def test_a_shared_template_for_a_metric_without_a_default_breaks_nobody():
    """``slo_attainment`` has no default query. A shared template for it (one that only uses ``{selector}``,
    which ``parse()`` accepts) made the shared refresh raise KeyError for every policy before the fix."""
    template = "avg by (namespace, pod) (my_attainment{{{selector}}})"
    parse(spec({"slo_attainment": template}), "tenant", "p")  # admitted: a legitimate template
    with fake_prometheus(answers) as prom:
        shared = SharedMetrics(PrometheusClient(prom.url), clock=Clock())
        shared.register("good/web", registration("good", "web"))
        shared.register("tenant/web", registration("tenant", "web", {"slo_attainment": template}))
        good = shared.metrics_for("good/web")
        assert shared.metrics_for("tenant/web") is not None
    assert good is not None and good.values["queue_length"] == 3.0 and good.problems == ()
    assert any("my_attainment" in q for q in prom.queries)
