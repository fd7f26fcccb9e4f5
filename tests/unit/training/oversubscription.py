"""A training scheduler wrapped to record the worst over-subscription of any node in any of its answers."""

from __future__ import annotations


def checked(base: type) -> type:
    """``base`` (a simulator training scheduler) whose ``optimize`` records ``worst``: the most GPUs any node
    was asked for beyond its capacity, over every answer (0 or less: never over-subscribed)."""

    class Checked(base):
        worst = 0

        def optimize(self, jobs, nodes, now):
            answer = super().optimize(jobs, nodes, now)
            used: dict[str, int] = {}
            for d in answer.values():
                for node, count in d.nodes or ():
                    used[node] = used.get(node, 0) + count
            self.worst = max(self.worst, *(used.get(n, 0) - c for n, c in nodes.items()))
            return answer

    return Checked
