"""Scores that arrive later: a user's thumbs-up, and an evaluator running in the background.

Runs offline over ``ReplayChatModel`` s (RouterBench prompts with recorded answers).

1. ``await_feedback=True``: each call's cost and latency are recorded at once, and the
   policy learns from the call when the user's rating arrives, by decision id (from the
   answer's ``response_metadata["pickllm"]``) or by the LangChain run id (from a tracer).
   Here the "user" rates a batch of answers after the batch, using the recorded
   correctness as the rating.
2. ``evaluate_in_background=True``: the evaluator scores each answer on a worker thread
   after the call has returned; ``llm.evaluation.join()`` waits for the scores.

Run: ``python examples/langchain_delayed_feedback.py``
"""

from __future__ import annotations

from typing import Any

import numpy as np
from langchain_core.tracers.context import collect_runs

from langchain_pickllm import ChatPickLLM, ReplayChatModel
from pickllm.evaluation import MultipleChoice
from pickllm.replay import ReplayStore

MODELS = ("gpt-3.5-turbo-1106", "mistralai/mistral-7b-chat")


def make_llm(store: ReplayStore, seed: int, **kwargs: Any) -> ChatPickLLM:
    """A router over the replayed models."""
    return ChatPickLLM(
        models=[ReplayChatModel(model=name) for name in MODELS],
        prices={name: (store.blended_price(name),) * 2 for name in MODELS},
        policy="thompson",
        quality=1.0,
        cost=0.2,
        latency=0.0,
        seed=seed,
        **kwargs,
    )


def user_ratings(store: ReplayStore, questions: list[str], seed: int) -> dict[str, Any]:
    """Part 1: ratings given after each batch of ten answers."""
    llm = make_llm(store, seed, await_feedback=True)
    rated = by_run_id = 0
    for start in range(0, len(questions), 10):
        batch = questions[start : start + 10]
        with collect_runs() as runs:
            answers = [llm.invoke(q) for q in batch]
        # Later: the user rates each answer. Half the ratings name the decision id, half
        # the LangChain run id that a tracer (here collect_runs) recorded.
        for k, (question, answer, run) in enumerate(
            zip(batch, answers, runs.traced_runs, strict=True)
        ):
            rating = store.lookup(question, answer.response_metadata["pickllm"]["model"]).quality
            if k % 2:
                llm.feedback(run.id, rating)
                by_run_id += 1
            else:
                llm.feedback(answer.response_metadata["pickllm"]["decision_id"], rating)
            rated += 1
    stats = llm.stats()
    waiting = llm.router.pending() if llm.router is not None else 0
    print(f"user ratings: {rated} ({by_run_id} by run id); still waiting: {waiting}")
    for name, s in stats.items():
        print(f"  {name:<28} calls {s.calls:>3}  mean reward {s.mean_reward:.3f}")
    return {"rated": rated, "by_run_id": by_run_id, "calls": {n: s.calls for n, s in stats.items()}}


def background_evaluator(store: ReplayStore, questions: list[str], seed: int) -> dict[str, Any]:
    """Part 2: an evaluator scoring on a worker thread."""
    llm = make_llm(
        store,
        seed,
        evaluator=MultipleChoice(references=store.references()),
        evaluate_in_background=True,
    )
    for question in questions:
        llm.invoke(question)
    runner = llm.evaluation
    assert runner is not None
    runner.join()
    print(f"background evaluator: {runner.scored} scores joined, {runner.errors} errors")
    for name, s in llm.stats().items():
        print(f"  {name:<28} calls {s.calls:>3}  mean reward {s.mean_reward:.3f}")
    return {"scored": runner.scored, "errors": runner.errors}


def main(n_questions: int = 60, seed: int = 0) -> dict[str, Any]:
    """Run both parts."""
    store = ReplayStore.load("routerbench_subset")
    pool = store.prompts(with_reference=True)
    rng = np.random.default_rng(seed)
    questions = [pool[i] for i in rng.choice(len(pool), size=n_questions, replace=False)]
    return {
        "user": user_ratings(store, questions, seed),
        "background": background_evaluator(store, questions, seed),
    }


if __name__ == "__main__":
    main()
