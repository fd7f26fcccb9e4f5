"""Bad data files named by a scenario: request logs, latency tables, load shapes and training workloads.

A bad row must be reported with its file and line (and the column), not clamped, truncated, turned into
NaN, or left to crash inside numpy. Every case runs ``autocm sim --check`` on a scenario that names the file.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from corpus_kit import error, ok, run_cli

from simulator.datasets import DATA_DIR

LOG_SCENARIO = """\
name: with-log
description: a service replaying a request log
duration_s: 300
control_interval_s: 30
cluster: {nodes: 2, gpus_per_node: 8}
inference:
  - name: svc
    latency_table: %(table)s
    trace: {kind: request-log, path: log.csv%(trace)s}
    slo: {ttft_seconds: 2.0, attainment: 0.99}
    knobs: {replicas: {min: 1, max: 4}}
policies: [{name: static}]
"""
LOG = "timestamp,input,output\n0.0,100,10\n1.5,200,20\n3.0,300,30\n"


def log_scenario(table: str = "bundled", trace: str = "", duration: bool = True) -> str:
    text = LOG_SCENARIO % {"table": table, "trace": trace}
    return text if duration else text.replace("duration_s: 300\n", "")


def log_case(name: str, log: str | bytes, expect, trace: str = "", duration: bool = True, files=None):
    files = files or {"log.csv": log}
    files = {"s.yaml": log_scenario(trace=trace, duration=duration), **files}
    return pytest.param(files, expect, id=f"request-log-{name}")


def _bundled_rows() -> list[str]:
    lines = (DATA_DIR / "splitwise" / "perf_model.csv").read_text().splitlines()
    return [lines[0]] + [line for line in lines[1:] if line.startswith("llama2-70b,a100-80gb,")]


TABLE_ROWS = _bundled_rows()
COLUMNS = TABLE_ROWS[0].split(",")


def table_with(column: str, value: str, row: int = 1) -> str:
    """The bundled llama2-70b/A100 rows with one cell replaced (row 1 is the file's line 2)."""
    rows = list(TABLE_ROWS)
    cells = rows[row].split(",")
    cells[COLUMNS.index(column)] = value
    rows[row] = ",".join(cells)
    return "\n".join(rows) + "\n"


def table_case(name: str, table: str | bytes, expect):
    files = {"s.yaml": log_scenario(table="table.csv"), "log.csv": LOG, "table.csv": table}
    return pytest.param(files, expect, id=f"latency-table-{name}")


SHAPE_SCENARIO = LOG_SCENARIO.replace("{kind: request-log, path: log.csv%(trace)s}",
                                      "{kind: load-shape, shape: shape.txt, mean_rate_per_s: 2.0}")


def shape_case(name: str, shape: str | bytes, expect, folder: bool = False):
    files = {"s.yaml": SHAPE_SCENARIO % {"table": "bundled"}}
    files["shape.txt/" if folder else "shape.txt"] = shape
    return pytest.param(files, expect, id=f"load-shape-{name}")


TRAINING = """\
name: tiny-train
description: a tiny training scenario
cluster: {nodes: 2, gpus_per_node: 4}
training: {workload: jobs.csv}
policies: [{name: tiresias}]
"""
HEADER = "name,time,application,num_replicas,batch_size\n"


def jobs_case(name: str, rows: str | bytes, expect, header: str = HEADER):
    body = rows if isinstance(rows, bytes) else header + rows
    return pytest.param({"s.yaml": TRAINING, "jobs.csv": body}, expect, id=f"workload-{name}")


CASES = [
    # --- request logs: negative, NaN, infinite, fractional and absurd token counts; bad timestamps
    log_case("negative-input-tokens", LOG.replace("1.5,200,20", "1.5,-200,20"),
             error("log.csv", "line 3", "input tokens", "'-200'")),
    log_case("negative-output-tokens", LOG.replace("3.0,300,30", "3.0,300,-1"),
             error("log.csv", "line 4", "output tokens")),
    log_case("nan-tokens", LOG.replace("1.5,200,20", "1.5,nan,20"), error("line 3", "input tokens")),
    log_case("inf-tokens", LOG.replace("1.5,200,20", "1.5,200,inf"), error("line 3", "output tokens")),
    log_case("fractional-tokens", LOG.replace("1.5,200,20", "1.5,200.5,20"), error("line 3", "whole number")),
    log_case("absurd-tokens", LOG.replace("1.5,200,20", "1.5,1e12,20"), error("line 3", "10000000")),
    log_case("text-tokens", LOG.replace("1.5,200,20", "1.5,ten,20"), error("log.csv", "line 3", "is not")),
    log_case("nan-timestamp", LOG.replace("1.5,200,20", "nan,200,20"), error("line 3", "timestamp")),
    log_case("inf-timestamp", LOG.replace("1.5,200,20", "inf,200,20"), error("line 3", "timestamp")),
    log_case("bad-datetime", "t,i,o\n2024-01-01 00:00:00,10,1\nyesterday,20,2\n",
             error("log.csv", "line 3", "timestamp", "'yesterday'")),
    log_case("two-columns", "0.0,100\n1.0,200\n", error("log.csv", "line 1", "timestamp, input tokens")),
    log_case("empty", "", error("log.csv", "no requests")),
    log_case("header-only", "timestamp,input,output\n", error("log.csv", "no requests")),
    log_case("binary", b"\xff\xfe\x00\x01garbage\x00\x9c", error("log.csv", "UTF-8")),
    log_case("a-folder", "", error("trace.path", "folder"), files={"log.csv/": ""}),
    log_case("single-instant-tiled", "0,10,1\n0,20,2\n", error("log.csv", "same instant"),
             trace=", duration_s: 3600"),
    log_case("tiny-span-tiled-to-a-week", "0,10,1\n0.000001,20,2\n", error("log.csv", "limit"),
             trace=", duration_s: 604800"),
    log_case("spans-1e9-seconds", "0,10,1\n1000000000,20,2\n", error("request logs span", "limit"), duration=False),
    log_case("unsorted-with-header-and-zero-output", "t,in,out\n5.0,100,10\n1.0,200,0\n3.5,300,30\n", ok("ok (")),
    log_case("datetimes", "2024-01-01 00:00:00.5,10,1\n2024-01-01T00:00:02.75,20,2\n", ok("ok (")),
    log_case("byte-order-mark", "\ufefftimestamp,input,output\n0,10,1\n2,20,2\n", ok("ok (")),
    log_case("negative-seconds", "-5,10,1\n-2,20,2\n0,30,3\n", ok("ok (")),
    # --- latency tables: every cell that reaches the log-log fit
    table_case("missing-column", TABLE_ROWS[0].replace(",e2e_time", "") + "\n",
               error("table.csv", "missing column", "e2e_time")),
    table_case("empty", "", error("table.csv", "missing column")),
    table_case("header-only", TABLE_ROWS[0] + "\n", error("table.csv", "no rows for model")),
    table_case("text-time", table_with("prompt_time", "fast"), error("table.csv", "line 2", "prompt_time", "number")),
    table_case("negative-time", table_with("token_time", "-5"), error("line 2", "token_time", "positive")),
    table_case("zero-time", table_with("prompt_time", "0"), error("line 2", "prompt_time", "positive")),
    table_case("nan-time", table_with("e2e_time", "nan"), error("line 2", "e2e_time", "finite")),
    table_case("inf-time", table_with("token_time", "inf"), error("line 2", "token_time")),
    table_case("zero-batch", table_with("batch_size", "0"), error("line 2", "batch_size", "whole number")),
    table_case("fractional-batch", table_with("batch_size", "1.5"), error("line 2", "batch_size")),
    table_case("huge-tp", table_with("tensor_parallel", "1e9"), error("line 2", "tensor_parallel")),
    table_case("empty-cell", table_with("prompt_size", ""), error("line 2", "prompt_size")),
    table_case("binary", b"\x00\x01\x02\xff\xfe", error("table.csv", "UTF-8")),
    table_case("other-model-only", "\n".join([TABLE_ROWS[0]] + [r.replace("llama2-70b", "gpt-x")
                                                                 for r in TABLE_ROWS[1:]]) + "\n",
               error("table.csv", "no rows for model 'llama2-70b'", "gpt-x")),
    table_case("no-reference-point", "\n".join([TABLE_ROWS[0]] + [r for r in TABLE_ROWS[1:]
                                                                   if ",512,1,128," not in r]) + "\n",
               error("latency table", "reference point")),
    pytest.param({"s.yaml": log_scenario(table="tables/"), "log.csv": LOG, "tables/": ""},
                 error("latency_table", "folder"), id="latency-table-a-folder"),
    table_case("bundled-copy", "\n".join(TABLE_ROWS) + "\n", ok("ok (")),
    # --- load shapes
    shape_case("negative-rate", "1\n-2\n3\n", error("shape.txt", "non-negative")),
    shape_case("all-zero", "0\n0\n", error("shape.txt", "not all zero")),
    shape_case("nan-rate", "1\nnan\n", error("shape.txt", "finite")),
    shape_case("text", "fast\nslow\n", error("shape.txt", "not a load shape")),
    shape_case("empty", "", error("shape.txt")),
    shape_case("two-columns", "1 2\n3 4\n", error("shape.txt", "columns")),
    shape_case("binary", b"\xff\xfe\x00\x00", error("shape.txt")),
    shape_case("a-folder", "", error("trace.shape", "folder"), folder=True),
    shape_case("one-number", "5\n", ok("ok (")),
    # --- training workloads
    jobs_case("unknown-application", "a,0,gpt5,1,128\n", error("jobs.csv", "line 2", "application", "cifar10")),
    jobs_case("zero-replicas", "a,0,cifar10,0,128\n", error("jobs.csv", "line 2", "num_replicas")),
    jobs_case("negative-replicas", "a,0,cifar10,-2,128\n", error("line 2", "num_replicas", "whole number")),
    jobs_case("fractional-replicas", "a,0,cifar10,1.5,128\n", error("line 2", "num_replicas")),
    jobs_case("more-replicas-than-gpus", "a,0,cifar10,1,128\nb,5,ncf,100,\n", error("job b", "100 GPUs", "never")),
    jobs_case("negative-time", "a,-10,cifar10,1,128\n", error("line 2", "time")),
    jobs_case("nan-time", "a,nan,cifar10,1,128\n", error("line 2", "time")),
    jobs_case("time-1e12", "a,1e12,cifar10,1,128\n", error("line 2", "time", "604800")),
    jobs_case("text-time", "a,soon,cifar10,1,128\n", error("line 2", "time")),
    jobs_case("zero-batch", "a,0,cifar10,1,0\n", error("line 2", "batch_size")),
    jobs_case("huge-batch", "a,0,cifar10,1,1e30\n", error("line 2", "batch_size")),
    jobs_case("duplicate-names", "a,0,cifar10,1,128\na,5,ncf,1,\n", error("jobs.csv", "not unique", "'a'")),
    jobs_case("empty-name", ",0,cifar10,1,128\n", error("line 2", "name")),
    jobs_case("header-only", "", error("jobs.csv", "no jobs")),
    jobs_case("missing-column", "a,0,cifar10,1\n", error("jobs.csv", "missing column", "batch_size"),
              header="name,time,application,num_replicas\n"),
    jobs_case("binary", b"\x89\x00\xff\xfe", error("jobs.csv")),
    pytest.param({"s.yaml": TRAINING, "jobs.csv/": ""}, error("training.workload", "folder", "CSV"),
                 id="workload-a-folder"),
    jobs_case("good", "a,0,cifar10,2,128\nb,30,ncf,1,\n", ok("ok (")),
]


@pytest.mark.parametrize("files, expect", CASES)
def test_data_file_corpus(tmp_path: Path, judge, files, expect):
    judge(run_cli(tmp_path, files, ["sim", "{d}/s.yaml", "--check"]), expect)
