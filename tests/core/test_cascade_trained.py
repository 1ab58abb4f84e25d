"""A trained cascade estimator: fitted, saved next to its scorer, loaded, used live."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pickllm.cascade import make_strategy
from pickllm.cascade.trained import fit_learned_estimator, load_estimator, save_estimator
from pickllm.data import load_outcomes
from pickllm.errors import ConfigError, StateError
from pickllm.learn import train
from pickllm.types import Candidate


def test_trained_estimator_round_trip_and_live_use(tmp_path: Path) -> None:
    table = load_outcomes("routerbench_subset")
    rows = table.rows(split="train")[:150]
    scorer = train(table, "selectllm", rows=rows, learner="logistic", seed=0)
    ante = np.zeros(table.quality.shape)
    ante[rows] = np.clip(scorer.training_predictions()[0], 0.0, 1.0)
    fitted = fit_learned_estimator(table, ante, rows, seed=0)
    scorer.save(tmp_path)
    save_estimator(fitted, table.models, tmp_path)
    estimator = load_estimator(tmp_path)

    names = list(table.models[:3])
    q, sigma, cost = estimator.ex_ante("Which planet is largest?\nA) Mars B) Jupiter", names, 40)
    assert q.shape == (3,)
    assert sigma.shape == (3, 3)
    assert cost is not None
    assert np.all(cost > 0)
    with pytest.raises(ConfigError, match="knows"):
        estimator.ex_ante("q", ["no-such-model"], 10)

    pool = [Candidate(name=m, input_price=1.0, output_price=1.0) for m in names]
    strategy = make_strategy(
        "cascade_routing", candidates=pool, budget_usd=1e-3, estimator=estimator, seed=0
    )
    session = strategy.start("Which planet is largest?\nA) Mars B) Jupiter", pool, prompt_tokens=40)
    seen = 0
    while (model := session.next_model()) is not None:
        post = session.observe(model, "B", cost_usd=1e-4, latency_s=0.1)
        assert 0.0 <= post <= 1.0
        seen += 1
    assert seen >= 1
    assert session.final() in names
    strategy.settle(session)

    (tmp_path / "cascade_estimator.json").unlink()
    with pytest.raises(StateError):
        load_estimator(tmp_path)
