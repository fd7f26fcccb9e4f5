"""GPU memory of an inference replica: weights, and what is left for the KV cache.

A replica admits a request only while its KV cache can hold the request's prompt and output tokens,
so the capacity in tokens is what limits the batch of long requests. The arithmetic (see
docs/inference-model.md) for llama2-70b in fp16 at tensor-parallel degree ``tp`` on 80 GB GPUs:

    usable   = tp * 80 GiB * 0.90                  (vLLM's default gpu_memory_utilization)
    weights  = 68.98e9 parameters * 2 bytes        = 137.96 GB, sharded over the tp GPUs
    activ.   = tp * 1 GiB                          (activation / CUDA-graph working space per GPU)
    per token = 2 (K and V) * 80 layers * 8 KV heads * 128 head dim * 2 bytes = 320 KiB
    capacity = (usable - weights - activ.) / per token
             = TP2: 44.3k tokens, TP4: 510k tokens, TP8: 1.44M tokens (bloom-176b TP8: 64k).
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 2**30


@dataclass(frozen=True)
class ModelSpec:
    """What the KV-cache arithmetic needs to know about a model (from its published config.json)."""

    name: str
    parameters: float
    layers: int
    kv_heads: int
    head_dim: int
    bytes_per_value: int = 2  # fp16 / bf16 weights and KV cache

    @property
    def weight_bytes(self) -> float:
        return self.parameters * self.bytes_per_value

    @property
    def kv_bytes_per_token(self) -> float:
        """Key and value vectors of every layer for one token."""
        return 2.0 * self.layers * self.kv_heads * self.head_dim * self.bytes_per_value


MODELS: dict[str, ModelSpec] = {
    # meta-llama/Llama-2-70b-hf config.json: 80 layers, 64 heads, 8 KV heads (GQA), hidden 8192 -> head 128;
    # 68.98e9 parameters (the model card's "70B").
    "llama2-70b": ModelSpec("llama2-70b", 68.98e9, layers=80, kv_heads=8, head_dim=128),
    # bigscience/bloom config.json: 70 layers, 112 heads, hidden 14336 (no GQA); 176.2e9 parameters.
    "bloom-176b": ModelSpec("bloom-176b", 176.25e9, layers=70, kv_heads=112, head_dim=128),
}


@dataclass(frozen=True)
class MemorySettings:
    gpu_memory_bytes: float = 80 * GIB
    """A100-80GB and H100-80GB report 81920 MiB (nvidia-smi), i.e. 80 GiB."""

    memory_utilization: float = 0.90
    """vLLM's default ``gpu_memory_utilization`` (vllm/engine/arg_utils.py EngineArgs)."""

    activation_bytes_per_gpu: float = 1 * GIB
    """Working space vLLM's profiling run reserves for activations and CUDA graphs; ~1 GiB per GPU
    at these sizes (an estimate; vLLM measures it at start-up)."""


def kv_capacity_tokens(model: str | ModelSpec, tp: int, settings: MemorySettings | None = None) -> int:
    """Tokens of KV cache a replica of ``tp`` GPUs can hold (0 when the weights do not fit)."""
    spec = MODELS[model] if isinstance(model, str) else model
    s = settings or MemorySettings()
    free = tp * (s.gpu_memory_bytes * s.memory_utilization - s.activation_bytes_per_gpu) - spec.weight_bytes
    return max(0, int(free // spec.kv_bytes_per_token))


def weight_mib_per_gpu(model: str | ModelSpec, tp: int) -> float:
    spec = MODELS[model] if isinstance(model, str) else model
    return spec.weight_bytes / tp / 2**20
