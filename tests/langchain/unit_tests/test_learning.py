"""Learning through LangChain: 300 routed calls over replayed RouterBench models.

Three ``ReplayChatModel`` s answer ARC-Challenge and Winogrande prompts with the responses and
costs the real models recorded; a ``MultipleChoice`` evaluator scores each answer against the
reference derived from the data. Under the weights quality=1, cost=0.5, latency=0 the best
model in expectation is gpt-3.5-turbo-1106 (computed below from the data, not assumed).

Thompson sampling, seeds 0-4. Threshold: averaged over the seeds, the best model serves at
least 60% of the last 100 calls (a uniform router would give it 33%) and more than in the
first 100. (One seed's run is one draw: with the engine's seed split, seed 0 alone gives 58%
and seed 7 42%, seed 1 93%; the average is what the router promises.)
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from langchain_pickllm import ChatPickLLM, ReplayChatModel
from pickllm import Candidate, Feedback, Objective, PriceRange
from pickllm.evaluation import MultipleChoice
from pickllm.replay import ReplayStore
from tests.langchain.unit_tests.conftest import FakeClock

MODELS = ("gpt-4-1106-preview", "gpt-3.5-turbo-1106", "mistralai/mistral-7b-chat")
SEEDS = range(5)
CALLS = 300
THRESHOLD = 0.60


def test_routing_moves_toward_the_best_model_under_the_weights() -> None:
    store = ReplayStore.load("routerbench_subset")
    prices = {name: (store.blended_price(name),) * 2 for name in MODELS}
    objective = Objective(quality=1.0, cost=0.5, latency=0.0)
    prompts = store.prompts(with_reference=True)

    # The best model in expectation under the weights, from the recorded outcomes.
    price_range = PriceRange.of(
        Candidate(name=n, input_price=p, output_price=q) for n, (p, q) in prices.items()
    )
    expected = {}
    for name in MODELS:
        rewards = []
        for prompt in prompts:
            rec = store.lookup(prompt, name)
            fb = Feedback(
                input_tokens=rec.input_tokens,
                output_tokens=rec.output_tokens,
                cost_usd=rec.cost_usd or 0.0,
                quality=rec.quality,
            )
            rewards.append(objective.reward(fb, price_range))
        expected[name] = float(np.mean(rewards))
    best = max(expected, key=expected.__getitem__)
    assert best == "gpt-3.5-turbo-1106"

    firsts, lasts = [], []
    for seed in SEEDS:
        first, last = _run(store, prices, objective, prompts, seed, best)
        firsts.append(first)
        lasts.append(last)
    assert float(np.mean(lasts)) >= THRESHOLD, (firsts, lasts)
    assert float(np.mean(lasts)) > float(np.mean(firsts)), (firsts, lasts)


def _run(  # noqa: PLR0917
    store: ReplayStore,
    prices: dict[str, tuple[float, float]],
    objective: Objective,
    prompts: list[str],
    seed: int,
    best: str,
) -> tuple[float, float]:
    """The best model's share of the first and of the last 100 calls of one seeded run."""
    llm = ChatPickLLM(
        models=[ReplayChatModel(model=name, store=store) for name in MODELS],
        prices=prices,
        objective=objective,
        policy="thompson",
        evaluator=MultipleChoice(references=store.references()),
        seed=seed,
        clock=FakeClock(),
    )
    order = np.random.default_rng(seed).choice(len(prompts), size=CALLS, replace=False)
    served = [llm.invoke(prompts[i]).response_metadata["pickllm"]["model"] for i in order]
    stats = llm.stats()
    assert sum(s.calls for s in stats.values()) == CALLS
    assert llm.evaluation is not None
    assert llm.evaluation.scored == CALLS  # every prompt has a reference
    # The recorded costs, not price-based ones, were learned from.
    assert stats[best].total_cost_usd == pytest.approx(
        sum(
            store.lookup(prompts[i], best).cost_usd or 0.0
            for i, name in zip(order, served, strict=True)
            if name == best
        )
    )
    return Counter(served[:100])[best] / 100, Counter(served[-100:])[best] / 100
