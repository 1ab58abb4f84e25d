"""ChatPickLLM as a drop-in: prices resolved from the database, feedback from anywhere."""

from __future__ import annotations

import asyncio
import contextvars
import json
import math
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from genai_prices import Usage as DbUsage
from genai_prices import calc_price
from langchain.agents import create_agent
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_core.tools import tool
from langchain_core.tracers.context import collect_runs

from langchain_pickllm import ChatPickLLM, FakeToolChatModel
from langchain_pickllm._runs import RunLineage
from pickllm import Objective
from pickllm.errors import ConfigError, UnknownDecisionError
from tests.langchain.unit_tests.conftest import fakes

MakeLLM = Callable[..., ChatPickLLM]


class ProviderFake(FakeToolChatModel):
    """A fake that reports a provider to LangSmith, as real integrations do."""

    provider: str = "openai"

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        return LangSmithParams(
            ls_provider=self.provider, ls_model_name=self.model_name, ls_model_type="chat"
        )


def _pool() -> list[FakeToolChatModel]:
    return [
        ProviderFake(model="gpt-4o-mini", provider="openai", answer="Paris."),
        ProviderFake(model="claude-3-5-haiku-latest", provider="anthropic", answer="Paris!"),
    ]


def _db_cost(provider: str, model: str, usage: dict[str, Any]) -> float:
    calc = calc_price(
        DbUsage(input_tokens=usage["input_tokens"], output_tokens=usage["output_tokens"]),
        model,
        provider_id=provider,
    )
    return float(calc.total_price)


# ====================================================================== prices
def test_no_prices_routes_and_records_the_database_costs() -> None:
    llm = ChatPickLLM(models=_pool(), policy="random", seed=3)
    seen = set()
    for _ in range(12):
        answer = llm.invoke("What is the capital of France?")
        routed = answer.response_metadata["pickllm"]
        provider = answer.response_metadata["ls_provider"]
        assert answer.usage_metadata is not None
        expected = _db_cost(provider, routed["model"], dict(answer.usage_metadata))
        assert expected > 0
        assert routed["cost_usd"] == pytest.approx(expected, rel=1e-9)
        assert routed["cost_estimated"] is False
        seen.add(routed["model"])
    assert seen == {"gpt-4o-mini", "claude-3-5-haiku-latest"}
    spend = {name: s.total_cost_usd for name, s in llm.stats().items()}
    assert all(cost > 0 for cost in spend.values())


def test_user_prices_override_the_database() -> None:
    llm = ChatPickLLM(
        models=_pool(), prices={"gpt-4o-mini": (100.0, 200.0)}, policy="cheapest", seed=0
    )
    by_name = {c.name: c for c in llm.engine.router.candidates}
    assert (by_name["gpt-4o-mini"].input_price, by_name["gpt-4o-mini"].output_price) == (
        100.0,
        200.0,
    )
    answer = llm.invoke("Hi")  # the database's haiku is now the cheapest
    assert answer.response_metadata["pickllm"]["model"] == "claude-3-5-haiku-latest"


def test_a_pool_name_is_an_alias_the_model_name_is_looked_up() -> None:
    llm = ChatPickLLM(models={"small": ProviderFake(model="gpt-4o-mini")}, seed=0)
    (candidate,) = llm.engine.router.candidates
    assert candidate.name == "small"
    per_million = calc_price(DbUsage(input_tokens=10**6), "gpt-4o-mini", provider_id="openai")
    assert candidate.input_price == pytest.approx(float(per_million.total_price))


def test_a_model_the_database_does_not_know_is_named() -> None:
    pool = [*_pool(), ProviderFake(model="my-finetune", provider="ollama")]
    with pytest.raises(ConfigError, match=r"no price for model\(s\) \['my-finetune'\]") as info:
        ChatPickLLM(models=pool)
    assert "provider 'ollama'" in str(info.value)
    assert "or set cost=0" in str(info.value)


# ====================================================================== feedback
def _chain(llm: ChatPickLLM) -> Runnable[dict[str, str], str]:
    prompt = ChatPromptTemplate.from_messages([("user", "{question}")])
    return prompt | llm | StrOutputParser()


def _llm(make_llm: MakeLLM, **kwargs: Any) -> ChatPickLLM:
    return make_llm(policy="thompson", **kwargs)


def _state(llm: ChatPickLLM) -> str:
    return json.dumps(llm.engine.router.policy.state_dict(), sort_keys=True)


