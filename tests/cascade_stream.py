"""The seeded addition stream both frameworks' cascade-strategy tests run, framework-free.

The cheap model adds wrongly when the first number is odd (half of a seeded stream of
queries); the evaluator knows the right sum. Costs (10 input and 4 output tokens per
call): small 2.6e-6 USD, large 6.5e-5 USD. :class:`Tally` checks each call's routing
metadata and keeps the escalation/stop counts and the costs after the warm-up.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest

WARM_UP = 40
COST = {"small": 2.6e-6, "large": 6.5e-5}


class Ticker:
    """A clock that moves ``step`` seconds per reading."""

    def __init__(self, step: float = 0.01) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def stream_of(n: int, seed: int) -> list[tuple[int, int]]:
    rng = np.random.default_rng(seed)
    return [(int(rng.integers(1, 1000)), int(rng.integers(1, 1000))) for _ in range(n)]


class Tally:
    """Checks each call's response and keeps the escalation/stop counts and costs."""

    def __init__(self) -> None:
        self.steps: Counter[str] = Counter()
        self.escalated: list[bool] = []  # wrong cheap answers, after the warm-up
        self.stopped: list[bool] = []  # right cheap answers, after the warm-up
        self.costs: list[float] = []  # after the warm-up

    def check(self, i: int, a: int, b: int, text: str, routed: dict[str, Any]) -> None:
        models = [s["model"] for s in routed["steps"]]
        # The text is exactly the answer of the model the response names.
        wrong = routed["model"] == "small" and a % 2 == 1
        assert text == f"The sum is {a + b + int(wrong)}."
        assert routed["plan"] == "cascade"
        assert routed["chosen"] == models[0]
        assert len(set(models)) == len(models) >= 1
        for step in routed["steps"]:
            assert step["error"] is None
            assert step["cost_usd"] == pytest.approx(COST[step["model"]])
            assert 0.0 <= step["estimate"] <= 1.0
            assert 0.0 <= step["ex_ante"] <= 1.0
        # The evaluator's score is the estimate: 0 exactly for a wrong cheap answer.
        assert [s["estimate"] for s in routed["steps"]] == [
            0.0 if m == "small" and a % 2 else 1.0 for m in models
        ]
        assert routed["cost_usd"] == pytest.approx(sum(COST[m] for m in models))
        self.steps.update(models)
        if i >= WARM_UP:
            self.costs.append(routed["cost_usd"])
            if models[0] == "small":
                if a % 2:
                    self.escalated.append(len(models) > 1)
                else:
                    self.stopped.append(len(models) == 1)

    def rates(self) -> tuple[float, float, float]:
        return (
            float(np.mean(self.escalated)),
            float(np.mean(self.stopped)),
            float(np.mean(self.costs)),
        )

    def counted(self, stats: dict[str, Any]) -> bool:
        """Whether ``stats()`` counts exactly the steps seen."""
        return {m: stats[m].calls for m in ("small", "large")} == dict(self.steps)
