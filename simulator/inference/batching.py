"""Iteration-level continuous batching of one replica, as plain arithmetic (no SimPy, no clock).

This is the part of vLLM's scheduler that decides service times (Yu et al., Orca, OSDI 2022; Kwon
et al., vLLM, SOSP 2023), reduced to what latency depends on:

- the replica admits waiting requests first-come-first-served while it has a batch slot (at most
  ``max_batch_size`` requests running) AND KV-cache room for the request's prompt plus all its output
  tokens (reserving the whole request up front means a running request is never preempted; vLLM
  allocates blocks lazily and preempts instead, which only matters when memory runs out);
- admitted requests are prefilled together in one iteration (at most ``max_prefill_tokens`` prompt
  tokens, but always at least one request) while the running ones wait: vLLM without chunked
  prefill schedules prefills before decodes. The prefill emits each request's first token;
- otherwise one decode iteration advances every running request by one token.

Decode iterations are not simulated one by one: :class:`ReplicaEngine` counts iterations
(``steps``), and a request admitted at step ``s`` with ``n`` output tokens finishes at step
``s + n - 1``. A driver asks how many steps remain until the next completion, lets that much time
pass (or less, when an arrival interrupts at the next iteration boundary), then calls
:meth:`ReplicaEngine.advance`. Two drivers use this class: the SimPy service and the oracle's
window simulator, so both follow exactly the same discipline.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Sequence

from simulator.inference.perf_model import PerfModel


class ReplicaEngine:
    """The batch of one replica. Request ids index the trace lists ``prompt``/``output``.

    Attributes are plain fields (``running``, ``kv_free``) rather than properties because the
    service reads them for every arrival.
    """

    __slots__ = ("_heap", "gen_sum", "kv_capacity", "kv_free", "max_batch", "max_prefill_tokens", "need",
                 "output", "perf", "prefilling", "prompt", "prompt_sum", "running", "steps", "tp")

    def __init__(self, perf: PerfModel, tp: int, max_batch: int, kv_capacity: int,
                 prompt: Sequence[int], output: Sequence[int], max_prefill_tokens: int = 8192,
                 need: Sequence[int] | None = None) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch}")
        self.perf, self.tp, self.max_batch = perf, int(tp), int(max_batch)
        self.kv_capacity, self.max_prefill_tokens = int(kv_capacity), int(max_prefill_tokens)
        self.prompt, self.output = prompt, output
        self.need = need if need is not None else [p + o for p, o in zip(prompt, output, strict=True)]
        """KV-cache tokens each request reserves: its prompt and all its output tokens."""
        self._heap: list[tuple[int, int]] = []  # (finish step, request id)
        self.prefilling: list[int] = []
        self.running = 0   # requests holding a batch slot (prefilling or decoding)
        self.steps = 0     # decode iterations done so far
        self.kv_free = self.kv_capacity
        self.gen_sum = 0     # output tokens of the decoding requests, for the generation-length factor
        self.prompt_sum = 0  # prompt tokens of the decoding requests, for the context factor

    @property
    def kv_used(self) -> int:
        return self.kv_capacity - self.kv_free

    # ------------------------------------------------------------------ admission

    def fits(self, req: int) -> bool:
        """Could ``req`` be admitted now (a batch slot and KV room)?"""
        return self.running < self.max_batch and self.need[req] <= self.kv_free

    def admit_from(self, queue: deque[int]) -> list[int]:
        """Pop requests from the head of ``queue`` while they fit (FCFS: stop at the first that does not)."""
        admitted: list[int] = []
        tokens = 0
        need, prompt = self.need, self.prompt
        while queue and self.running < self.max_batch:
            req = queue[0]
            if need[req] > self.kv_free or (admitted and tokens + prompt[req] > self.max_prefill_tokens):
                break
            queue.popleft()
            admitted.append(req)
            tokens += prompt[req]
            self.kv_free -= need[req]
            self.running += 1
        self.prefilling.extend(admitted)
        return admitted

    def prefill_s(self, admitted: Sequence[int]) -> float:
        n = len(admitted)
        prompt = self.prompt
        mean_prompt = sum(prompt[r] for r in admitted) / n
        return self.perf.prefill_time_s(mean_prompt, n, self.tp)

    def start_decoding(self) -> list[int]:
        """End of the prefill iteration: the prefilled requests have their first token.

        Returns the requests that are already complete (one output token).
        """
        done = []
        for req in self.prefilling:
            n = self.output[req]
            if n <= 1:
                self.kv_free += self.need[req]
                self.running -= 1
                done.append(req)
            else:
                heapq.heappush(self._heap, (self.steps + n - 1, req))
                self.gen_sum += n
                self.prompt_sum += self.prompt[req]
        self.prefilling = []
        return done

    # ------------------------------------------------------------------ decoding

    @property
    def decoding(self) -> int:
        return len(self._heap)

    def step_s(self) -> float:
        """Seconds of one decode iteration of the current batch."""
        b = len(self._heap)
        return self.perf.decode_step_s(b, self.tp, self.gen_sum / b, self.prompt_sum / b)

    def steps_to_next_completion(self) -> int:
        return self._heap[0][0] - self.steps

    def advance(self, k: int) -> list[int]:
        """``k`` decode iterations: everyone gains ``k`` tokens; returns the requests that completed."""
        self.steps += k
        done = []
        heap = self._heap
        while heap and heap[0][0] <= self.steps:
            _, req = heapq.heappop(heap)
            self.kv_free += self.need[req]
            self.gen_sum -= self.output[req]
            self.prompt_sum -= self.prompt[req]
            done.append(req)
        self.running -= len(done)
        return done

    def requests(self) -> list[int]:
        """Every request holding a slot, oldest first."""
        return sorted([r for _, r in self._heap] + self.prefilling)

    def evict_all(self) -> list[int]:
        """Drop everything (the replica is being deleted); returns the dropped requests, oldest first."""
        out = self.requests()
        self._heap, self.prefilling = [], []
        self.kv_free, self.running, self.gen_sum, self.prompt_sum = self.kv_capacity, 0, 0, 0
        return out


def pick_replica(engines: Sequence[ReplicaEngine | None], head: int) -> int:
    """Least-loaded replica that can admit ``head`` now, or -1 (ties: the lowest index).

    ``None`` entries are replicas that cannot take work (booting, being deleted).
    """
    best, best_load = -1, 1 << 62
    for i, eng in enumerate(engines):
        if eng is not None and eng.running < best_load and eng.running < eng.max_batch \
                and eng.need[head] <= eng.kv_free:
            best, best_load = i, eng.running
    return best
