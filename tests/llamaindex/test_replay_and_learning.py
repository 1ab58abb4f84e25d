"""ReplayLLM (recorded RouterBench answers) and PickLLM learning through LlamaIndex."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.base.llms.types import ChatMessage, CompletionResponse, MessageRole
from llama_index.core.llms import MockLLM

from llamaindex_pickllm import PickLLM, ReplayLLM
from pickllm.errors import ConfigError, UnknownDecisionError
from pickllm.evaluation import MultipleChoice
from pickllm.policies import Fixed
from pickllm.replay import ReplayStore, UnknownPromptError

STORE = ReplayStore.load()
MODELS = ("mistralai/mistral-7b-chat", "zero-one-ai/Yi-34B-Chat", "gpt-4-1106-preview")
PRICES = {m: (STORE.blended_price(m), STORE.blended_price(m)) for m in MODELS}


def raw_of(response: CompletionResponse) -> dict[str, Any]:
    raw = response.raw
    assert isinstance(raw, dict)
    return raw


def test_replay_llm_answers_as_recorded() -> None:
    prompt = STORE.prompt_text("arc-challenge.test.1108")
    llm = ReplayLLM(model="gpt-4-1106-preview")
    response = llm.complete(prompt)
    record = STORE.lookup(prompt, "gpt-4-1106-preview")
    assert response.text == record.response
    assert raw_of(response)["usage"] == {"cost_usd": record.cost_usd}
    assert raw_of(response)["replay"]["quality"] == record.quality
    chat = llm.chat([ChatMessage(role=MessageRole.USER, content=prompt)])
    assert chat.message.content == record.response
    assert [c.delta for c in llm.stream_complete(prompt)] == [record.response]
    assert asyncio.run(llm.acomplete(prompt)).text == record.response


def test_replay_llm_errors_name_what_exists() -> None:
    with pytest.raises(ConfigError, match="gpt-4-1106-preview"):
        ReplayLLM(model="no-such-model")
    with pytest.raises(UnknownPromptError, match="arc-challenge"):
        ReplayLLM(model="gpt-4-1106-preview").complete("What is the meaning of life?")


def test_pickllm_reports_the_recorded_cost_and_estimated_tokens() -> None:
    prompt = STORE.prompt_text("winogrande.dev.949")
    llm = PickLLM(
        models={m: ReplayLLM(model=m) for m in MODELS}, prices=PRICES, policy=Fixed(model=MODELS[2])
    )
    response = llm.complete(prompt)
    info = response.additional_kwargs["pickllm"]
    record = STORE.lookup(prompt, MODELS[2])
    assert info["cost_usd"] == record.cost_usd
    assert info["cost_estimated"] is True
    assert raw_of(response)["usage"]["prompt_tokens"] == record.input_tokens
    assert raw_of(response)["usage"]["cost_usd"] == record.cost_usd


def _run(policy: object, prompts: list[str]) -> tuple[PickLLM, list[str]]:
    llm = PickLLM(
        models={m: ReplayLLM(model=m) for m in MODELS},
        prices=PRICES,
        policy=policy,
        seed=0,
        evaluator=MultipleChoice(references=STORE.references()),
        evaluate_in_background=False,
        quality=1.0,
        cost=0.5,
        latency=0.0,
    )
    picks = [llm.complete(p).additional_kwargs["pickllm"]["model"] for p in prompts]
    return llm, picks


def test_learning_through_llamaindex_moves_toward_the_best_model() -> None:
    # 300 ARC-Challenge prompts (seed 0), three recorded models, reward = quality (recorded
    # answers scored by MultipleChoice against the reference) and cost (weight 0.5).
    prompts = STORE.prompts(task="arc-challenge", with_reference=True)
    order = np.random.default_rng(0).permutation(len(prompts))[:300]
    sample = [prompts[i] for i in order]
    # The best model under these weights, measured on the same prompts by routing all of
    # them to each model: Yi-34B (mean reward 0.93, against 0.81 for Mistral-7B and 0.71 for
    # GPT-4).
    means = {m: _run(Fixed(model=m), sample)[0].stats()[m].mean_reward for m in MODELS}
    best = max(means, key=means.__getitem__)
    assert best == "zero-one-ai/Yi-34B-Chat"
    # PickLLM's learning automaton, seed 0: at least 80 of the last 100 calls go to the
    # best model (measured: 100, and 78 of the first 100), far above the 33 of uniform routing.
    llm, picks = _run("learning_automaton", sample)
    assert picks[-100:].count(best) >= 80
    assert picks[:100].count(best) < picks[-100:].count(best)
    assert llm.stats()[best].mean_reward == pytest.approx(means[best], abs=0.05)


# ---------------------------------------------------------------------- track()
def test_track_collects_the_calls_of_a_query_for_delayed_feedback() -> None:
    llm = PickLLM(
        models={"short": MockLLM(max_tokens=3), "long": MockLLM(max_tokens=8)},
        cost=0.0,
        policy="thompson",
        seed=0,
        await_feedback=True,
    )
    engine = VectorStoreIndex.from_documents(
        [Document(text="Paris is in France.")]
    ).as_query_engine(llm=llm)
    with llm.track() as calls:
        engine.query("Where is Paris?")
    assert len(calls) >= 1
    assert llm.core_router.pending() == len(calls)
    assert llm.feedback(calls, 1.0) is not None
    assert llm.core_router.pending() == 0
    with pytest.raises(UnknownDecisionError):
        llm.feedback(calls, 1.0)


async def test_track_is_per_task_and_sees_subtasks() -> None:
    llm = PickLLM(
        models={"a": MockLLM(), "b": MockLLM(max_tokens=2)}, cost=0.0, policy="random", seed=0
    )
    other = PickLLM(models={"a": MockLLM()}, cost=0.0)

    async def outside() -> None:
        await llm.acomplete("not tracked")

    with llm.track() as calls:
        await asyncio.gather(llm.acomplete("x"), llm.acomplete("y"))
        other.complete("another PickLLM")
    await outside()
    assert len(calls) == 2
    with llm.track() as outer, llm.track() as inner:
        llm.complete("z")
    assert outer.decision_ids == inner.decision_ids


def test_streamed_replay_reports_the_recorded_cost() -> None:
    prompt = STORE.prompt_text("winogrande.dev.949")
    llm = PickLLM(
        models={m: ReplayLLM(model=m) for m in MODELS}, prices=PRICES, policy=Fixed(model=MODELS[0])
    )
    chunks = list(llm.stream_complete(prompt))
    assert (
        chunks[-1].additional_kwargs["pickllm"]["cost_usd"]
        == STORE.lookup(prompt, MODELS[0]).cost_usd
    )
