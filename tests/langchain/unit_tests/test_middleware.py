"""PickLLMMiddleware in create_agent: each model call routed, tool loops kept, learning."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langchain_core.tracers.langchain import LangChainTracer
from langgraph.errors import GraphInterrupt
from langsmith.run_helpers import tracing_context
from pydantic import BaseModel

from langchain_pickllm import FakeToolChatModel, PickLLMMiddleware
from pickllm.errors import ConfigError
from tests.langchain.unit_tests.conftest import PRICES, FakeClock

QUESTION: Any = {"messages": [("user", "What is 3 + 3?")]}


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def middleware(**kwargs: Any) -> PickLLMMiddleware:
    params: dict[str, Any] = {
        "models": {
            "small": FakeToolChatModel(model="small-fake", answer="The sum is 6."),
            "large": FakeToolChatModel(model="large-fake", answer="3 + 3 = 6."),
        },
        "prices": PRICES,
        "policy": "random",
        "seed": 0,
        "clock": FakeClock(),
        "sleep": lambda _s: None,
    }
    params.update(kwargs)
    return PickLLMMiddleware(**params)


def _steps(result: dict[str, Any]) -> list[AIMessage]:
    return [m for m in result["messages"] if isinstance(m, AIMessage)]


def _check_runs(results: list[dict[str, Any]], mw: PickLLMMiddleware) -> None:
    first_picks = []
    for result in results:
        call, final = _steps(result)
        assert call.tool_calls
        assert not final.tool_calls
        picked = call.response_metadata["pickllm"]
        loop = final.response_metadata["pickllm"]
        # the agent's model was replaced by the chosen one: its own answer came back
        assert call.response_metadata["model_name"] == f"{picked['model']}-fake"
        # the tool loop stays on the model that started it, pinned
        assert loop["model"] == picked["model"]
        assert final.response_metadata["model_name"] == f"{picked['model']}-fake"
        assert loop["probability"] == 1.0
        assert picked["probability"] == pytest.approx(0.5)
        assert loop["decision_id"] != picked["decision_id"]
        first_picks.append(picked["model"])
    # every model call is routed: the policy's first picks vary across runs
    assert set(first_picks) == {"small", "large"}
    stats = mw.stats()
    assert sum(s.calls for s in stats.values()) == 2 * len(results)
    for name in ("small", "large"):
        assert stats[name].calls == 2 * first_picks.count(name)
        assert stats[name].total_cost_usd > 0


def test_each_model_call_is_routed_and_a_tool_loop_stays_on_one_model() -> None:
    mw = middleware()
    agent = create_agent(model=mw.models["small"], tools=[add], middleware=[mw])
    _check_runs([agent.invoke(QUESTION) for _ in range(10)], mw)


async def test_async_agents_are_routed_the_same_way() -> None:
    mw = middleware()
    agent = create_agent(model=mw.models["small"], tools=[add], middleware=[mw])
    _check_runs([await agent.ainvoke(QUESTION) for _ in range(10)], mw)


def test_without_an_evaluator_calls_wait_for_feedback_by_default() -> None:
    mw = middleware(policy="thompson")
    before = mw.engine.router.policy.state_dict()["state"]
    agent = create_agent(model=mw.models["small"], tools=[add], middleware=[mw])
    result = agent.invoke(QUESTION)
    assert mw.engine.router.policy.state_dict()["state"] == before
    assert all(math.isnan(s.mean_reward) for s in mw.stats().values())
    for message in _steps(result):
        mw.feedback(message.response_metadata["pickllm"]["decision_id"], 1.0)
    assert mw.engine.router.policy.state_dict()["state"] != before
    served = [s for s in mw.stats().values() if s.calls]
    assert len(served) == 1
    # Learned with the full score: quality 1 outweighs the small cost and latency terms.
    assert 0.9 < served[0].mean_reward <= 1.0


def test_the_policy_learns_from_each_call() -> None:
    mw = middleware(policy="thompson", await_feedback=False)
    before = mw.engine.router.policy.state_dict()["state"]
    agent = create_agent(model=mw.models["small"], tools=[add], middleware=[mw])
    agent.invoke(QUESTION)
    after = mw.engine.router.policy.state_dict()["state"]
    assert after != before
    served = [n for n, s in mw.stats().items() if s.calls]
    assert len(served) == 1
    assert mw.stats()[served[0]].calls == 2
    assert 0.0 <= mw.stats()[served[0]].mean_reward <= 1.0
    beliefs = mw.beliefs()
    assert beliefs[served[0]].calls == 2


async def test_an_evaluator_scores_each_model_call() -> None:
    seen: list[str] = []

    def judge(prompt: str, answer: str, **kw: Any) -> float:
        seen.append(kw["model"])
        assert prompt == "What is 3 + 3?"
        assert isinstance(answer, str)
        return 1.0 if kw["model"] == "large" else 0.0

    mw = middleware(evaluator=judge, cost=0.0, latency=0.0, prices=None)
    agent = create_agent(model=mw.models["small"], tools=[add], middleware=[mw])
    for _ in range(6):
        await agent.ainvoke(QUESTION)
    assert len(seen) == 12
    stats = mw.stats()
    for name in {"small", "large"} & set(seen):
        assert stats[name].mean_reward == (1.0 if name == "large" else 0.0)


def test_delayed_feedback_by_the_decision_id() -> None:
    mw = middleware(await_feedback=True, cost=0.0, latency=0.0, prices=None)
    agent = create_agent(model=mw.models["small"], tools=[add], middleware=[mw])
    result = agent.invoke(QUESTION)
    final = _steps(result)[-1].response_metadata["pickllm"]
    assert mw.stats()[final["model"]].mean_reward != mw.stats()[final["model"]].mean_reward
    assert mw.feedback(final["decision_id"], 1.0) == 1.0


def test_a_failed_call_is_recorded_and_falls_back() -> None:
    failing = FakeToolChatModel(model="small-fake", errors=[RuntimeError("down")])
    mw = middleware(
        models={"small": failing, "large": FakeToolChatModel(model="large-fake")},
        policy="cheapest",
        retry=None,
    )
    agent = create_agent(model=failing, tools=[add], middleware=[mw])
    result = agent.invoke(QUESTION)
    call, final = _steps(result)
    assert call.response_metadata["pickllm"]["model"] == "large"
    assert call.response_metadata["pickllm"]["chosen"] == "small"
    assert final.response_metadata["pickllm"]["model"] == "large"
    stats = mw.stats()
    assert stats["small"].errors == 1
    assert stats["small"].mean_reward == 0.0
    assert stats["large"].calls == 2


def test_models_that_cannot_call_tools_are_not_offered_tool_calls() -> None:
    plain = GenericFakeChatModel(messages=iter([AIMessage(content="no tools")]))
    mw = middleware(
        models={"plain": plain, "large": FakeToolChatModel(model="large-fake")},
        prices={"plain": (0.0, 0.0), "large": (1.0, 1.0)},
    )
    agent = create_agent(model=mw.models["large"], tools=[add], middleware=[mw])
    for _ in range(4):
        agent.invoke(QUESTION)
    assert mw.stats()["plain"].calls == 0
    assert mw.stats()["large"].calls == 8


class _Client:
    """A LangSmith client stand-in that keeps the runs it is sent."""

    otel_exporter = None

    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []

    def create_run(self, **kwargs: Any) -> None:
        self.created.append(kwargs)

    def update_run(self, **kwargs: Any) -> None:
        self.created.append(kwargs)

    def flush(self) -> None:
        pass


def test_the_chosen_models_run_carries_the_decision_in_its_metadata() -> None:
    mw = middleware()
    client = _Client()
    tracer = LangChainTracer(client=client)  # type: ignore[arg-type]
    agent = create_agent(model=mw.models["small"], tools=[add], middleware=[mw])
    result = agent.invoke(QUESTION, config={"callbacks": [tracer]})
    tracer.wait_for_futures()
    llm_runs = [r for r in client.created if r.get("run_type") == "llm"]
    assert llm_runs
    ids = {m.response_metadata["pickllm"]["decision_id"] for m in _steps(result)}
    for run in llm_runs:
        metadata = run["extra"]["metadata"]
        assert metadata["pickllm_decision_id"] in ids
        # the run is the chosen model's own: LangSmith sees its provider and name
        assert metadata["ls_model_name"] == f"{metadata['pickllm_model']}-fake"


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="unknown setting"):
        middleware(polcy="thompson")
    with pytest.raises(ConfigError, match=r"quality='high' is not allowed"):
        middleware(quality="high")
    with pytest.raises(ConfigError, match="no price"):
        middleware(prices={"small": (0.1, 0.1)})
    with pytest.raises(ConfigError, match="mapping"):
        PickLLMMiddleware(models=FakeToolChatModel(model="x"))  # type: ignore[arg-type]


def test_repr_is_short() -> None:
    text = repr(middleware())
    assert "small" in text
    assert "large" in text
    assert len(text) < 300


class Sum(BaseModel):
    """The result of an addition."""

    total: int


def test_a_structured_response_stays_on_the_tool_loops_model() -> None:
    mw = middleware()
    agent = create_agent(
        model=mw.models["small"], tools=[add], middleware=[mw], response_format=Sum
    )
    result = agent.invoke(QUESTION)
    assert result["structured_response"] == Sum(total=3)
    models = {m.response_metadata["pickllm"]["model"] for m in _steps(result)}
    assert len(models) == 1
    assert sum(s.calls for s in mw.stats().values()) == 2


class _Interrupting(AgentMiddleware):
    """An inner middleware that interrupts every model call."""

    def __init__(self) -> None:
        super().__init__()
        self.models: list[str] = []

    def wrap_model_call(self, request: Any, handler: Any) -> Any:
        self.models.append(request.model.model_name)
        raise GraphInterrupt(())

    async def awrap_model_call(self, request: Any, handler: Any) -> Any:
        return self.wrap_model_call(request, handler)


@pytest.mark.parametrize("run_async", [False, True])
def test_an_interrupt_passes_through_unrecorded(run_async: bool) -> None:
    mw = middleware(policy="cheapest")
    inner = _Interrupting()
    agent = create_agent(model=mw.models["small"], tools=[add], middleware=[mw, inner])
    result = asyncio.run(agent.ainvoke(QUESTION)) if run_async else agent.invoke(QUESTION)
    assert not _steps(result)
    assert inner.models == ["small-fake"]  # no retry, no fallback
    assert all(s.calls == 0 for s in mw.stats().values())
    assert mw.engine.router.pending() == 0


def test_a_callers_tracing_context_still_applies_to_the_models_run() -> None:
    mw = middleware()
    client = _Client()
    tracer = LangChainTracer(client=client)  # type: ignore[arg-type]
    agent = create_agent(model=mw.models["small"], tools=[add], middleware=[mw])
    with tracing_context(metadata={"user": "u-1"}, tags=["nightly"]):
        agent.invoke(QUESTION, config={"callbacks": [tracer]})
    tracer.wait_for_futures()
    llm_runs = [r for r in client.created if r.get("run_type") == "llm"]
    assert llm_runs
    for run in llm_runs:
        assert run["extra"]["metadata"]["user"] == "u-1"
        assert "pickllm_decision_id" in run["extra"]["metadata"]
        assert "nightly" in run["tags"]


def test_a_streamed_agent_streams_the_chosen_models_tokens() -> None:
    mw = middleware()
    agent = create_agent(model=mw.models["small"], tools=[add], middleware=[mw])
    parts: list[Any] = list(agent.stream(QUESTION, stream_mode="messages"))
    streamed = [
        (chunk.content, meta["ls_model_name"])
        for chunk, meta in parts
        if chunk.type == "AIMessageChunk"
    ]
    served = [n for n, s in mw.stats().items() if s.calls]
    assert served
    assert len(served) == 1
    assert mw.stats()[served[0]].calls == 2
    assert {model for _, model in streamed} == {f"{served[0]}-fake"}
    assert "".join(text for text, _ in streamed).startswith("The tool said")