def test_the_readme_snippet_works_as_written(make_llm: MakeLLM) -> None:
    llm = _llm(make_llm)  # no evaluator, no await_feedback: calls wait for a score
    answer = llm.invoke("What is the capital of France?")
    before = _state(llm)
    reward = llm.feedback(answer.response_metadata["pickllm"]["decision_id"], 1.0)
    assert reward is not None
    assert _state(llm) != before
    model = answer.response_metadata["pickllm"]["model"]
    assert llm.stats()[model].mean_reward == pytest.approx(reward)


def test_an_evaluator_keeps_learning_at_once(make_llm: MakeLLM) -> None:
    llm = _llm(make_llm, evaluator=lambda prompt, answer, **kw: None)
    answer = llm.invoke("Hi")
    assert llm.engine.router.pending() == 0
    with pytest.raises(UnknownDecisionError, match="is not pending"):
        llm.feedback(answer.response_metadata["pickllm"]["decision_id"], 1.0)


def test_feedback_by_the_chain_run_id_updates_the_policy(make_llm: MakeLLM) -> None:
    llm = _llm(make_llm)
    run_id = uuid.uuid4()
    text = _chain(llm).invoke({"question": "Capital of France?"}, config={"run_id": run_id})
    assert text.startswith("Paris")
    assert llm.engine.router.pending() == 1
    before = _state(llm)
    reward = llm.feedback(run_id, 0.9)
    assert reward is not None
    assert _state(llm) != before
    assert llm.engine.router.pending() == 0
    with pytest.raises(UnknownDecisionError, match="already"):
        llm.feedback(str(run_id), 0.9)  # scored once


def test_the_score_is_part_of_the_reward(make_llm: MakeLLM) -> None:
    rewards = []
    for score in (0.0, 1.0):
        llm = _llm(make_llm, models=fakes(), cost=0.0, latency=0.0)
        run_id = uuid.uuid4()
        _chain(llm).invoke({"question": "Capital?"}, config={"run_id": run_id})
        rewards.append(llm.feedback(run_id, score))
    assert rewards == [0.0, 1.0]  # quality is the only weight here


def test_feedback_by_collect_runs_and_through_nested_runs(make_llm: MakeLLM) -> None:
    llm = _llm(make_llm)
    inner = _chain(llm)
    outer: RunnableLambda[str, str] = RunnableLambda(
        lambda question: inner.invoke({"question": question})
    )
    with collect_runs() as runs:
        outer.invoke("Capital of France?")
    (top,) = runs.traced_runs  # the outer lambda's run, two levels above the model
    assert llm.feedback(top.id, 0.7) is not None
    assert llm.engine.router.pending() == 0


def test_a_chain_making_several_routed_calls_scores_them_all(make_llm: MakeLLM) -> None:
    llm = _llm(make_llm)
    twice = _chain(llm) | RunnableLambda(lambda text: [HumanMessage(f"Shorter: {text}")]) | llm
    run_id = uuid.uuid4()
    twice.invoke({"question": "Capital of France?"}, config={"run_id": run_id})
    assert llm.engine.router.pending() == 2
    assert len(llm.engine.decision_ids(str(run_id))) == 2
    llm.feedback(run_id, 0.8)
    assert llm.engine.router.pending() == 0


async def test_feedback_by_run_id_of_streamed_and_async_chains(make_llm: MakeLLM) -> None:
    llm = _llm(make_llm)
    chain = _chain(llm)
    streamed, awaited, astreamed = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    assert "".join(chain.stream({"question": "a?"}, config={"run_id": streamed}))
    assert await chain.ainvoke({"question": "b?"}, config={"run_id": awaited})
    assert [c async for c in chain.astream({"question": "c?"}, config={"run_id": astreamed})]
    assert llm.engine.router.pending() == 3
    for run_id in (streamed, awaited, astreamed):
        assert llm.feedback(run_id, 1.0) is not None
    assert llm.engine.router.pending() == 0


def test_feedback_by_the_agent_run_id(make_llm: MakeLLM) -> None:
    @tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    llm = _llm(make_llm)
    agent = create_agent(llm, tools=[add])
    run_id = uuid.uuid4()
    question: Any = {"messages": [("user", "What is 3 + 3?")]}
    result = agent.invoke(question, config={"run_id": run_id})
    assert any(isinstance(m, ToolMessage) for m in result["messages"])
    calls = llm.engine.decision_ids(str(run_id))
    assert len(calls) == 2  # the tool call, then the answer
    assert llm.engine.router.pending() == 2
    before = _state(llm)
    assert llm.feedback(run_id, 1.0) is not None
    assert _state(llm) != before
    assert llm.engine.router.pending() == 0


