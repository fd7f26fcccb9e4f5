"""The workloads' dashboard: each managed workload's latency against its SLO, load, GPUs and training speed.

It reads the exporters a GPU cluster already runs, under the names the operator reads by default
(controller/prometheus.py DEFAULT_QUERIES) and the simulator exports (simulator/metrics.py): vLLM
serving metrics, the DCGM exporter, and autocm's training contract (docs/operator.md). So the same
dashboard shows a real cluster and a simulated run imported into Prometheus.

A workload is named by its pods: a pod's owner is its name less the suffix its controller adds
(Deployment ``-<hash>-<5>``, StatefulSet ``-<n>``, Job ``-<5>``, PyTorchJob ``-worker-<n>``), the
forms controller.prometheus.pod_regex accepts. ``label_replace`` adds that owner as a ``workload``
label so that panels aggregate per workload, never averaging per-pod percentiles.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import dashboard as dm

from dashboards.common import datasource_variable, new_dashboard, query_variable, ts

UID = "autocm-workloads"

SAFE = "[bcdfghjklmnpqrstvwxz2456789]"
"""The alphabet of generated name parts (k8s.io/apimachinery rand.SafeEncodeString and rand.String): no
vowels, so a word in a workload's own name ("resnet-finetune") is never mistaken for a hash."""

POD_SUFFIX = f"(?:{SAFE}{{6,10}}-{SAFE}{{5}}|{SAFE}{{5}}|[0-9]+|(?:master|worker)-[0-9]+)"
"""What a workload controller appends to the workload's name (a pod-template hash is 6-10 characters)."""

OWNER_RE2 = f"(.+?)-{POD_SUFFIX}"
"""A pod name's owner in group 1 (RE2; Prometheus anchors it); the shortest owner wins, as the operator's."""

WORKLOAD_REGEX = f"/^{OWNER_RE2}$/"
"""The same, as the ``workload`` variable's regex: Grafana shows group 1 of each pod name once."""

POD_SEL = f'namespace=~"$namespace", pod=~"$workload-{POD_SUFFIX}"'
BY_WORKLOAD = "{{namespace}}/{{workload}}"
TTFT_SLO_DEFAULT_S = "0.5"
"""The default TTFT objective shown as a line; set it to the workload's SizingPolicy objective target."""


def per_workload(agg: str, inner: str) -> str:
    """``agg by (namespace, workload, ...)`` of ``inner`` after labelling each series with its owner."""
    return f'{agg} (label_replace({inner}, "workload", "$1", "pod", "{OWNER_RE2}"))'


def training(metric: str) -> str:
    """A training-contract gauge per job. A job's pods export it with a ``job`` label, which Prometheus
    renames ``exported_job`` unless the scrape honours labels; both forms are matched, never both at once."""
    return (f'sum by (namespace, job) ({metric}{{namespace=~"$namespace", job=~"$workload", exported_job=""}})'
            f' or sum by (namespace, exported_job) ({metric}{{namespace=~"$namespace", exported_job=~"$workload"}})')


TRAINING_LEGEND = "{{namespace}}/{{job}}{{exported_job}}"


