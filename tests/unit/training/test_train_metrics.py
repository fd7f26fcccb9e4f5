"""The training-job metric contract: the helper exports exactly the names the operator reads, refuses bad values."""

from __future__ import annotations

import socket
import urllib.request

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from controller import train_metrics as tm


def _samples(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    out = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            if s.labels.get("job_name") == "bert-1":
                out[(s.name, s.labels.get("le", ""))] = s.value
    return out


def test_helper_exports_the_contract_names_with_job_and_replica_labels() -> None:
    m = tm.TrainingMetrics("bert-1", replica=2)
    m.configure(gpus=4, local_batch_size=32)
    m.step(0.2, batch_size=128)
    m.step(0.4, batch_size=128)
    m.gradient(grad_sqr=3.0, grad_var=12.0)
    m.progress(0.25)
    got = _samples(m.registry)
    assert got[("autocm_train_step_seconds_count", "")] == 2
    assert got[("autocm_train_step_seconds_sum", "")] == pytest.approx(0.6)
    assert got[("autocm_train_batch_size", "")] == 128
    assert got[("autocm_train_local_batch_size", "")] == 32
    assert got[("autocm_train_gpus", "")] == 4
    assert got[("autocm_train_grad_sqr", "")] == 3.0
    assert got[("autocm_train_grad_var", "")] == 12.0
    assert got[("autocm_train_progress", "")] == 0.25
    assert got[("autocm_train_samples_total", "")] == 256
    text = generate_latest(m.registry).decode()
    assert 'replica="2"' in text
    exported = {f.name for f in text_string_to_metric_families(text)}
    assert {n for n in tm.METRIC_NAMES} <= exported


@pytest.mark.parametrize("call", [
    lambda m: m.step(float("nan"), 8),
    lambda m: m.step(-1.0, 8),
    lambda m: m.step(0.1, 0),
    lambda m: m.gradient(float("inf"), 1.0),
    lambda m: m.gradient(1.0, -2.0),
    lambda m: m.progress(1.5),
    lambda m: m.configure(0, 8),
])
def test_bad_values_fail_in_the_job(call) -> None:
    m = tm.TrainingMetrics("bert-1")
    with pytest.raises(ValueError):
        call(m)


def test_empty_job_name_is_refused() -> None:
    with pytest.raises(ValueError):
        tm.TrainingMetrics("")


def test_serve_exposes_metrics_over_http() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    m = tm.TrainingMetrics("bert-1")
    m.progress(0.5)
    m.serve(port, addr="127.0.0.1")
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    assert 'autocm_train_progress{job_name="bert-1",replica="0"} 0.5' in body


def test_batch_advice_learns_from_measured_steps_past_the_warm_up_and_follows_the_noise_scale() -> None:
    from simulator.training.profiles import load_profiles

    p = load_profiles()["cifar10"]
    m = tm.TrainingMetrics("c-1", limits=p.batch_limits)
    assert m.suggest_batch() is None  # not configured yet
    for gpus, local in ((1, 32), (1, 129), (4, 64), (4, 182)):
        m.configure(gpus=gpus, local_batch_size=local)
        st = p.step_time((gpus,), local)
        for i in range(m.WARMUP_STEPS + m.MEASURED_STEPS + 3):
            slow = 10.0 if i < m.WARMUP_STEPS else 1.0  # the first steps of a configuration are not its speed
            m.step(st.step_s * slow, batch_size=local * gpus, compute_seconds=st.compute_s * slow)
    assert m.advisor is not None
    assert m.advisor.samples[(1, 4, 182)] == pytest.approx((st.step_s, st.compute_s))
    assert m.suggest_batch() is None  # no gradient statistics yet
    m.gradient(*p.grad_stats(p.init_batch_size, 0))
    early = m.suggest_batch()
    m.gradient(*p.grad_stats(p.init_batch_size, p.max_epochs - 1))
    late = m.suggest_batch()
    assert early is not None and late is not None and early.num_replicas == late.num_replicas == 4
    assert late.batch_size > early.batch_size and late.batch_size <= p.max_batch_size


def test_without_limits_there_is_no_advice_and_nothing_is_learnt() -> None:
    m = tm.TrainingMetrics("bert-1")
    m.configure(gpus=4, local_batch_size=8)
    for _ in range(20):
        m.step(0.2, batch_size=32)
    m.gradient(1.0, 2.0)
    assert m.advisor is None and m.suggest_batch() is None
