"""Measure real GPU service times that the simulator's models stand in for.

Why this exists: the simulator's training-throughput model is fitted to the Pollux profiles (measured on
older GPUs) and its inference service-time model is shaped after the Splitwise table (llama2-70b on
H100 with tensor parallelism).  Before trusting either shape, we measure the same quantities on a real
GPU: training step time against per-GPU batch size, LLM prefill time against prompt length, and per-token
decode time against batch size.

Self-contained on purpose (torch and, optionally, torchvision; nothing from autocm) so that it runs on a
bare GPU machine.  Two modes:

    python3 scripts/gpu_probe.py --out gpu.json            # measure (on the GPU machine)
    python3 scripts/gpu_probe.py --smoke --out /tmp/x.json # tiny sizes, CPU is fine: checks the logic
    python3 scripts/gpu_probe.py --compare gpu.json \
        --pollux-dir /work/shared/data/pollux/profiles \
        --splitwise-csv /work/shared/data/splitwise/perf_model.csv   # add shape comparisons, print tables

Timing method: synthetic inputs already on the device (no data loading), warm-up iterations first
(cuDNN autotuning, allocator growth), then `repetitions` timed windows of `iters_per_rep` iterations each,
bracketed by CUDA events after a `torch.cuda.synchronize()`; we report the median window divided by
`iters_per_rep` (and the min/max across windows).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class ProbeSettings:
    """Every size and repetition count the probe uses, each with where it comes from."""

    # Per-GPU batch sizes from the brief (32..512); Pollux's cifar10 profile goes to 1024 and its
    # imagenet profile to 200 (placements.csv, placement "1"), so 1024 is added for ResNet-18.
    resnet18_batch_sizes: tuple[int, ...] = (32, 64, 128, 256, 512, 1024)
    resnet50_batch_sizes: tuple[int, ...] = (32, 64, 128, 256, 512)
    # CIFAR-10 images are 32x32 with 10 classes; ImageNet training crops are 224x224 with 1000 classes.
    cifar_image_size: int = 32
    cifar_classes: int = 10
    imagenet_image_size: int = 224
    imagenet_classes: int = 1000
    # SGD with momentum 0.9 is what the AdaptDL/Pollux cifar and imagenet examples train with.
    sgd_lr: float = 0.1
    sgd_momentum: float = 0.9
    # 10 warm-up steps: cuDNN autotuning (benchmark mode) and AMP's first casts; a first run with 5 showed
    # 2-3x outlier windows at small batch sizes.  Each timed window lasts at least train_min_window_s so
    # that millisecond-scale steps are averaged over many iterations.
    train_warmup_iters: int = 10
    train_iters_per_rep: int = 3
    train_min_window_s: float = 0.2
    train_repetitions: int = 5
    # ~1.1B-parameter Llama-style decoder (TinyLlama-1.1B shape: hidden 2048, 22 layers, 32 heads of 64
    # would also do; we use 16 heads of 128 like Llama-2 head_dim), bf16, RoPE, SwiGLU, KV cache.
    lm_vocab: int = 32000
    lm_hidden: int = 2048
    lm_layers: int = 20
    lm_heads: int = 16
    lm_intermediate: int = 5632  # Llama's 8/3*hidden rounded up to a multiple of 256
    # Prompt lengths: the brief's 512/1024/2048 plus Splitwise's whole prompt_size grid (128..8192).
    prefill_prompt_lengths: tuple[int, ...] = (128, 256, 512, 1024, 2048, 4096, 8192)
    # Decode batch sizes: Splitwise's batch_size grid at prompt 512 (1..64), extended to 128/256 to see
    # where the curve leaves the flat (memory-bound) regime.
    decode_batch_sizes: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256)
    # Splitwise's batch sweep uses prompt 512 + 128 generated tokens, so context ~512..640; 2048 shows
    # how a longer KV cache (more bytes to read per step) changes the slope.
    decode_context_lengths: tuple[int, ...] = (512, 2048)
    lm_warmup_iters: int = 3
    prefill_iters_per_rep: int = 5
    prefill_repetitions: int = 5
    decode_iters_per_rep: int = 20
    decode_repetitions: int = 5


def smoke_settings() -> ProbeSettings:
    """Tiny sizes so the whole pipeline runs on a laptop CPU in seconds."""
    return ProbeSettings(
        resnet18_batch_sizes=(2, 4),
        resnet50_batch_sizes=(2,),
        imagenet_image_size=32,
        train_warmup_iters=1,
        train_iters_per_rep=1,
        train_repetitions=2,
        lm_vocab=256,
        lm_hidden=64,
        lm_layers=2,
        lm_heads=4,
        lm_intermediate=128,
        prefill_prompt_lengths=(16, 32),
        decode_batch_sizes=(1, 2, 4),
        decode_context_lengths=(16,),
        lm_warmup_iters=1,
        prefill_iters_per_rep=1,
        prefill_repetitions=2,
        train_min_window_s=0.0,
        decode_iters_per_rep=2,
        decode_repetitions=2,
    )


# --------------------------------------------------------------------------------------------- timing


@dataclass
class Timing:
    """Per-iteration seconds: the median of the timed windows, and their spread."""

    median_s: float
    min_s: float
    max_s: float
    windows: int


def time_windows(step: Callable[[], Any], device: torch.device, warmup: int, iters: int, reps: int) -> Timing:
    """Run `step` warmup times, then `reps` windows of `iters` calls, timed with CUDA events on a GPU.

    CUDA events measure GPU time between two points of the stream, so host-side launch latency only
    counts where it leaves the GPU idle, which is the real cost a server would see.
    """
    for _ in range(warmup):
        step()
    per_iter: list[float] = []
    for _ in range(reps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(iters):
                step()
            end.record()
            torch.cuda.synchronize(device)
            per_iter.append(start.elapsed_time(end) / 1000.0 / iters)
        else:
            t0 = time.perf_counter()
            for _ in range(iters):
                step()
            per_iter.append((time.perf_counter() - t0) / iters)
    return Timing(statistics.median(per_iter), min(per_iter), max(per_iter), len(per_iter))


def is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def free_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()


# --------------------------------------------------------------------------------------------- ResNets


class _Basic(nn.Module):
    expansion = 1

    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        cout = width * self.expansion
        self.body = nn.Sequential(
            nn.Conv2d(cin, width, 3, stride, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, cout, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.short = _shortcut(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.short(x))


class _Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        cout = width * self.expansion
        self.body = nn.Sequential(
            nn.Conv2d(cin, width, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, stride, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.Conv2d(width, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.short = _shortcut(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.short(x))


def _shortcut(cin: int, cout: int, stride: int) -> nn.Module:
    if stride == 1 and cin == cout:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


class CompactResNet(nn.Module):
    """He et al. (2016) ResNet; fallback for machines without torchvision, same layer counts."""

    def __init__(self, block: type[nn.Module], depths: Sequence[int], classes: int, cifar_stem: bool) -> None:
        super().__init__()
        if cifar_stem:  # 3x3 stride-1 stem, no max-pool: the CIFAR variant used by AdaptDL's example
            stem: list[nn.Module] = [nn.Conv2d(3, 64, 3, 1, 1, bias=False)]
        else:
            stem = [nn.Conv2d(3, 64, 7, 2, 3, bias=False)]
        stem += [nn.BatchNorm2d(64), nn.ReLU(inplace=True)]
        if not cifar_stem:
            stem.append(nn.MaxPool2d(3, 2, 1))
        layers: list[nn.Module] = []
        cin = 64
        for stage, depth in enumerate(depths):
            width = 64 * 2**stage
            for i in range(depth):
                layers.append(block(cin, width, 2 if (i == 0 and stage > 0) else 1))
                cin = width * block.expansion  # type: ignore[attr-defined]
        self.features = nn.Sequential(*stem, *layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(cin, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def build_resnet(
    name: str, classes: int, cifar_stem: bool, prefer_torchvision: bool
) -> tuple[nn.Module, str]:
    """ResNet-18/50 from torchvision when importable (the reference implementation), else our own."""
    if prefer_torchvision:
        try:
            import torchvision  # optional: the bare GPU image has it, the dev venv may not

            model = getattr(torchvision.models, name)(num_classes=classes)
            if cifar_stem:
                model.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
                model.maxpool = nn.Identity()
            return model, f"torchvision {torchvision.__version__}"
        except ImportError:
            pass
    block, depths = {"resnet18": (_Basic, (2, 2, 2, 2)), "resnet50": (_Bottleneck, (3, 4, 6, 3))}[name]
    return CompactResNet(block, depths, classes, cifar_stem), "built-in CompactResNet"


@dataclass(frozen=True)
class TrainCase:
    """One workload of the Pollux profiles: model, input size and classes."""

    pollux_model: str
    arch: str
    image_size: int
    classes: int
    cifar_stem: bool
    batch_sizes: tuple[int, ...]


def train_cases(s: ProbeSettings) -> list[TrainCase]:
    return [
        TrainCase("cifar10", "resnet18", s.cifar_image_size, s.cifar_classes, True, s.resnet18_batch_sizes),
        TrainCase(
            "imagenet", "resnet50", s.imagenet_image_size, s.imagenet_classes, False, s.resnet50_batch_sizes
        ),
    ]


def measure_training(s: ProbeSettings, device: torch.device, prefer_tv: bool) -> list[dict[str, Any]]:
    """Step time (forward + backward + SGD step) per case x precision x batch size; OOM rows are kept."""
    rows: list[dict[str, Any]] = []
    precisions = ["fp32", "amp_bf16"]
    for case in train_cases(s):
        for precision in precisions:
            for bsz in case.batch_sizes:
                row: dict[str, Any] = {
                    "pollux_model": case.pollux_model,
                    "arch": case.arch,
                    "image_size": case.image_size,
                    "precision": precision,
                    "local_bsz": bsz,
                }
                try:
                    timing, impl, peak = _time_train_step(case, precision, bsz, s, device, prefer_tv)
                    row.update(
                        step_time_s=timing.median_s,
                        step_time_min_s=timing.min_s,
                        step_time_max_s=timing.max_s,
                        images_per_s=bsz / timing.median_s,
                        peak_mem_gib=peak,
                        impl=impl,
                        status="ok",
                    )
                except RuntimeError as exc:
                    if not is_oom(exc):
                        raise
                    row.update(status="oom")
                free_memory(device)
                rows.append(row)
                print(
                    f"train {case.arch:9s} {precision:8s} bsz={bsz:5d} "
                    f"{row.get('step_time_s', float('nan')) * 1e3:9.2f} ms  {row['status']}",
                    flush=True,
                )
    return rows


def _time_train_step(
    case: TrainCase, precision: str, bsz: int, s: ProbeSettings, device: torch.device, prefer_tv: bool
) -> tuple[Timing, str, float]:
    model, impl = build_resnet(case.arch, case.classes, case.cifar_stem, prefer_tv)
    model = model.to(device=device, memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=s.sgd_lr, momentum=s.sgd_momentum)
    x = torch.randn(bsz, 3, case.image_size, case.image_size, device=device).to(
        memory_format=torch.channels_last
    )
    y = torch.randint(0, case.classes, (bsz,), device=device)
    use_amp = precision == "amp_bf16"

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    iters = s.train_iters_per_rep
    if s.train_min_window_s > 0:  # size the window from one timed probe window after warm-up
        probe = time_windows(step, device, s.train_warmup_iters, s.train_iters_per_rep, 1)
        iters = max(iters, math.ceil(s.train_min_window_s / probe.median_s))
        timing = time_windows(step, device, 0, iters, s.train_repetitions)
    else:
        timing = time_windows(step, device, s.train_warmup_iters, iters, s.train_repetitions)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0
    return timing, impl, peak


# --------------------------------------------------------------------------------------- decoder LM


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight


def rope_tables(head_dim: int, max_len: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    inv = 1.0 / (10000.0 ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim))
    ang = torch.outer(torch.arange(max_len, device=device, dtype=torch.float32), inv)
    return ang.cos(), ang.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: (batch, heads, seq, head_dim); cos/sin: (seq, head_dim/2). Rotate-half form (Llama)."""
    x1, x2 = x.float().chunk(2, dim=-1)
    c, s_ = cos[None, None], sin[None, None]
    return torch.cat((x1 * c - x2 * s_, x1 * s_ + x2 * c), dim=-1).to(x.dtype)


