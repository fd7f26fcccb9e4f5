"""What a learner sees in the simulator, the operator gives it too, or the difference is written down here.

Learners are trained and evaluated on the simulator's observations and then run by the operator on
observations built from Prometheus and the workload object. A metric the simulator reports and the
operator never queries is a feature the learner learned and then always reads as missing: slo-rl's burst
(``request_rate_peak_per_second``, weight +1.07 in the diurnal checkpoint) was exactly that until session 22,
and its control steps saw no replica readiness. This test lists every metric and event of an inference
observation in the simulator and requires each to have an operator source or a stated reason it has none.
"""

from __future__ import annotations

import simpy

from controller.operator import _completions
from controller.prometheus import DEFAULT_QUERIES
from learners.baselines.hpa import HPA
from learners.slo_rl import SloRl
from simulator.cluster import GpuPool
from simulator.inference.perf_model import PerfModel
from simulator.inference.service import SLO, InferenceService, ServiceSettings
from simulator.inference.traces import load_shape

DERIVED = {
    "slo_attainment": "derived from the objective's latency histogram (controller/prometheus.py histogram_fraction)",
}
NOT_IN_THE_OPERATOR = {
    "queued_prompt_tokens": "vLLM exports no counter of the prompt tokens waiting; slo-rl treats it as optional",
}
EVENTS_NOT_IN_THE_OPERATOR = {
    "rejected": "vLLM does not count requests it refused; a missing value reads as 0",
    "failures": "replica crashes are not a metric; the violation forecaster reads a missing value as 0",
}


def simulated_observation():
    env = simpy.Environment()
    svc = InferenceService(env, GpuPool.uniform(2, 8), PerfModel.load("llama2-70b", "a100-80gb"),
                           load_shape("bursty", 3.0, duration_s=180.0, seed=1),
                           ServiceSettings(initial={"replicas": 2, "gpus_per_replica": 8, "max_batch_size": 64},
                                           slo=SLO(ttft_s=5.0)))
    env.run(until=120.0)
    return svc.observe(svc.name, env.now)


def test_every_simulated_metric_has_an_operator_source_or_a_stated_reason():
    obs = simulated_observation()
    queried = {m for m, q in DEFAULT_QUERIES.items() if "inference" in q.kinds}
    missing = set(obs.metrics) - queried - set(DERIVED) - set(NOT_IN_THE_OPERATOR)
    assert not missing, f"the simulator reports {sorted(missing)}, the operator never queries them"
    stale = (set(DERIVED) | set(NOT_IN_THE_OPERATOR)) - set(obs.metrics)
    assert not stale, f"listed here but no longer reported by the simulator: {sorted(stale)}"
    assert not set(NOT_IN_THE_OPERATOR) & queried, "now queried: take it off NOT_IN_THE_OPERATOR"


def test_every_simulated_event_has_an_operator_source_or_a_stated_reason():
    obs = simulated_observation()
    operator_events = set(_completions({"request_rate_per_second": 1.0}, 60.0))
    assert not set(obs.events) - operator_events - set(EVENTS_NOT_IN_THE_OPERATOR), obs.events


def test_learners_that_read_readiness_say_so():
    """The operator gives per-replica readiness in control steps to learners that declare it (HPA must not
    get it: it reads per-replica samples as per-pod metric values). The simulator always gives it."""
    assert getattr(SloRl, "reads_replica_readiness", False) is True
    assert not getattr(HPA, "reads_replica_readiness", False)
    assert simulated_observation().replicas  # the simulator's side
