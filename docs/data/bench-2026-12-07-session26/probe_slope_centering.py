"""Where does a per-template load slope make the capacity model uncertain? (session 26, a diagnostic)

Rows as in tests/unit/learners/test_slo_rl_pool_term.py's style: batch 64 run around its capacity, batch 16
only at low load (its tail grows faster). A capacity model with columns [x0, is16, is16 * (x0 - c), burst],
x0 the log load per GPU centred on slo_rl's reference load. It prints, per seed, the predictive standard
deviation of batch 16's logit at 0.4 requests/s per GPU over the one where batch 16 was run: with c = 0 (the
slope centred on the reference load, as the template_slopes probe did) and with c at batch 16's own data.

    PYTHONPATH=$PWD python docs/data/bench-2026-12-07-session26/probe_slope_centering.py
"""

import math

import numpy as np

from learners.slo_capacity import CapacityModel, CapacitySettings
from learners.slo_rl import LOAD_REF

CAP = {64.0: 0.38, 16.0: 0.2}  # requests/s per GPU at the SLO
POW = {64.0: 3.0, 16.0: 8.0}  # how fast the tail grows with load over capacity
TARGET = 5.0
RUN_AT = CAP[16.0] * math.exp(-1.3)  # where batch 16 was run, per GPU


def sd_ratio(centred: bool, seed: int, rows: int = 600) -> float:
    rng = np.random.default_rng(seed)
    model = CapacityModel(4, CapacitySettings())
    c = math.log(RUN_AT) - LOAD_REF if centred else 0.0
    X, y = [], []
    for _ in range(rows):
        b = 64.0 if rng.random() < 0.7 else 16.0
        per = CAP[b] * math.exp(rng.normal(-0.3, 0.35) if b == 64.0 else rng.normal(-1.3, 0.3))
        x0 = math.log(per) - LOAD_REF
        tail = TARGET * (per / CAP[b]) ** POW[b] * math.exp(rng.normal(0.0, 0.2))
        is16 = float(b == 16.0)
        X.append([x0, is16, is16 * (x0 - c), 0.0])
        y.append(model.label(tail, TARGET))
    for i in range(0, rows, 20):
        model.update(np.array(X[i:i + 20]), np.array(y[i:i + 20]))

    def sd(per: float) -> float:
        x0 = math.log(per) - LOAD_REF
        d = np.array([1.0, x0, 1.0, x0 - c, 0.0])
        return math.sqrt(d @ model._cov @ d)

    return sd(0.4) / sd(RUN_AT)


for centred in (False, True):
    print("centred on batch 16's data" if centred else "centred on the reference load",
          [round(sd_ratio(centred, seed), 2) for seed in range(10)])