def build() -> db.Dashboard:
    d = new_dashboard(
        UID, "autocm / workloads",
        "Each workload autocm manages: inference latency against its SLO, request rate, KV cache, GPU "
        "utilisation, replicas and GPUs held, and training throughput and goodput.",
        ["workloads", "vllm", "dcgm"],
    ).variables([
        datasource_variable(),
        query_variable("namespace", "Namespace", "label_values(DCGM_FI_DEV_GPU_UTIL, namespace)"),
        query_variable("workload", "Workload", 'label_values(DCGM_FI_DEV_GPU_UTIL{namespace=~"$namespace"}, pod)',
                       regex=WORKLOAD_REGEX),
        db.TextBoxVariable("ttft_slo_seconds").label("TTFT SLO (s)").default_value(TTFT_SLO_DEFAULT_S)
        .current(dm.VariableOption(selected=True, text=TTFT_SLO_DEFAULT_S, value=TTFT_SLO_DEFAULT_S))
        .description("The TTFT p99 objective drawn as a line: the SizingPolicy's spec.objective.target."),
    ])

    ttft = ("histogram_quantile(0.99, "
            + per_workload("sum by (namespace, workload, le)",
                           f"rate(vllm:time_to_first_token_seconds_bucket{{{POD_SEL}}}[$__rate_interval])") + ")")
    d = d.with_row(db.Row("Inference"))
    d = d.with_panel(ts(
        "TTFT p99 vs SLO",
        "Time to first token, 99th percentile per workload, from the summed per-pod vLLM histograms (as the "
        "operator computes it), against the SLO line set in the TTFT SLO box. Above the line the SLO is missed.",
        "s",
        [(ttft, BY_WORKLOAD),
         (f"max(vllm:num_requests_running{{{POD_SEL}}}) * 0 + $ttft_slo_seconds", "SLO")],
    ))
    d = d.with_panel(ts(
        "Request rate",
        "Requests completed per second per workload (vLLM request_success counter).",
        "reqps",
        [(per_workload("sum by (namespace, workload)",
                       f"rate(vllm:request_success_total{{{POD_SEL}}}[$__rate_interval])"), BY_WORKLOAD)],
    ))
    d = d.with_panel(ts(
        "Requests running and waiting",
        "Requests in the engines' batches and requests queued for one, summed over the workload's pods. A "
        "growing queue precedes TTFT misses.",
        "short",
        [(per_workload("sum by (namespace, workload)", f"vllm:num_requests_running{{{POD_SEL}}}"),
          BY_WORKLOAD + " running"),
         (per_workload("sum by (namespace, workload)", f"vllm:num_requests_waiting{{{POD_SEL}}}"),
          BY_WORKLOAD + " waiting")],
    ))
    d = d.with_panel(ts(
        "KV cache usage",
        "Share of the KV cache in use, mean and max over the workload's pods. Near 100% the engine preempts "
        "requests and latency rises even with idle GPU cycles.",
        "percentunit",
        [(per_workload("avg by (namespace, workload)", f"vllm:kv_cache_usage_perc{{{POD_SEL}}}"),
          BY_WORKLOAD + " mean"),
         (per_workload("max by (namespace, workload)", f"vllm:kv_cache_usage_perc{{{POD_SEL}}}"),
          BY_WORKLOAD + " max")],
        minimum=0, maximum=1,
    ))

    d = d.with_row(db.Row("GPUs"))
    d = d.with_panel(ts(
        "GPU utilization",
        "DCGM GPU utilisation, mean over the GPUs each workload holds (inference and training).",
        "percent",
        [(per_workload("avg by (namespace, workload)", f"DCGM_FI_DEV_GPU_UTIL{{{POD_SEL}}}"), BY_WORKLOAD)],
        width=8, minimum=0, maximum=100,
    ))
    d = d.with_panel(ts(
        "Replicas and GPUs",
        "Serving replicas (pods exporting vLLM metrics) and GPUs held (GPUs the DCGM exporter reports for the "
        "workload's pods), per workload: what the operator's replicas and gpus_per_replica knobs change.",
        "short",
        [(per_workload("count by (namespace, workload)", f"vllm:num_requests_running{{{POD_SEL}}}"),
          BY_WORKLOAD + " replicas"),
         (per_workload("count by (namespace, workload)", f"DCGM_FI_DEV_GPU_UTIL{{{POD_SEL}}}"),
          BY_WORKLOAD + " GPUs")],
        width=8,
    ))
    d = d.with_panel(ts(
        "GPU memory used",
        "Frame-buffer memory in use (DCGM FB_USED), summed over each workload's GPUs.",
        "mbytes",
        [(per_workload("sum by (namespace, workload)", f"DCGM_FI_DEV_FB_USED{{{POD_SEL}}}"), BY_WORKLOAD)],
        width=8,
    ))

    d = d.with_row(db.Row("Training"))
    d = d.with_panel(ts(
        "Training throughput and goodput",
        "Samples per second per training job, and goodput (throughput x statistical efficiency, Pollux): "
        "what the operator maximises per GPU when it changes a job's GPUs and batch size.",
        "short",
        [(training("autocm_training_throughput_samples_per_second"), TRAINING_LEGEND + " throughput"),
         (training("autocm_training_goodput_samples_per_second"), TRAINING_LEGEND + " goodput")],
        width=8,
    ))
    d = d.with_panel(ts(
        "Training GPUs and batch size",
        "GPUs each training job holds and its global batch size; a change restarts the job from its checkpoint.",
        "short",
        [(training("autocm_training_gpus"), TRAINING_LEGEND + " GPUs"),
         (training("autocm_training_batch_size"), TRAINING_LEGEND + " batch size")],
        width=8,
    ))
    d = d.with_panel(ts(
        "Training progress",
        "Share of each job's work done.",
        "percentunit",
        [(training("autocm_training_progress_ratio"), TRAINING_LEGEND)],
        width=8, minimum=0, maximum=1,
    ))
    return d
