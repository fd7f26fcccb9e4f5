"""The observation's burst and backlog metrics, and the train/evaluation split of request sizes."""

from __future__ import annotations

import numpy as np
import pytest

from simulator.inference import traces as tr
from simulator.inference.service import _peak_rate


def test_size_halves_are_disjoint_and_cover_the_trace():
    full, first, second = tr.azure_code_half("all"), tr.azure_code_half("first-half"), tr.azure_code_half("second-half")
    assert len(first) + len(second) == len(full)
    assert first.arrival_s[-1] <= second.arrival_s[0]
    with pytest.raises(ValueError, match="sizes"):
        tr.azure_code_half("middle")


def test_peak_rate_is_the_busiest_10s_window():
    arrivals = np.concatenate([np.linspace(0, 59, 12), np.full(30, 42.5)])  # a burst of 30 in one window
    assert _peak_rate(arrivals, 0.0, 60.0) == pytest.approx(3.2)  # (30 + 2 evenly spread) / 10 s
    assert _peak_rate(np.array([]), 0.0, 60.0) == 0.0
    assert _peak_rate(np.array([1.0, 2.0]), 0.0, 5.0) == pytest.approx(0.4)  # shorter than a window: the mean