class DecoderLayer(nn.Module):
    def __init__(self, hidden: int, heads: int, inter: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, hidden // heads
        self.norm1, self.norm2 = RMSNorm(hidden), RMSNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden, bias=False)
        self.o = nn.Linear(hidden, hidden, bias=False)
        self.gate_up = nn.Linear(hidden, 2 * inter, bias=False)
        self.down = nn.Linear(inter, hidden, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        k_cache: torch.Tensor,
        v_cache: torch.Tensor,
        start: int,
        cos: torch.Tensor,
        sin: torch.Tensor,
    ) -> torch.Tensor:
        """Attend over cache[:start] plus the new tokens, writing their K/V at [start, start+seq)."""
        b, t, h = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        k_cache[:b, :, start : start + t] = k
        v_cache[:b, :, start : start + t] = v
        keys, values = k_cache[:b, :, : start + t], v_cache[:b, :, : start + t]
        # Prefill from an empty cache is plain causal attention; one decode token sees the whole cache.
        attn = F.scaled_dot_product_attention(q, keys, values, is_causal=(t > 1 and start == 0))
        x = x + self.o(attn.transpose(1, 2).reshape(b, t, h))
        gate, up = self.gate_up(self.norm2(x)).chunk(2, dim=-1)
        return x + self.down(F.silu(gate) * up)


