"""The operator's dashboard: what autocm decided for each SizingPolicy, how well it learns, how healthy it is.

Every query reads the operator's own ``/metrics`` (controller/telemetry.py, prefix
``autocm_operator_``), labelled by the policy's ``namespace`` and ``policy`` name.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import dashboard as dm

from dashboards.common import datasource_variable, new_dashboard, query_variable, single_stat, state_timeline, ts

UID = "autocm-operator"
P = "autocm_operator"
SEL = 'namespace=~"$namespace", policy=~"$policy"'
BY_POLICY = "{{namespace}}/{{policy}}"


def _quantile(q: float, histogram: str) -> str:
    return f"histogram_quantile({q}, sum by (le) (rate({histogram}_bucket[$__rate_interval])))"


def build() -> db.Dashboard:
    d = new_dashboard(
        UID, "autocm / operator",
        "What the autocm operator decided for each SizingPolicy, how its learner converges, what it "
        "recommends against what runs, and the operator's own latency and errors.",
        ["operator"],
    ).variables([
        datasource_variable(),
        query_variable("namespace", "Namespace", f"label_values({P}_decisions_total, namespace)"),
        query_variable("policy", "Policy", f'label_values({P}_decisions_total{{namespace=~"$namespace"}}, policy)'),
    ])

    d = d.with_row(db.Row("Decisions"))
    d = d.with_panel(ts(
        "Decisions by outcome",
        "Control steps per minute by outcome: applied (a change was made), recommended (recommend mode), "
        "unchanged, frozen (metrics missing, stale or not finite), paused, refused (invalid spec or missing "
        "workload), rolled_back (the reward fell sharply after a change).",
        "opm", [(f"60 * sum by (outcome) (rate({P}_decisions_total{{{SEL}}}[$__rate_interval]))", "{{outcome}}")],
        width=8, stacked=True,
    ))
    d = d.with_panel(ts(
        "Reward",
        "Reward of the latest control interval per policy: performance against the SLO minus the cost of "
        "what the workload holds (higher is better). A sharp fall after a change triggers rollback.",
        "none", [(f"{P}_reward{{{SEL}}}", BY_POLICY)], width=8,
    ))
    d = d.with_panel(ts(
        "Metrics available",
        "Share of control steps that had fresh, finite metrics (all outcomes but frozen). Below 100% the "
        "guard rails froze the policy: check the MetricsAvailable condition of the SizingPolicy.",
        "percentunit",
        [(f'sum by (namespace, policy) (rate({P}_decisions_total{{{SEL}, outcome!="frozen"}}[$__rate_interval]))'
          f" / sum by (namespace, policy) (rate({P}_decisions_total{{{SEL}}}[$__rate_interval]))", BY_POLICY)],
        width=8, minimum=0, maximum=1,
    ))

    d = d.with_row(db.Row("Learning"))
    d = d.with_panel(ts(
        "Convergence residual",
        "The learner's own convergence residual (log scale): for the Q-learners (VCONF, unified) the recent "
        "TD/Bellman residual; for slo-rl the capacity model's prequential error on live intervals (before 10 of "
        "them, the held-out residual its checkpoint recorded in training). It should fall and flatten as the "
        "learner converges. Rule-based baselines report none.",
        "none", [(f"{P}_convergence_residual{{{SEL}}}", BY_POLICY)], log_scale=True,
    ))
    d = d.with_panel(state_timeline(
        "Convergence verdict",
        "Whether each policy's learner reports convergence (its residual is small and its greedy policy "
        "stable) or is still learning.",
        f"{P}_converged{{{SEL}}}", BY_POLICY,
        {"0": ("learning", "yellow"), "1": ("converged", "green")},
    ))

    d = d.with_row(db.Row("Configuration"))
    d = d.with_panel(ts(
        "Recommended vs applied configuration",
        "Per knob (replicas, gpus_per_replica, cpu, memory, max_batch_size, ...): the value the learner "
        "recommends and the value on the workload now. In recommend mode they differ until a person or "
        "apply mode acts; in apply mode the applied value follows within the guard rails' step and cooldown.",
        "none",
        [(f"{P}_recommended_config{{{SEL}}}", "{{namespace}}/{{policy}} {{knob}} recommended"),
         (f"{P}_applied_config{{{SEL}}}", "{{namespace}}/{{policy}} {{knob}} applied")],
        width=24, height=9,
    ).override_by_query("B", [dm.DynamicConfigValue("custom.lineStyle", {"fill": "dash", "dash": [10, 10]})]))

    d = d.with_row(db.Row("Operator health"))
    d = d.with_panel(ts(
        "Control-loop latency",
        "Wall time of one control step (observe, decide, guard, actuate, write status), median and p99 over "
        "all policies. Steps take milliseconds; seconds mean a slow apiserver or Prometheus.",
        "s",
        [(_quantile(0.5, f"{P}_loop_duration_seconds"), "p50"), (_quantile(0.99, f"{P}_loop_duration_seconds"),
                                                                "p99")],
        width=8,
    ))
    d = d.with_panel(ts(
        "Errors by stage",
        "Errors per minute by stage: prometheus (queries failed), kubernetes (reads or changes failed), "
        "learner, status (status not written), checkpoint (learner state not saved).",
        "opm", [(f"60 * sum by (stage) (rate({P}_errors_total[$__rate_interval]))", "{{stage}}")], width=8,
    ))
    d = d.with_panel(ts(
        "Prometheus queries",
        "PromQL queries the operator sends per minute, by result, and their p99 latency on the right axis. "
        "One query per metric per interval serves every workload, so this stays flat as policies are added.",
        "opm",
        [(f"60 * sum by (result) (rate({P}_prometheus_queries_total[$__rate_interval]))", "{{result}}"),
         (_quantile(0.99, f"{P}_prometheus_query_duration_seconds"), "p99 latency")],
        width=8,
    ).override_by_query("B", [dm.DynamicConfigValue("unit", "s"),
                              dm.DynamicConfigValue("custom.axisPlacement", "right")]))
    d = d.with_panel(single_stat(
        "Policies managed",
        "SizingPolicies this operator runs now (summed over operator replicas; only the leader runs them).",
        "none", f"sum({P}_policies)", "policies",
    ))
    return d