def test_track_scores_every_call_of_the_block(make_llm: MakeLLM) -> None:
    llm = _llm(make_llm)
    other = _llm(make_llm)
    chain = _chain(llm)
    chain.invoke({"question": "outside"})
    with llm.track() as tracked:
        chain.invoke({"question": "one"})
        chain.batch([{"question": "two"}, {"question": "three"}])  # LangChain's threads
        other.invoke("another router")
    assert len(tracked) == 3
    before = _state(llm)
    assert tracked.feedback(0.9) is not None
    assert _state(llm) != before
    assert llm.engine.router.pending() == 1  # the call made outside the block waits
    assert other.engine.router.pending() == 1
    with pytest.raises(UnknownDecisionError):
        tracked.feedback(0.9)  # all scored already


async def test_track_async_sees_tasks_and_copied_contexts(make_llm: MakeLLM) -> None:
    llm = _llm(make_llm)
    chain = _chain(llm)
    async with llm.track() as tracked:
        await chain.ainvoke({"question": "one"})
        await asyncio.gather(*(chain.ainvoke({"question": q}) for q in ("two", "three")))
        context = contextvars.copy_context()
        await asyncio.to_thread(context.run, chain.invoke, {"question": "four"})
    await chain.ainvoke({"question": "after"})
    assert len(tracked) == 4
    before = _state(llm)
    assert tracked.feedback(0.5) is not None
    assert _state(llm) != before
    assert llm.engine.router.pending() == 1


def test_an_empty_block_has_nothing_to_score(make_llm: MakeLLM) -> None:
    llm = _llm(make_llm)
    with llm.track() as tracked:
        pass
    with pytest.raises(UnknownDecisionError, match="none was made"):
        tracked.feedback(1.0)


# ====================================================================== expiry
def test_a_call_never_scored_is_learned_from_when_it_expires(make_llm: MakeLLM, clock: Any) -> None:
    objective = Objective(quality=1.0, cost=0.0, latency=0.0, missing_quality=0.25)
    llm = _llm(make_llm, objective=objective, pending_ttl_s=60.0)
    first = llm.invoke("first").response_metadata["pickllm"]
    assert llm.engine.router.pending() == 1
    assert math.isnan(llm.stats()[first["model"]].mean_reward)
    clock.now += 61.0
    llm.invoke("second")  # each routed call expires what waited too long
    assert llm.engine.router.pending() == 1
    assert llm.stats()[first["model"]].mean_reward == pytest.approx(0.25)  # missing_quality
    with pytest.raises(UnknownDecisionError) as info:
        llm.feedback(first["decision_id"], 1.0)
    assert info.value.reason == "expired"


def test_max_pending_expires_the_oldest_call(make_llm: MakeLLM) -> None:
    llm = _llm(make_llm, max_pending=1)
    first = llm.invoke("first").response_metadata["pickllm"]["decision_id"]
    second = llm.invoke("second").response_metadata["pickllm"]["decision_id"]
    with pytest.raises(UnknownDecisionError) as info:
        llm.feedback(first, 1.0)
    assert info.value.reason == "expired"
    assert llm.feedback(second, 1.0) is not None


def test_pending_bounds_come_with_the_router(make_llm: MakeLLM) -> None:
    llm = _llm(make_llm)
    with pytest.raises(ConfigError, match=r"\['pending_ttl_s'\] cannot be given together"):
        ChatPickLLM(models=fakes(), router=llm.engine.router, pending_ttl_s=5.0)


def test_run_lineage_follows_parents_and_forgets_ended_runs() -> None:
    lineage = RunLineage(max_runs=3)
    top, middle, model = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    lineage.on_chain_start({}, {}, run_id=top)
    lineage.on_tool_start({}, "x", run_id=middle, parent_run_id=top)
    lineage.on_chat_model_start({}, [], run_id=model, parent_run_id=middle)
    assert lineage.ancestors(model) == [str(middle), str(top)]
    assert lineage.ancestors(str(model), parent_run_id=str(middle)) == [str(middle), str(top)]
    assert lineage.ancestors("chatcmpl-not-a-uuid") == []
    lineage.on_tool_end("done", run_id=middle)
    assert lineage.ancestors(model) == [str(middle)]  # the ended run's parent is forgotten
    for _ in range(3):
        lineage.on_chain_start({}, {}, run_id=uuid.uuid4())
    assert lineage.ancestors(model) == []  # bounded: the oldest runs are forgotten
    assert "runs_in_progress=3" in repr(lineage)
