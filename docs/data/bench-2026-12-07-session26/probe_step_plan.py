"""Log slo-rl's planned load, price and learned cold start per decision on step-look.yaml (session 26).

Run from the folder holding step-look.yaml (the bench report's scenarios/ folder):
    python /path/to/probe_step_plan.py
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from learners.slo_rl import SloRl
from simulator import scenario as sc
from simulator.runner import run_scenario

log = []
decide_once = SloRl.decide


def decide(self, obs):
    action = decide_once(self, obs)
    load = self.plan_load(obs) if self.demand.history else float("nan")
    log.append((obs.time_s, self._rate(obs), load, self.price, self.cold_start_s, dict(action.target)))
    return action


SloRl.decide = decide
run_scenario(sc.load("step-look.yaml"), Path("probe-out"), [101], only=["slo-rl (pretrained)"])
for t, rate, load, price, cold, target in log:
    print(int(t), round(rate, 2), round(load, 2), round(price, 2), cold, target)
