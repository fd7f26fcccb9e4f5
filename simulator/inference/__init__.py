"""Request-level simulation of LLM inference services.

- :mod:`~simulator.inference.perf_model`: service times interpolated from measured latency tables;
- :mod:`~simulator.inference.memory`: GPU memory arithmetic (KV-cache capacity per TP degree);
- :mod:`~simulator.inference.traces`: Azure trace, user request logs, load shapes;
- :mod:`~simulator.inference.batching`: continuous batching of one replica, as plain arithmetic;
- :mod:`~simulator.inference.service`: the SimPy service, both control-loop ports;
- :mod:`~simulator.inference.oracle`: optimistic miss counts and the hindsight lower bound.

See docs/inference-model.md.
"""

from simulator.inference.perf_model import PerfModel
from simulator.inference.service import SLO, InferenceService, ServiceSettings, inference_config_space
from simulator.inference.traces import Trace, azure_code, load_shape, request_log

__all__ = ["SLO", "InferenceService", "PerfModel", "ServiceSettings", "Trace", "azure_code",
           "inference_config_space", "load_shape", "request_log"]
