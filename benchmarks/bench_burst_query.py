"""What the burst query (``request_rate_peak_per_second``, a subquery answered as a matrix) adds to the
operator's shared Prometheus refresh, against the request-rate query (an instant vector) it sits beside.

The refresh decodes every shared query's JSON, indexes the samples by owner and reduces each workload's
samples; the burst's answer has up to ``BURST_POINTS`` points per pod series where the rate's has one. This
times that work in one process over synthetic answers shaped like Prometheus' (N workloads, P pods each),
with no HTTP, and prints the ratio. A full operator cycle over 1,000 workloads (benchmarks/
bench_operator_scale.py) spends ~10% of its time in the refresh, over ~25,000 samples.

Run: ``.venv/bin/python benchmarks/bench_burst_query.py --workloads 1000 --pods 1``
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from controller.prometheus import (
    _index_by_owner,
    burst_fields,
    parse_result,
    reduce_values,
)


def answers(workloads: int, pods: int, window_s: float) -> tuple[bytes, bytes]:
    """(vector JSON, matrix JSON) for ``workloads`` Deployments of ``pods`` pods in one namespace."""
    step = float(burst_fields(window_s)["burst_step"].removesuffix("s"))
    points = int(window_s // step)
    vec, mat = [], []
    for w in range(workloads):
        for p in range(pods):
            labels = {"namespace": "serving", "pod": f"svc-{w}-5d8f7c9b4-{p:05d}"}
            vec.append({"metric": labels, "value": [1000.0, "2.5"]})
            mat.append({"metric": labels, "values": [[1000.0 - step * k, f"{2.5 + (k % 3) * 0.1:.1f}"]
                                                     for k in range(points)]})
    wrap = lambda kind, r: json.dumps({"status": "success", "data": {"resultType": kind, "result": r}}).encode()  # noqa: E731
    return wrap("vector", vec), wrap("matrix", mat)


def one_refresh(blob: bytes, matrix: bool, how: str, workloads: int) -> float:
    t0 = time.perf_counter()
    samples = parse_result(json.loads(blob)["data"], matrix=matrix)
    index = _index_by_owner(samples)
    for w in range(workloads):
        reduce_values(how, index[("serving", f"svc-{w}")], 0.99)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workloads", type=int, default=1000)
    ap.add_argument("--pods", type=int, default=1, help="pods per workload")
    ap.add_argument("--window", type=float, default=60.0, help="spec.metrics.windowSeconds")
    ap.add_argument("--repeats", type=int, default=7)
    a = ap.parse_args()
    vec, mat = answers(a.workloads, a.pods, a.window)
    rate_s, burst_s = [], []
    for _ in range(a.repeats):  # interleaved, so drift on a noisy machine hits both alike
        rate_s.append(one_refresh(vec, False, "sum", a.workloads))
        burst_s.append(one_refresh(mat, True, "peak", a.workloads))
    r, b = statistics.median(rate_s), statistics.median(burst_s)
    print(f"{a.workloads} workloads x {a.pods} pods, window {a.window:g} s ({burst_fields(a.window)}): "
          f"answer {len(vec) / 1e3:.0f} kB vs {len(mat) / 1e3:.0f} kB")
    print(f"request rate (vector): {r * 1e3:.1f} ms; burst (matrix): {b * 1e3:.1f} ms; ratio {b / r:.1f}x "
          f"(median of {a.repeats})")


if __name__ == "__main__":
    main()