class DecoderLM(nn.Module):
    """Llama-style decoder-only LM with a preallocated KV cache (one tensor per layer for K and V)."""

    def __init__(self, s: ProbeSettings) -> None:
        super().__init__()
        self.embed = nn.Embedding(s.lm_vocab, s.lm_hidden)
        self.layers = nn.ModuleList(
            DecoderLayer(s.lm_hidden, s.lm_heads, s.lm_intermediate) for _ in range(s.lm_layers)
        )
        self.norm = RMSNorm(s.lm_hidden)
        self.lm_head = nn.Linear(s.lm_hidden, s.lm_vocab, bias=False)

    def forward(
        self,
        tokens: torch.Tensor,
        caches: list[tuple[torch.Tensor, torch.Tensor]],
        start: int,
        cos: torch.Tensor,
        sin: torch.Tensor,
    ) -> torch.Tensor:
        """Next token per sequence (greedy): only the last position goes through the LM head."""
        x = self.embed(tokens)
        c, s_ = cos[start : start + tokens.shape[1]], sin[start : start + tokens.shape[1]]
        for layer, (kc, vc) in zip(self.layers, caches, strict=True):
            x = layer(x, kc, vc, start, c, s_)
        return self.lm_head(self.norm(x[:, -1])).argmax(-1)


