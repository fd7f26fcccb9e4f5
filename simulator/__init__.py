"""The SimPy datacenter simulator: nodes and GPUs, training jobs, inference services, failures."""
