"""Baselines re-implemented from their published algorithms, each with its upstream defaults."""
