"""ChatPickLLM: construction, routing facts, streaming, failures, capabilities, feedback, state."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import pytest
from langchain_core.callbacks import get_usage_metadata_callback
from langchain_core.language_models import FakeListChatModel, FakeMessagesListChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool
from langchain_core.tracers.context import collect_runs
from pydantic import BaseModel

from langchain_pickllm import ChatPickLLM, FakeToolChatModel, ReplayChatModel
from pickllm import (
    ConfigError,
    Context,
    Decision,
    ExecutionError,
    NoCandidateError,
    Router,
    UnknownDecisionError,
    make_policy,
)
from pickllm.engine import RetryConfig
from pickllm.policies import Choice, Policy
from pickllm.pricing import PriceTable
from pickllm.replay import ReplayStore
from tests.langchain.unit_tests.conftest import PRICES, FakeClock, fakes

MakeLLM = Callable[..., ChatPickLLM]


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class Person(BaseModel):
    """A person."""

    name: str
    age: int


class EnsembleBoth(Policy):
    """Test policy: runs every candidate, answers with the longest text, records contexts."""

    name: ClassVar[str] = "test_ensemble_both"
    seen_keys: ClassVar[list[str | None]] = []

    def _select(self, context: Context) -> Choice:
        self.seen_keys.append(context.key)
        n = len(context.candidates)
        return Choice(index=0, probability=1.0, members=list(range(n)), kind="ensemble")

    def _update(self, decision: Decision, reward: float) -> None:
        pass

    def aggregate(self, answers: list[str]) -> int:
        return max(range(len(answers)), key=lambda i: len(answers[i]))


def fixed(name: str) -> Policy:
    return make_policy("fixed", model=name, seed=0)


# ---------------------------------------------------------------------- construction
def test_a_list_of_models_is_named_by_model_name() -> None:
    llm = ChatPickLLM(
        models=[FakeToolChatModel(model="a"), FakeToolChatModel(model="b")],
        prices={"a": (1.0, 2.0), "b": (3.0, 4.0)},
    )
    assert list(llm.models) == ["a", "b"]
    assert llm.router is not None
    assert [(c.name, c.input_price, c.output_price) for c in llm.router.candidates] == [
        ("a", 1.0, 2.0),
        ("b", 3.0, 4.0),
    ]


def test_duplicate_and_unnamed_models_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="two models are named 'a'"):
        ChatPickLLM(models=[FakeToolChatModel(model="a"), FakeToolChatModel(model="a")], cost=0)
    with pytest.raises(ConfigError, match="FakeListChatModel in models has no model_name"):
        ChatPickLLM(models=[FakeListChatModel(responses=["x"])], cost=0)
    with pytest.raises(ConfigError, match="at least one"):
        ChatPickLLM(models={}, cost=0)


def test_a_missing_price_is_an_error_only_when_cost_matters() -> None:
    with pytest.raises(ConfigError, match=r"no price for model\(s\) \['large'\].*cost=0.5"):
        ChatPickLLM(models=fakes(), prices={"small": (0.1, 0.4)}, cost=0.5)
    llm = ChatPickLLM(models=fakes(), prices={"small": (0.1, 0.4)}, cost=0.0)
    assert llm.router is not None
    assert llm.router.candidate("large").input_price == 0.0


def test_prices_may_be_a_price_table_and_weights_an_objective() -> None:
    from pickllm import Objective

    objective = Objective(quality=1.0, cost=0.1, latency=0.0)
    llm = ChatPickLLM(models=fakes(), prices=PriceTable(PRICES), objective=objective)
    assert llm.router is not None
    assert llm.router.objective is objective
    assert llm.router.candidate("large").output_price == 10.0


def test_a_given_router_must_route_between_the_models() -> None:
    other = Router(ChatPickLLM(models=fakes(), prices=PRICES).router.candidates[:1])  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="router's candidates"):
        ChatPickLLM(models=fakes(), router=other)
    router = ChatPickLLM(models=fakes(), prices=PRICES).router
    with pytest.raises(ConfigError, match="cannot be given together with router"):
        ChatPickLLM(models=fakes(), router=router, policy="ucb1")


def test_capability_overrides_are_checked() -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        ChatPickLLM(models=fakes(), prices=PRICES, capabilities={"small": {"vision": True}})
    with pytest.raises(ConfigError, match="not among the models"):
        ChatPickLLM(models=fakes(), prices=PRICES, capabilities={"tiny": {"tool_calling": True}})


def test_capabilities_come_from_profiles_and_bind_tools() -> None:
    models: dict[str, Any] = {
        "a": FakeToolChatModel(model="a", profile={"tool_calling": True, "max_input_tokens": 1000}),
        "b": FakeToolChatModel(
            model="b",
            profile={"tool_calling": True, "max_input_tokens": 500, "structured_output": False},
        ),
        "c": FakeListChatModel(responses=["x"]),
    }
    llm = ChatPickLLM(models=models, cost=0)
    assert llm.router is not None
    a, b, c = llm.router.candidates
    assert (a.tool_calling, a.structured_output, a.max_context_tokens) == (True, None, 1000)
    assert (b.tool_calling, b.structured_output, b.max_context_tokens) == (True, False, 500)
    assert (c.tool_calling, c.structured_output) == (False, False)
    # The router promises only what every candidate promises.
    two = ChatPickLLM(models={"a": models["a"], "b": models["b"]}, cost=0)
    assert two.profile == {"tool_calling": True, "max_input_tokens": 500}


# ---------------------------------------------------------------------- invoke
def test_invoke_reports_the_chosen_model_usage_and_routing_facts(make_llm: MakeLLM) -> None:
    llm = make_llm(policy=fixed("large"))
    answer = llm.invoke("What is the capital of France?")
    assert isinstance(answer, AIMessage)
    assert answer.content == "Paris, France."
    assert answer.response_metadata["model_name"] == "large-fake"
    assert answer.usage_metadata == {"input_tokens": 8, "output_tokens": 4, "total_tokens": 12}
    routed = answer.response_metadata["pickllm"]
    assert set(routed) == {
        "decision_id",
        "model",
        "chosen",
        "probability",
        "policy",
        "plan",
        "cost_usd",
        "cost_estimated",
        "latency_s",
        "attempts",
    }
    assert (routed["model"], routed["chosen"], routed["policy"], routed["plan"]) == (
        "large",
        "large",
        "fixed",
        "single",
    )
    assert routed["probability"] == 1.0
    assert routed["cost_usd"] == pytest.approx((8 * 2.5 + 4 * 10.0) / 1e6)
    assert routed["cost_estimated"] is False
    assert routed["latency_s"] == pytest.approx(0.01)  # one tick of the fake clock
    assert routed["attempts"] == 1
    stats = llm.stats()
    assert (stats["large"].calls, stats["small"].calls) == (1, 0)
    assert stats["large"].total_cost_usd == pytest.approx(routed["cost_usd"])


def test_a_model_without_usage_gets_estimated_tokens(make_llm: MakeLLM) -> None:
    llm = make_llm(
        models={"small": FakeListChatModel(responses=["Paris."]), "large": fakes()["large"]},
        policy=fixed("small"),
    )
    answer = llm.invoke("What is the capital of France?")
    assert answer.usage_metadata is None
    routed = answer.response_metadata["pickllm"]
    # 30 prompt characters -> 8 tokens; "Paris." -> 2 tokens, at (0.1, 0.4) USD / 1M.
    assert routed["cost_estimated"] is True
    assert routed["cost_usd"] == pytest.approx((8 * 0.1 + 2 * 0.4) / 1e6)
    assert answer.response_metadata["model_name"] == "small"


def test_batch_and_abatch_route_each_item(make_llm: MakeLLM) -> None:
    llm = make_llm(policy="random")
    answers = llm.batch(["q1", "q2", "q3", "q4", "q5", "q6"])
    ids = {a.response_metadata["pickllm"]["decision_id"] for a in answers}
    assert len(ids) == 6
    more = asyncio.run(llm.abatch(["q7", "q8", "q9"]))
    ids |= {a.response_metadata["pickllm"]["decision_id"] for a in more}
    assert len(ids) == 9
    assert sum(s.calls for s in llm.stats().values()) == 9


# ---------------------------------------------------------------------- streaming
def _merge(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    full = chunks[0]
    for chunk in chunks[1:]:
        full = full + chunk
    return full


def test_stream_puts_routing_facts_on_the_last_chunk_only(make_llm: MakeLLM) -> None:
    llm = make_llm(policy=fixed("small"))
    chunks = list(llm.stream("What is the capital of France?"))
    assert [c.content for c in chunks] == ["Paris.", ""]
    assert ["pickllm" in c.response_metadata for c in chunks] == [False, True]
    full = _merge(chunks)
    assert full.response_metadata["model_name"] == "small-fake"  # not concatenated
    assert full.usage_metadata == {"input_tokens": 8, "output_tokens": 2, "total_tokens": 10}
    routed = full.response_metadata["pickllm"]
    assert routed["model"] == "small"
    assert 0 < routed["time_to_first_token_s"] <= routed["latency_s"]
    assert llm.stats()["small"].calls == 1


async def test_astream_routes_and_records(make_llm: MakeLLM) -> None:
    llm = make_llm(policy=fixed("large"))
    chunks = [c async for c in llm.astream("What is the capital of France?")]
    full = _merge(chunks)
    assert full.content == "Paris, France."
    assert full.response_metadata["model_name"] == "large-fake"
    assert full.response_metadata["pickllm"]["time_to_first_token_s"] > 0
    assert llm.stats()["large"].calls == 1


async def test_a_model_that_cannot_stream_still_streams_one_chunk(make_llm: MakeLLM) -> None:
    child = FakeMessagesListChatModel(responses=[AIMessage(content="Paris.")])
    llm = make_llm(models={"small": child, "large": fakes()["large"]}, policy=fixed("small"))
    full = _merge(list(llm.stream("Capital of France?")))
    assert full.content == "Paris."
    assert full.response_metadata["model_name"] == "small"
    async_full = _merge([c async for c in llm.astream("Capital of France?")])
    assert async_full.content == "Paris."


def test_invoke_streams_when_streaming_is_set(make_llm: MakeLLM) -> None:
    llm = make_llm(policy=fixed("small"), streaming=True)
    answer = llm.invoke("Capital of France?")
    assert answer.content == "Paris."
    assert "time_to_first_token_s" in answer.response_metadata["pickllm"]


# ---------------------------------------------------------------------- failures
def test_an_error_falls_back_to_the_next_model(make_llm: MakeLLM) -> None:
    small = FakeToolChatModel(model="small-fake", answer="Paris.", errors=[ValueError("boom")])
    llm = make_llm(models=fakes(small=small), policy=fixed("small"))
    answer = llm.invoke("Capital of France?")
    routed = answer.response_metadata["pickllm"]
    assert (routed["chosen"], routed["model"], routed["attempts"]) == ("small", "large", 2)
    assert answer.content == "Paris, France."
    stats = llm.stats()
    assert (stats["small"].calls, stats["small"].errors, stats["large"].calls) == (1, 1, 1)


def test_a_transient_error_is_retried_with_the_injected_sleep(make_llm: MakeLLM) -> None:
    waits: list[float] = []
    small = FakeToolChatModel(model="small-fake", answer="Paris.", errors=[TimeoutError()])
    llm = make_llm(
        models=fakes(small=small),
        policy=fixed("small"),
        retry=RetryConfig(max_attempts=2, initial_wait_s=0.5, jitter_s=0.0),
        sleep=waits.append,
    )
    answer = llm.invoke("Capital of France?")
    assert answer.response_metadata["pickllm"]["model"] == "small"
    assert answer.response_metadata["pickllm"]["attempts"] == 2
    assert waits == [0.5]


def test_every_model_failing_raises_execution_error(make_llm: MakeLLM) -> None:
    models = fakes(
        small=FakeToolChatModel(model="s", errors=[ValueError("a")]),
        large=FakeToolChatModel(model="l", errors=[ValueError("b")]),
    )
    llm = make_llm(models=models, policy=fixed("small"))
    with pytest.raises(ExecutionError) as info:
        llm.invoke("Capital of France?")
    assert [f.candidate for f in info.value.attempts] == ["small", "large"]
    assert llm.stats()["large"].errors == 1


def test_a_fatal_error_is_raised_without_fallback(make_llm: MakeLLM) -> None:
    class AuthenticationError(Exception):
        pass

    small = FakeToolChatModel(model="s", errors=[AuthenticationError("bad key")])
    llm = make_llm(models=fakes(small=small), policy=fixed("small"))
    with pytest.raises(AuthenticationError):
        llm.invoke("Capital of France?")
    stats = llm.stats()
    assert (stats["small"].errors, stats["large"].calls) == (1, 0)


def test_stream_falls_back_before_the_first_chunk(make_llm: MakeLLM) -> None:
    small = FakeToolChatModel(model="small-fake", errors=[ValueError("boom")])
    llm = make_llm(models=fakes(small=small), policy=fixed("small"))
    full = _merge(list(llm.stream("Capital of France?")))
    assert full.content == "Paris, France."
    assert full.response_metadata["pickllm"]["model"] == "large"


# ---------------------------------------------------------------------- capabilities
def _pool_without_tools() -> dict[str, Any]:
    store = ReplayStore.load()
    return {
        "tools": FakeToolChatModel(model="tools"),
        "replay": ReplayChatModel(model="gpt-4-1106-preview", store=store),
        "list": FakeListChatModel(responses=["plain"]),
    }


def test_tool_calls_go_only_to_models_that_can_call_tools(clock: FakeClock) -> None:
    llm = ChatPickLLM(models=_pool_without_tools(), cost=0, policy="random", seed=0, clock=clock)
    bound = llm.bind_tools([add])
    served = {
        bound.invoke("What is 3 + 3?").response_metadata["pickllm"]["model"] for _ in range(20)
    }
    assert served == {"tools"}
    message = bound.invoke("What is 3 + 3?")
    assert isinstance(message, AIMessage)
    assert message.tool_calls[0]["args"] == {"a": 3, "b": 3}


def test_profile_and_overrides_exclude_tool_calling(clock: FakeClock) -> None:
    models = fakes(small=FakeToolChatModel(model="small-fake", profile={"tool_calling": False}))
    llm = ChatPickLLM(models=models, cost=0, policy="random", seed=0, clock=clock)
    bound = llm.bind_tools([add])
    assert {bound.invoke("3 + 3?").response_metadata["pickllm"]["model"] for _ in range(10)} == {
        "large"
    }
    override = ChatPickLLM(
        models=fakes(),
        cost=0,
        policy="random",
        seed=0,
        capabilities={"large": {"tool_calling": False}},
    )
    bound = override.bind_tools([add])
    assert {bound.invoke("3 + 3?").response_metadata["pickllm"]["model"] for _ in range(10)} == {
        "small"
    }


def test_no_model_able_to_call_tools_is_a_clear_error() -> None:
    pool = _pool_without_tools()
    del pool["tools"]
    llm = ChatPickLLM(models=pool, cost=0)
    with pytest.raises(NoCandidateError, match="no candidate can call tools"):
        llm.bind_tools([add])
    llm2 = ChatPickLLM(models=fakes(), cost=0, capabilities={"small": {"tool_calling": False}})
    bound = llm2.bind_tools([add])
    assert bound.invoke("3 + 3?").response_metadata["pickllm"]["model"] == "large"


def test_context_window_excludes_small_models(clock: FakeClock) -> None:
    llm = ChatPickLLM(
        models=fakes(),
        cost=0,
        policy="random",
        seed=0,
        clock=clock,
        capabilities={"small": {"max_context_tokens": 10}},
    )
    long_prompt = "word " * 40  # 200 characters, about 50 tokens
    served = {llm.invoke(long_prompt).response_metadata["pickllm"]["model"] for _ in range(10)}
    assert served == {"large"}
    short = {llm.invoke("Hi").response_metadata["pickllm"]["model"] for _ in range(20)}
    assert short == {"small", "large"}
    tiny = ChatPickLLM(
        models=fakes(),
        cost=0,
        capabilities={n: {"max_context_tokens": 10} for n in ("small", "large")},
    )
    with pytest.raises(NoCandidateError, match="context window"):
        tiny.invoke(long_prompt)


def test_native_structured_output_excludes_models_without_it(clock: FakeClock) -> None:
    llm = ChatPickLLM(
        models=fakes(),
        cost=0,
        policy="random",
        seed=0,
        clock=clock,
        capabilities={"small": {"structured_output": False}},
    )
    bound = llm.bind(response_format={"type": "json_object"})
    assert {bound.invoke("Hi").response_metadata["pickllm"]["model"] for _ in range(10)} == {
        "large"
    }


def test_with_structured_output_in_an_lcel_chain(make_llm: MakeLLM) -> None:
    llm = make_llm(policy="random")
    prompt = ChatPromptTemplate.from_messages([("human", "Extract the person from: {text}")])
    chain = prompt | llm.with_structured_output(Person)
    person = chain.invoke({"text": "'Ada' is 36."})
    assert person == Person(name="Ada", age=3)
    raw: Any = (prompt | llm.with_structured_output(Person, include_raw=True)).invoke(
        {"text": "'Bo'"}
    )
    assert raw["parsed"] == Person(name="Bo", age=3)
    assert raw["raw"].response_metadata["pickllm"]["model"] in {"small", "large"}


# ---------------------------------------------------------------------- usage callback
def test_usage_callback_counts_each_call_once(make_llm: MakeLLM) -> None:
    llm = make_llm(policy=fixed("small"))
    with get_usage_metadata_callback() as cb:
        llm.invoke("What is the capital of France?")
        list(llm.stream("What is the capital of France?"))
    once = {"input_tokens": 8, "output_tokens": 2, "total_tokens": 10}
    assert cb.usage_metadata == {"small-fake": {k: 2 * v for k, v in once.items()}}


async def test_usage_callback_counts_async_calls_once(make_llm: MakeLLM) -> None:
    llm = make_llm(policy=fixed("large"))
    with get_usage_metadata_callback() as cb:
        await llm.ainvoke("What is the capital of France?")
    assert cb.usage_metadata == {
        "large-fake": {"input_tokens": 8, "output_tokens": 4, "total_tokens": 12}
    }


# ---------------------------------------------------------------------- feedback
def test_delayed_feedback_by_decision_id(make_llm: MakeLLM) -> None:
    llm = make_llm(await_feedback=True)
    answer = llm.invoke("Capital of France?")
    router = llm.router
    assert router is not None
    assert router.pending() == 1
    name = answer.response_metadata["pickllm"]["model"]
    reward = llm.feedback(answer.response_metadata["pickllm"]["decision_id"], 1.0)
    assert reward is not None
    assert 0.0 <= reward <= 1.0
    assert router.pending() == 0
    assert llm.stats()[name].mean_reward == pytest.approx(reward)
    with pytest.raises(UnknownDecisionError):
        llm.feedback(answer.response_metadata["pickllm"]["decision_id"], 1.0)


def test_delayed_feedback_by_run_id_and_message_id(make_llm: MakeLLM) -> None:
    llm = make_llm(await_feedback=True)
    with collect_runs() as runs:
        first = llm.invoke("Capital of France?")
        llm.invoke("Capital of Spain?")
        list(llm.stream("Capital of Italy?"))
    invoke_run, second_run, stream_run = runs.traced_runs
    assert llm.decision_id(invoke_run.id) == first.response_metadata["pickllm"]["decision_id"]
    assert llm.feedback(invoke_run.id, 1.0) is not None
    assert llm.feedback(str(stream_run.id), 0.0) is not None
    # The message id LangChain gives an invoke answer is "lc_run--<run id>-0".
    assert llm.feedback(f"lc_run--{second_run.id}-0", 0.5) is not None
    assert llm.router is not None
    assert llm.router.pending() == 0


def test_feedback_after_learning_is_unknown(make_llm: MakeLLM) -> None:
    llm = make_llm(await_feedback=False)
    answer = llm.invoke("Capital of France?")
    with pytest.raises(UnknownDecisionError, match="is not pending"):
        llm.feedback(answer.response_metadata["pickllm"]["decision_id"], 1.0)


def test_the_run_id_map_is_bounded(make_llm: MakeLLM) -> None:
    llm = make_llm(max_tracked_runs=3)
    with collect_runs() as runs:
        for q in ("a", "b", "c", "d", "e"):
            llm.invoke(q)
    oldest, newest = runs.traced_runs[0].id, runs.traced_runs[-1].id
    with pytest.raises(UnknownDecisionError, match="the last 3 run ids"):
        llm.decision_id(oldest)  # forgotten
    assert llm.decision_id(newest) != str(newest)


async def test_async_calls_map_their_run_ids_too(make_llm: MakeLLM) -> None:
    llm = make_llm(await_feedback=True)
    with collect_runs() as runs:
        answer = await llm.ainvoke("Capital of France?")
        chunks = [c async for c in llm.astream("Capital of Spain?")]
    invoke_run, stream_run = runs.traced_runs
    assert llm.decision_id(invoke_run.id) == answer.response_metadata["pickllm"]["decision_id"]
    streamed = _merge(chunks).response_metadata["pickllm"]["decision_id"]
    assert llm.decision_id(stream_run.id) == streamed
    assert llm.feedback(stream_run.id, 1.0) is not None
    assert llm.feedback(answer.id or "", 0.0) is not None  # "lc_run--<run id>-0"
    assert llm.router is not None
    assert llm.router.pending() == 0


# ---------------------------------------------------------------------- evaluators
class Recorder:
    def __init__(self, score: float | None = 1.0) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.score = score

    def __call__(self, prompt: str, answer: str, **kwargs: Any) -> float | None:
        self.calls.append((prompt, answer, kwargs))
        return self.score


def test_inline_evaluator_scores_and_the_policy_learns(make_llm: MakeLLM) -> None:
    evaluator = Recorder(score=1.0)
    llm = make_llm(policy=fixed("small"), evaluator=evaluator)
    answer = llm.invoke([HumanMessage(content="Be brief."), HumanMessage(content="Capital?")])
    prompt, text, kwargs = evaluator.calls[0]
    assert (prompt, text) == ("Capital?", "Paris.")
    # The engine's keywords: the serving model, and the messages the wrapper passes.
    assert set(kwargs) == {"model", "messages", "decision_id", "raw_answer"}
    assert kwargs["model"] == answer.response_metadata["pickllm"]["model"] == "small"
    assert [m.content for m in kwargs["messages"]] == ["Be brief.", "Capital?"]
    assert llm.router is not None
    assert llm.router.pending() == 0
    assert llm.evaluation is not None
    assert llm.evaluation.scored == 1


def test_streamed_answers_are_evaluated_too(make_llm: MakeLLM) -> None:
    evaluator = Recorder(score=0.0)
    llm = make_llm(policy=fixed("large"), evaluator=evaluator)
    list(llm.stream("Capital?"))
    assert evaluator.calls[0][:2] == ("Capital?", "Paris, France.")
    assert llm.router is not None
    assert llm.router.pending() == 0


def test_an_unscored_answer_is_learned_from_at_once(make_llm: MakeLLM) -> None:
    llm = make_llm(policy=fixed("small"), evaluator=Recorder(score=None))
    answer = llm.invoke("Capital?")
    assert llm.router is not None
    assert llm.router.pending() == 0
    assert llm.stats()["small"].calls == 1
    with pytest.raises(UnknownDecisionError):
        llm.feedback(answer.response_metadata["pickllm"]["decision_id"], 1.0)
    # Unless the caller awaits feedback: then it waits for it.
    waiting = make_llm(evaluator=Recorder(score=None), await_feedback=True)
    answer = waiting.invoke("Capital?")
    assert waiting.router is not None
    assert waiting.router.pending() == 1
    assert waiting.feedback(answer.response_metadata["pickllm"]["decision_id"], 1.0) is not None


def test_a_failing_evaluator_is_logged_and_the_call_succeeds(
    make_llm: MakeLLM, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(prompt: str, answer: str) -> float:
        msg = "judge is down"
        raise RuntimeError(msg)

    llm = make_llm(evaluator=broken)
    with caplog.at_level(logging.WARNING, logger="pickllm.evaluation"):
        answer = llm.invoke("Capital?")
    assert answer.content in {"Paris.", "Paris, France."}
    assert llm.evaluation is not None
    assert llm.evaluation.errors == 1
    # The warning names the error's class only (its text may quote the prompt).
    assert "RuntimeError" in caplog.text
    assert llm.router is not None
    assert llm.router.pending() == 0  # unscored: learned from at once


def test_background_evaluator_scores_after_the_call_returns(make_llm: MakeLLM) -> None:
    gate = threading.Event()

    def slow(prompt: str, answer: str) -> float:
        gate.wait(timeout=10)
        return 1.0

    llm = make_llm(evaluator=slow, evaluate_in_background=True)
    llm.invoke("Capital?")
    runner = llm.evaluation
    assert runner is not None
    assert llm.router is not None
    assert runner.scored == 0
    assert llm.router.pending() == 1
    gate.set()
    assert runner.join(timeout=10)
    assert runner.scored == 1
    assert llm.router.pending() == 0


async def test_async_calls_use_the_evaluators_async_method(make_llm: MakeLLM) -> None:
    class Judge:
        def __init__(self) -> None:
            self.used: list[str] = []

        def __call__(self, prompt: str, answer: str) -> float:
            self.used.append("sync")
            return 1.0

        async def aevaluate(self, prompt: str, answer: str) -> float:
            self.used.append("async")
            return 1.0

    judge = Judge()
    llm = make_llm(evaluator=judge)
    await llm.ainvoke("Capital?")
    _ = [c async for c in llm.astream("Capital?")]
    llm.invoke("Capital?")
    assert judge.used == ["async", "async", "sync"]


# ---------------------------------------------------------------------- concurrency
def test_many_threads_share_one_model(make_llm: MakeLLM) -> None:
    llm = make_llm(policy="thompson", evaluator=Recorder(score=1.0))

    def work(i: int) -> list[str]:
        return [
            llm.invoke(f"q{i}-{j}").response_metadata["pickllm"]["decision_id"] for j in range(25)
        ]

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = [d for batch in pool.map(work, range(8)) for d in batch]
    assert len(set(ids)) == 200
    stats = llm.stats()
    assert sum(s.calls for s in stats.values()) == 200
    assert llm.router is not None
    assert llm.router.pending() == 0
    assert llm.evaluation is not None
    assert llm.evaluation.scored == 200


async def test_many_tasks_share_one_model(make_llm: MakeLLM) -> None:
    llm = make_llm(policy="ucb1", await_feedback=True)
    answers = await asyncio.gather(*(llm.ainvoke(f"q{i}") for i in range(100)))
    ids = {a.response_metadata["pickllm"]["decision_id"] for a in answers}
    assert len(ids) == 100
    for decision_id in ids:
        llm.feedback(decision_id, 1.0)
    assert sum(s.calls for s in llm.stats().values()) == 100
    assert llm.router is not None
    assert llm.router.pending() == 0


# ---------------------------------------------------------------------- state
def test_save_and_load_continue_where_it_left_off(make_llm: MakeLLM, tmp_path: Path) -> None:
    llm = make_llm(policy="thompson")
    for i in range(30):
        llm.invoke(f"warm-up {i}")
    path = tmp_path / "router.json"
    llm.save(path)
    loaded = ChatPickLLM.load(path, models=fakes(), clock=FakeClock(), sleep=lambda _s: None)
    assert loaded.router is not None
    assert llm.router is not None
    assert loaded.router.policy.state_dict() == llm.router.policy.state_dict()
    assert {n: s.calls for n, s in loaded.stats().items()} == {
        n: s.calls for n, s in llm.stats().items()
    }
    picks = [llm.invoke(f"q{i}").response_metadata["pickllm"]["model"] for i in range(10)]
    again = [loaded.invoke(f"q{i}").response_metadata["pickllm"]["model"] for i in range(10)]
    assert again == picks


def test_load_checks_the_models(make_llm: MakeLLM, tmp_path: Path) -> None:
    path = tmp_path / "router.json"
    make_llm().save(path)
    with pytest.raises(ConfigError, match="router's candidates"):
        ChatPickLLM.load(path, models={"small": FakeToolChatModel(model="s")})


# ---------------------------------------------------------------------- plans, overrides
def test_ensemble_answer_is_aggregated_with_summed_usage(make_llm: MakeLLM) -> None:
    llm = make_llm(policy=EnsembleBoth(seed=0), context_key=lambda messages: "geo")
    answer = llm.invoke("What is the capital of France?")
    routed = answer.response_metadata["pickllm"]
    assert answer.content == "Paris, France."  # the longest, by the policy's aggregate
    assert (routed["plan"], routed["model"]) == ("ensemble", "large")
    assert answer.response_metadata["model_name"] == "large-fake"
    assert answer.usage_metadata == {"input_tokens": 16, "output_tokens": 6, "total_tokens": 22}
    stats = llm.stats()
    assert (stats["small"].calls, stats["large"].calls) == (1, 1)
    assert EnsembleBoth.seen_keys[-1] == "geo"
    streamed = _merge(list(llm.stream("What is the capital of France?")))
    assert streamed.content == "Paris, France."
    assert streamed.response_metadata["pickllm"]["plan"] == "ensemble"


class WeightedVote(Policy):
    """Test policy shaped like LearnedPolicy: an ensemble of all, a weighted vote."""

    name: ClassVar[str] = "test_weighted_vote"
    weights: ClassVar[dict[str, float]] = {"a": 0.98, "b": 0.02, "c": 0.02}

    def _select(self, context: Context) -> Choice:
        n = len(context.candidates)
        return Choice(index=0, probability=1.0, members=list(range(n)), kind="ensemble")

    def _update(self, decision: Decision, reward: float) -> None:
        pass

    def member_weights(self, decision: Decision) -> list[float]:
        return [self.weights[m.name] for m in decision.members]

    def aggregate(self, answers: list[str], weights: list[float] | None = None) -> int:
        votes: dict[str, float] = {}
        for answer, weight in zip(answers, weights or [1.0] * len(answers), strict=True):
            votes[answer] = votes.get(answer, 0.0) + weight
        best = max(votes, key=votes.__getitem__)
        return answers.index(best)


def test_a_weighted_ensemble_vote_answers_with_the_confident_member(clock: FakeClock) -> None:
    models = {
        "a": FakeToolChatModel(model="a-fake", answer="A"),
        "b": FakeToolChatModel(model="b-fake", answer="B"),
        "c": FakeToolChatModel(model="c-fake", answer="B"),
    }
    llm = ChatPickLLM(
        models=models,
        quality=1.0,
        cost=0,
        latency=0,
        policy=WeightedVote(seed=0),
        await_feedback=True,
        clock=clock,
    )
    answer = llm.invoke("Which one?")
    routed = answer.response_metadata["pickllm"]
    # B has two votes of 0.02; A one of 0.98.
    assert answer.content == "A"
    assert (routed["plan"], routed["model"], routed["members"]) == (
        "ensemble",
        "a",
        ["a", "b", "c"],
    )
    assert answer.response_metadata["model_name"] == "a-fake"
    assert answer.usage_metadata is not None
    assert answer.usage_metadata["output_tokens"] == 3  # one token per member
    # Only the member whose answer was returned waits for the delayed score.
    assert llm.router is not None
    assert llm.router.pending() == 1
    assert llm.feedback(routed["decision_id"], 1.0) is not None
    stats = llm.stats()
    assert [stats[n].calls for n in "abc"] == [1, 1, 1]
    assert stats["a"].mean_reward == pytest.approx(1.0)
    assert stats["b"].mean_reward == stats["c"].mean_reward < 1.0  # learned without a score
    streamed = _merge(list(llm.stream("Which one?")))
    assert streamed.content == "A"
    assert streamed.response_metadata["pickllm"]["model"] == "a"


def test_a_tool_loop_stays_on_the_model_that_started_it(clock: FakeClock) -> None:
    llm = ChatPickLLM(models=fakes(), cost=0, policy="random", seed=0, clock=clock)
    bound = llm.bind_tools([add])
    started = []
    for _ in range(12):
        question = HumanMessage(content="What is 3 + 3?")
        call = bound.invoke([question])
        assert isinstance(call, AIMessage)
        assert call.tool_calls
        result = ToolMessage(content="6", tool_call_id=call.tool_calls[0]["id"] or "")
        reply = bound.invoke([question, call, result])
        first, second = call.response_metadata["pickllm"], reply.response_metadata["pickllm"]
        assert second["model"] == first["model"]
        assert second["probability"] == 1.0
        assert reply.content == "The tool said: 6"
        started.append(first["model"])
    assert set(started) == {"small", "large"}  # the loops started on both models


def test_a_tool_loop_from_another_router_is_routed_as_usual(make_llm: MakeLLM) -> None:
    llm = make_llm(policy=fixed("small"))
    foreign = AIMessage(
        content="",
        tool_calls=[{"name": "add", "args": {"a": 3, "b": 3}, "id": "t1"}],
        response_metadata={"pickllm": {"model": "elsewhere"}},
    )
    messages = [
        HumanMessage(content="3 + 3?"),
        foreign,
        ToolMessage(content="6", tool_call_id="t1"),
    ]
    assert llm.invoke(messages).response_metadata["pickllm"]["model"] == "small"


def test_a_pinned_call_is_evaluated_and_learned_from(make_llm: MakeLLM) -> None:
    evaluator = Recorder(score=1.0)
    llm = make_llm(policy=fixed("small"), evaluator=evaluator)
    answer = llm.invoke("Capital?", model="large")
    assert answer.content == "Paris, France."
    assert evaluator.calls[0][2]["model"] == "large"
    assert llm.stats()["large"].mean_reward is not None
    bound = llm.bind_tools([add])
    pinned = ChatPickLLM(
        models=fakes(),
        cost=0,
        policy=fixed("small"),
        capabilities={"large": {"tool_calling": False}},
    ).bind_tools([add])
    assert bound.invoke("3 + 3?", model="large").response_metadata["pickllm"]["model"] == "large"
    with pytest.raises(NoCandidateError, match="pinned model 'large' cannot serve"):
        pinned.invoke("3 + 3?", model="large")


def test_model_kwarg_forces_a_candidate(make_llm: MakeLLM) -> None:
    llm = make_llm(policy=fixed("small"))
    answer = llm.invoke("Capital?", model="large")
    assert answer.response_metadata["pickllm"]["model"] == "large"
    assert answer.response_metadata["pickllm"]["probability"] == 1.0
    with pytest.raises(ConfigError, match="no candidate named 'huge'"):
        llm.invoke("Capital?", model="huge")


def test_identifying_params_name_the_models_and_policy(make_llm: MakeLLM) -> None:
    llm = make_llm(policy="ucb1")
    params: Mapping[str, Any] = llm._identifying_params
    assert params == {"model_name": "pickllm", "models": ["large", "small"], "policy": "ucb1"}
    assert llm._llm_type == "pickllm"


# ---------------------------------------------------------------------- subclasses
class _NoRunManager(ChatPickLLM):
    """A subclass whose ``_generate`` takes no ``run_manager``."""

    seen: ClassVar[list[dict[str, Any]]] = []

    def _generate(self, messages: Any, stop: Any = None, **kwargs: Any) -> Any:  # type: ignore[override]
        self.seen.append(dict(kwargs))
        return super()._generate(messages, stop=stop)


def test_a_subclass_hook_without_run_manager_gets_none(make_llm: MakeLLM) -> None:
    # LangChain passes run_manager per the hook's own signature; none is patched.
    llm = make_llm(policy=fixed("small"))
    sub = _NoRunManager(models=llm.models, prices=PRICES, policy=fixed("small"), seed=0)
    assert sub.invoke("What is the capital of France?").text == "Paris."
    assert sub.seen == [{}]
    assert "__signature__" not in vars(ChatPickLLM._generate)


class _CutStream(FakeToolChatModel):
    """Streams three chunks, then the connection drops."""

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for word in ("one ", "two ", "three"):
            yield ChatGenerationChunk(message=AIMessageChunk(content=word))
        msg = "dropped"
        raise ConnectionError(msg)


def test_a_mid_stream_failure_delivers_every_chunk_sent_before_the_error() -> None:
    llm = ChatPickLLM(models={"cut": _CutStream(model_name="cut")}, cost=0)
    got: list[str] = []
    with pytest.raises(ConnectionError, match="dropped"):
        got.extend(str(chunk.content) for chunk in llm.stream("Count to three"))
    assert got == ["one ", "two ", "three"]
    assert llm.stats()["cut"].errors == 1
