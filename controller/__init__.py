"""The autocm operator: the control loop (no I/O), its Prometheus and Kubernetes adapters, the CLI."""