def alloc_caches(
    s: ProbeSettings, batch: int, max_len: int, device: torch.device, dtype: torch.dtype
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    shape = (batch, s.lm_heads, max_len, s.lm_hidden // s.lm_heads)
    return [
        (torch.randn(shape, device=device, dtype=dtype), torch.randn(shape, device=device, dtype=dtype))
        for _ in range(s.lm_layers)
    ]


def measure_inference(s: ProbeSettings, device: torch.device, use_cuda_graphs: bool) -> dict[str, Any]:
    """Prefill time per prompt length (batch 1) and per-token decode time per batch size and context."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    torch.manual_seed(0)
    with torch.device(device):
        model = DecoderLM(s).to(dtype=dtype).eval()
    n_params = sum(p.numel() for p in model.parameters())
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    max_len = max(max(s.prefill_prompt_lengths), max(s.decode_context_lengths) + 1)
    cos, sin = rope_tables(s.lm_hidden // s.lm_heads, max_len, device)
    out: dict[str, Any] = {
        "params": n_params,
        "weight_gib": weight_bytes / 2**30,
        "dtype": str(dtype),
        "config": {
            k: getattr(s, k) for k in ("lm_vocab", "lm_hidden", "lm_layers", "lm_heads", "lm_intermediate")
        },
        "prefill": [],
        "decode": [],
    }
    print(f"LM: {n_params / 1e9:.3f} B params, {weight_bytes / 2**30:.2f} GiB weights", flush=True)
    with torch.inference_mode():
        prefill_caches = alloc_caches(s, 1, max_len, device, dtype)
        for plen in s.prefill_prompt_lengths:
            prompt = torch.randint(0, s.lm_vocab, (1, plen), device=device)
            row = {"prompt_len": plen, "batch": 1}
            for mode in ["eager", "cuda_graph"] if use_cuda_graphs else ["eager"]:
                t = time_step(
                    lambda p=prompt, c=prefill_caches: model(p, c, 0, cos, sin),
                    device,
                    s.lm_warmup_iters,
                    s.prefill_iters_per_rep,
                    s.prefill_repetitions,
                    mode == "cuda_graph",
                )
                row[f"{mode}_prefill_time_s"] = t.median_s
                row[f"{mode}_min_s"], row[f"{mode}_max_s"] = t.min_s, t.max_s
            best = row.get("cuda_graph_prefill_time_s", row["eager_prefill_time_s"])
            row.update(prefill_time_s=best, tokens_per_s=plen / best)
            out["prefill"].append(row)
            print(
                f"prefill len={plen:5d} eager={row['eager_prefill_time_s'] * 1e3:9.2f} ms "
                f"graph={best * 1e3:9.2f} ms",
                flush=True,
            )
        del prefill_caches
        free_memory(device)
        for ctx in s.decode_context_lengths:
            for bsz in s.decode_batch_sizes:
                row: dict[str, Any] = {"context_len": ctx, "batch": bsz}
                try:
                    caches = alloc_caches(s, bsz, ctx + 1, device, dtype)
                    kv_bytes = sum(k.numel() * k.element_size() * 2 for k, _ in caches)
                    for mode in ["eager", "cuda_graph"] if use_cuda_graphs else ["eager"]:
                        tokens = torch.randint(0, s.lm_vocab, (bsz, 1), device=device)
                        # One decode step at context ctx: attends over ctx cached tokens + itself and
                        # writes slot ctx.  Replaying it is the same work as a real step at that context
                        # (only the written slot repeats), which is what lets a CUDA graph capture it.
                        t = time_step(
                            lambda tk=tokens, c=caches, n=ctx: model(tk, c, n, cos, sin),
                            device,
                            s.lm_warmup_iters,
                            s.decode_iters_per_rep,
                            s.decode_repetitions,
                            mode == "cuda_graph",
                        )
                        row[f"{mode}_token_time_s"] = t.median_s
                        row[f"{mode}_min_s"], row[f"{mode}_max_s"] = t.min_s, t.max_s
                    best = row.get("cuda_graph_token_time_s", row["eager_token_time_s"])
                    row.update(
                        token_time_s=best,
                        tokens_per_s=bsz / best,
                        kv_cache_gib=kv_bytes / 2**30,
                        # bytes each step must read at least: all weights + the whole KV cache
                        min_bytes_read_gib=(weight_bytes + kv_bytes) / 2**30,
                        achieved_gbps=(weight_bytes + kv_bytes) / best / 1e9,
                        status="ok",
                    )
                    del caches
                except RuntimeError as exc:
                    if not is_oom(exc):
                        raise
                    row["status"] = "oom"
                free_memory(device)
                out["decode"].append(row)
                eager = row.get("eager_token_time_s", math.nan) * 1e3
                print(
                    f"decode ctx={ctx:5d} bsz={bsz:4d} eager={eager:8.3f}"
                    f" ms graph={row.get('cuda_graph_token_time_s', math.nan) * 1e3:8.3f} ms",
                    flush=True,
                )
    return out


def time_step(
    fn: Callable[[], Any], device: torch.device, warmup: int, iters: int, reps: int, graph: bool
) -> Timing:
    """Time `fn` eagerly, or captured once in a CUDA graph and replayed.

    Serving engines (vLLM) run decode in CUDA graphs to remove per-kernel launch cost, so the graph
    number is what a tuned server sees; the eager number shows the Python launch overhead on top.
    """
    if not graph:
        return time_windows(fn, device, warmup, iters, reps)
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):  # warm up on a side stream, as torch.cuda.graphs documents
        for _ in range(max(warmup, 1)):
            fn()
    torch.cuda.current_stream(device).wait_stream(side)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    timing = time_windows(g.replay, device, warmup, iters, reps)
    del g
    return timing


# ------------------------------------------------------------------------------------------- compare


def fit_line(xs: Sequence[float], ys: Sequence[float]) -> dict[str, float]:
    """Least-squares y = intercept + slope*x with R^2, in the units of the inputs.

    The affine step-time model Pollux assumes per GPU (step time vs local batch size); also used for
    prefill time vs prompt length.  `fixed_fraction_at_min_x` is the share of the smallest-x time that
    the intercept explains: how far from proportional the curve is where it starts.
    """
    n = len(xs)
    if n < 2 or len(set(xs)) < 2:
        raise ValueError("need at least two distinct x values to fit a line")
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    a = my - b * mx
    ss_res = sum((y - a - b * x) ** 2 for x, y in zip(xs, ys, strict=True))
    ss_tot = sum((y - my) ** 2 for y in ys)
    return {
        "intercept": a,
        "slope": b,
        "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0,
        "fixed_fraction_at_min_x": a / (a + b * min(xs)),
    }


def _interp(xs: Sequence[float], ys: Sequence[float], x: float) -> float | None:
    """Piecewise-linear interpolation inside the measured range; None outside (no extrapolation)."""
    pts = sorted(zip(xs, ys, strict=True))
    for (x0, y0), (x1, y1) in itertools.pairwise(pts):
        if x0 <= x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return None


def compare_pollux(measured: list[dict[str, Any]], pollux_dir: Path) -> dict[str, Any]:
    """Per model: ratio Pollux/ours at our batch sizes, and affine fits of step time vs batch to both."""
    result: dict[str, Any] = {}
    for model in sorted({r["pollux_model"] for r in measured}):
        with (pollux_dir / model / "placements.csv").open() as f:
            ref = [
                (int(r["local_bsz"]), float(r["step_time"]))
                for r in csv.DictReader(f)
                if r["placement"] == "1"
            ]
        ref_x, ref_y = [b for b, _ in ref], [t for _, t in ref]
        entry: dict[str, Any] = {
            "pollux_single_gpu": [{"local_bsz": b, "step_time_s": t} for b, t in ref],
            "pollux_fit": fit_line(ref_x, ref_y),
            "precisions": {},
        }
        for precision in sorted({r["precision"] for r in measured}):
            ok = [
                r
                for r in measured
                if r["pollux_model"] == model and r["precision"] == precision and r["status"] == "ok"
            ]
            xs, ys = [r["local_bsz"] for r in ok], [r["step_time_s"] for r in ok]
            per_batch = []
            for x, y in zip(xs, ys, strict=True):
                p = _interp(ref_x, ref_y, x)
                per_batch.append(
                    {
                        "local_bsz": x,
                        "ours_s": y,
                        "pollux_s": p,
                        "pollux_over_ours": None if p is None else p / y,
                    }
                )
            # Shape on the overlapping range only, so both fits cover the same batch sizes.
            lo, hi = max(min(xs), min(ref_x)), min(max(xs), max(ref_x))
            ov = [(x, y) for x, y in zip(xs, ys, strict=True) if lo <= x <= hi]
            ref_ov = [(x, y) for x, y in ref if lo <= x <= hi]
            shape: dict[str, Any] = {"overlap_bsz": [lo, hi]}
            if len(ov) >= 2 and len(ref_ov) >= 2:
                fo, fr = fit_line(*zip(*ov, strict=True)), fit_line(*zip(*ref_ov, strict=True))
                shape.update(ours_fit=fo, pollux_fit=fr)
            entry["precisions"][precision] = {
                "fit_all": fit_line(xs, ys) if len(xs) >= 2 else None,
                "per_batch": per_batch,
                "overlap_shape": shape,
            }
        result[model] = entry
    return result


def compare_splitwise(measured: dict[str, Any], csv_path: Path) -> dict[str, Any]:
    """Decode-time ratio t(b)/t(1) and prefill growth t(p)/t(512) against llama2-70b on h100-80gb."""
    with csv_path.open() as f:
        rows = [r for r in csv.DictReader(f) if r["hardware"] == "h100-80gb" and r["model"] == "llama2-70b"]
    out: dict[str, Any] = {"splitwise": {}, "ours": {}}
    for tp in sorted({int(r["tensor_parallel"]) for r in rows}):
        sub = [r for r in rows if int(r["tensor_parallel"]) == tp]
        dec = _median_by(
            sub, lambda r: r["prompt_size"] == "512" and r["token_size"] == "128", "batch_size", "token_time"
        )
        pre = _median_by(sub, lambda r: r["batch_size"] == "1", "prompt_size", "prompt_time")
        out["splitwise"][f"tp{tp}"] = {
            "token_time_ms": dec,
            "token_ratio_vs_b1": {b: t / dec[1] for b, t in dec.items()},
            "prompt_time_ms": pre,
            "prompt_ratio_vs_512": {p: t / pre[512] for p, t in pre.items()},
            "prompt_fit_ms": fit_line(list(pre), list(pre.values())),
        }
    for ctx in sorted({r["context_len"] for r in measured["decode"]}):
        dec = {
            r["batch"]: r["token_time_s"] * 1e3
            for r in measured["decode"]
            if r["context_len"] == ctx and r["status"] == "ok"
        }
        out["ours"][f"decode_ctx{ctx}"] = {
            "token_time_ms": dec,
            "token_ratio_vs_b1": {b: t / dec[1] for b, t in dec.items()},
        }
    ok = [r for r in measured["decode"] if r["status"] == "ok"]
    if len({(r["batch"], r["context_len"]) for r in ok}) >= 3:
        out["ours"]["decode_fit_ms"] = fit_decode(ok)
    pre = {r["prompt_len"]: r["prefill_time_s"] * 1e3 for r in measured["prefill"]}
    out["ours"]["prefill"] = {
        "prompt_time_ms": pre,
        "prompt_ratio_vs_512": {p: t / pre[512] for p, t in pre.items()} if 512 in pre else None,
        "prompt_fit_ms": fit_line(list(pre), list(pre.values())),
    }
    return out


def fit_decode(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Least-squares t = t0 + per_seq*batch + per_kv_token*batch*context (ms) over every decode row.

    The memory-bound reading of a decode step: the weights are read once per step (t0, shared by the
    batch), each sequence adds its activations/sampling (per_seq) and its KV cache (per_kv_token per
    cached token).  This is the service-time form a continuous-batching model in the simulator needs.
    """
    design = torch.tensor(
        [[1.0, r["batch"], r["batch"] * r["context_len"]] for r in rows], dtype=torch.float64
    )
    target = torch.tensor([[r["token_time_s"] * 1e3] for r in rows], dtype=torch.float64)
    coef = torch.linalg.lstsq(design, target).solution.flatten()
    pred = (design @ coef.unsqueeze(1)).flatten()
    rel = ((pred - target.flatten()).abs() / target.flatten()).max().item()
    return {
        "t0_ms": coef[0].item(),
        "per_seq_ms": coef[1].item(),
        "per_kv_token_ms": coef[2].item(),
        "max_rel_error": rel,
    }


def _median_by(
    rows: list[dict[str, str]], keep: Callable[[dict[str, str]], bool], key: str, value: str
) -> dict[int, float]:
    groups: dict[int, list[float]] = {}
    for r in rows:
        if keep(r):
            groups.setdefault(int(r[key]), []).append(float(r[value]))
    return {k: statistics.median(v) for k, v in sorted(groups.items())}


def print_tables(data: dict[str, Any]) -> None:
    """Markdown tables of the measurements and comparisons, for docs/gpu-measurements.md."""
    tr = data["training"]
    print("\n| model | precision | local_bsz | step ms | img/s | peak GiB |\n|---|---|---|---|---|---|")
    for r in tr:
        if r["status"] == "ok":
            print(
                f"| {r['arch']} | {r['precision']} | {r['local_bsz']} | {r['step_time_s'] * 1e3:.2f} | "
                f"{r['images_per_s']:.0f} | {r['peak_mem_gib']:.1f} |"
            )
        else:
            print(f"| {r['arch']} | {r['precision']} | {r['local_bsz']} | {r['status']} | | |")
    inf = data["inference"]
    print("\n| prompt_len | prefill ms | tokens/s |\n|---|---|---|")
    for r in inf["prefill"]:
        print(f"| {r['prompt_len']} | {r['prefill_time_s'] * 1e3:.2f} | {r['tokens_per_s']:.0f} |")
    print(
        "\n| context | batch | eager ms/token | cuda-graph ms/token | tokens/s | KV GiB | GB/s (min bytes) |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in inf["decode"]:
        if r["status"] != "ok":
            print(f"| {r['context_len']} | {r['batch']} | {r['status']} | | | | |")
            continue
        g = r.get("cuda_graph_token_time_s")
        print(
            f"| {r['context_len']} | {r['batch']} | {r['eager_token_time_s'] * 1e3:.3f} | "
            f"{'' if g is None else f'{g * 1e3:.3f}'} | {r['tokens_per_s']:.0f} | "
            f"{r['kv_cache_gib']:.2f} | {r['achieved_gbps']:.0f} |"
        )
    cmp_ = data.get("comparison")
    if not cmp_:
        return
    for model, e in cmp_["pollux"].items():
        pf = e["pollux_fit"]
        print(
            f"\n{model}: Pollux fit (all single-GPU rows) a={pf['intercept'] * 1e3:.2f} ms "
            f"b={pf['slope'] * 1e3:.4f} ms/sample R2={pf['r2']:.4f}"
        )
        for prec, p in e["precisions"].items():
            fa = p["fit_all"]
            if fa is None:
                continue
            print(
                f"  ours {prec}: a={fa['intercept'] * 1e3:.2f} ms b={fa['slope'] * 1e3:.4f} ms/sample "
                f"R2={fa['r2']:.4f}"
            )
            sh = p["overlap_shape"]
            if "ours_fit" in sh:
                fo, fr = sh["ours_fit"], sh["pollux_fit"]
                print(
                    f"    overlap {sh['overlap_bsz']}: ours a={fo['intercept'] * 1e3:.2f} ms "
                    f"b={fo['slope'] * 1e3:.4f} fixed frac={fo['fixed_fraction_at_min_x']:.3f} "
                    f"R2={fo['r2']:.4f}; pollux a={fr['intercept'] * 1e3:.2f} ms "
                    f"b={fr['slope'] * 1e3:.4f} fixed frac={fr['fixed_fraction_at_min_x']:.3f} "
                    f"R2={fr['r2']:.4f}; "
                    f"b ratio pollux/ours={fr['slope'] / fo['slope']:.2f}"
                )
            for b in p["per_batch"]:
                if b["pollux_s"] is not None:
                    print(
                        f"    bsz {b['local_bsz']}: ours {b['ours_s'] * 1e3:.2f} ms pollux "
                        f"{b['pollux_s'] * 1e3:.2f} ms ratio {b['pollux_over_ours']:.2f}"
                    )
    sw = cmp_["splitwise"]
    for name, e in sw["splitwise"].items():
        print(
            f"\nsplitwise {name} token ratio vs b1: "
            + ", ".join(f"{b}:{v:.3f}" for b, v in e["token_ratio_vs_b1"].items())
        )
        print(
            f"splitwise {name} prompt ratio vs 512: "
            + ", ".join(f"{p}:{v:.2f}" for p, v in e["prompt_ratio_vs_512"].items())
        )
    if "decode_fit_ms" in sw["ours"]:
        f = sw["ours"]["decode_fit_ms"]
        print(
            f"ours decode fit: t = {f['t0_ms']:.3f} + {f['per_seq_ms']:.4f}*B + "
            f"{f['per_kv_token_ms']:.3e}*B*ctx ms (max rel error {f['max_rel_error']:.3f})"
        )
    for name, e in sw["ours"].items():
        if name == "decode_fit_ms":
            continue
        key = "token_ratio_vs_b1" if name.startswith("decode") else "prompt_ratio_vs_512"
        if e.get(key):
            print(f"ours {name} {key}: " + ", ".join(f"{k}:{v:.3f}" for k, v in e[key].items()))


# ------------------------------------------------------------------------------------------------ main


def environment(device: torch.device) -> dict[str, Any]:
    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "platform": platform.platform(),
        "cudnn_tf32": torch.backends.cudnn.allow_tf32,
        "matmul_tf32": torch.backends.cuda.matmul.allow_tf32,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        try:
            query = "--query-gpu=name,memory.total,driver_version,clocks.max.sm,power.limit"
            smi = subprocess.run(
                ["nvidia-smi", query, "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            env["nvidia_smi"] = smi.stdout.strip()
        except OSError as exc:
            env["nvidia_smi"] = f"unavailable: {exc}"
    return env


@dataclass
class Args:
    out: Path | None
    smoke: bool
    sections: list[str] = field(default_factory=lambda: ["train", "infer"])
    compare: Path | None = None
    pollux_dir: Path = Path(__file__).resolve().parents[1] / "simulator/data/pollux/profiles"
    splitwise_csv: Path = Path(__file__).resolve().parents[1] / "simulator/data/splitwise/perf_model.csv"
    no_torchvision: bool = False
    no_cuda_graphs: bool = False


def parse_args(argv: Sequence[str] | None) -> Args:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, help="JSON file to write measurements (or comparisons) to")
    p.add_argument("--smoke", action="store_true", help="tiny sizes; checks the logic on any device")
    p.add_argument("--sections", default="train,infer", help="comma list of: train, infer")
    p.add_argument("--compare", type=Path, help="measurements JSON to add Pollux/Splitwise comparisons to")
    p.add_argument("--pollux-dir", type=Path, default=Args.pollux_dir)
    p.add_argument("--splitwise-csv", type=Path, default=Args.splitwise_csv)
    p.add_argument("--no-torchvision", action="store_true", help="use the built-in ResNets")
    p.add_argument("--no-cuda-graphs", action="store_true", help="decode timing in eager mode only")
    a = p.parse_args(argv)
    return Args(
        a.out,
        a.smoke,
        a.sections.split(","),
        a.compare,
        a.pollux_dir,
        a.splitwise_csv,
        a.no_torchvision,
        a.no_cuda_graphs,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.compare is not None:
        data = json.loads(args.compare.read_text())
        data["comparison"] = {
            "pollux": compare_pollux(data["training"], args.pollux_dir),
            "splitwise": compare_splitwise(data["inference"], args.splitwise_csv),
        }
        (args.out or args.compare).write_text(json.dumps(data, indent=1) + "\n")
        print_tables(data)
        return 0
    settings = smoke_settings() if args.smoke else ProbeSettings()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True  # autotune conv algorithms; warm-up absorbs the search
    data: dict[str, Any] = {
        "environment": environment(device),
        "settings": asdict(settings),
        "smoke": args.smoke,
        "command": " ".join(sys.argv),
        "started": time.time(),
    }
    t0 = time.perf_counter()

    def save() -> None:  # after every section, so a run cut off by a time limit keeps what it measured
        data["wall_s"] = time.perf_counter() - t0
        if args.out is not None:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(data, indent=1) + "\n")

    if "infer" in args.sections:
        use_graphs = device.type == "cuda" and not args.no_cuda_graphs
        data["inference"] = measure_inference(settings, device, use_graphs)
        save()
    if "train" in args.sections:
        data["training"] = measure_training(settings, device, not args.no_torchvision)
        save()
    print(f"done in {data['wall_s']:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
