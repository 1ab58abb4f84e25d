"""A LangChain chain whose model is routed per call and learns from a reference-based score.

Runs offline: the three candidates are ``ReplayChatModel`` s that answer RouterBench prompts
(ARC-Challenge, Winogrande) with the responses and costs the real models recorded. The chain
is an ordinary ``prompt | model | parser``; the only change is the model. A
``MultipleChoice`` evaluator scores each answer against the reference derived from the data,
so the router learns which model gives the best quality for the cost.

Run: ``python examples/langchain_chain.py``
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from langchain_pickllm import ChatPickLLM, ReplayChatModel
from pickllm.evaluation import MultipleChoice
from pickllm.replay import ReplayStore

MODELS = ("gpt-4-1106-preview", "gpt-3.5-turbo-1106", "mistralai/mistral-7b-chat")


def main(n_questions: int = 200, seed: int = 0) -> dict[str, Any]:
    """Answer ``n_questions`` benchmark questions through a routed chain; print a summary."""
    store = ReplayStore.load("routerbench_subset")
    references = store.references()
    llm = ChatPickLLM(
        models=[ReplayChatModel(model=name) for name in MODELS],
        # Recorded costs are per call; these implied per-token prices let the objective
        # normalise the cost between the cheapest and the dearest model.
        prices={name: (store.blended_price(name),) * 2 for name in MODELS},
        policy="thompson",
        quality=1.0,
        cost=0.5,
        latency=0.0,
        evaluator=MultipleChoice(references=references),
        seed=seed,
    )
    chain = ChatPromptTemplate.from_messages([("human", "{question}")]) | llm | StrOutputParser()

    rng = np.random.default_rng(seed)
    questions = store.prompts(with_reference=True)
    picked = rng.choice(len(questions), size=n_questions, replace=False)
    correct = 0
    for i in picked:
        question = questions[i]
        answer = chain.invoke({"question": question})
        correct += MultipleChoice()(question, answer, reference=references[question]) == 1.0

    stats = llm.stats()
    routed_cost = sum(s.total_cost_usd for s in stats.values())
    gpt4_cost = sum(store.lookup(questions[i], MODELS[0]).cost_usd or 0.0 for i in picked)
    gpt4_correct = sum(store.lookup(questions[i], MODELS[0]).quality for i in picked)
    calls = Counter({name: s.calls for name, s in stats.items()})
    print(f"{n_questions} questions, routed by {llm.router.policy.name if llm.router else '?'}")
    print(f"{'model':<28} {'calls':>6} {'mean reward':>12} {'cost $':>10}")
    for name, s in stats.items():
        print(f"{name:<28} {s.calls:>6} {s.mean_reward:>12.3f} {s.total_cost_usd:>10.4f}")
    print(f"routed:      accuracy {correct / n_questions:.3f}, cost ${routed_cost:.4f}")
    print(f"always GPT-4: accuracy {gpt4_correct / n_questions:.3f}, cost ${gpt4_cost:.4f}")
    return {
        "accuracy": correct / n_questions,
        "cost_usd": routed_cost,
        "gpt4_accuracy": gpt4_correct / n_questions,
        "gpt4_cost_usd": gpt4_cost,
        "calls": dict(calls),
    }


if __name__ == "__main__":
    main()
