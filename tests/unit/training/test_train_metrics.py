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
