"""Visible routing in LangChain: run metadata for LangSmith, no prompt text in logs."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.tools import tool
from langchain_core.tracers.langchain import LangChainTracer

from langchain_pickllm import ChatPickLLM, FakeToolChatModel, PickLLMMiddleware
from tests.langchain.unit_tests.conftest import PRICES, FakeClock

SECRET = "zebra-quokka-7731"  # noqa: S105 - a marker, not a password


@tool
def echo(text: str) -> str:
    """Echo the text."""
    return text


class _Client:
    """A LangSmith client stand-in that keeps what it is sent."""

    otel_exporter = None

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def create_run(self, **kwargs: Any) -> None:
        self.sent.append({"op": "create", **kwargs})

    def update_run(self, **kwargs: Any) -> None:
        self.sent.append({"op": "update", **kwargs})

    def flush(self) -> None:
        pass


def _llm(**kwargs: Any) -> ChatPickLLM:
    params: dict[str, Any] = {
        "models": {
            "small": FakeToolChatModel(model="small-fake", answer=f"small {SECRET}"),
            "large": FakeToolChatModel(model="large-fake", answer=f"large {SECRET}"),
        },
        "prices": PRICES,
        "policy": "random",
        "seed": 0,
        "clock": FakeClock(),
    }
    params.update(kwargs)
    return ChatPickLLM(**params)


def test_the_run_names_the_chosen_model_for_langsmith() -> None:
    llm = _llm()
    client = _Client()
    tracer = LangChainTracer(client=client)  # type: ignore[arg-type]
    answers = [llm.invoke("Hi", config={"callbacks": [tracer]}) for _ in range(6)]
    tracer.wait_for_futures()
    created = [s for s in client.sent if s["op"] == "create"]
    updated = [s for s in client.sent if s["op"] == "update"]
    assert len(created) == len(updated) == 6
    # the run starts under the router's name (LangChain fixes it before the call) ...
    assert {s["extra"]["metadata"]["ls_model_name"] for s in created} == {"pickllm"}
    # ... and ends naming the model that answered, with the decision
    for sent, answer in zip(updated, answers, strict=True):
        metadata = sent["extra"]["metadata"]
        routed = answer.response_metadata["pickllm"]
        assert metadata["ls_model_name"] == f"{routed['model']}-fake"
        assert metadata["pickllm_decision_id"] == routed["decision_id"]
        assert metadata["pickllm_probability"] == routed["probability"]
    assert {s["extra"]["metadata"]["pickllm_model"] for s in updated} == {"small", "large"}


def test_a_stream_names_the_chosen_model_on_its_last_chunk() -> None:
    llm = _llm()
    chunks = list(llm.stream("Hi"))
    last = chunks[-1].response_metadata
    assert last["ls_model_name"] == f"{last['pickllm']['model']}-fake"


def test_no_prompt_or_answer_text_reaches_any_log_record(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def judge(prompt: str, answer: str, **_kw: Any) -> float:
        return 0.5 if prompt and answer else 0.0

    llm = _llm(evaluator=judge)
    mw = PickLLMMiddleware(models=llm.models, prices=PRICES, seed=0, evaluator=judge)
    agent = create_agent(model=llm.models["small"], tools=[echo], middleware=[mw])
    with caplog.at_level(logging.DEBUG):
        llm.invoke(f"Say '{SECRET}'")
        list(llm.stream(f"Say '{SECRET}'"))
        asyncio.run(llm.ainvoke(f"Say '{SECRET}'"))
        question: Any = {"messages": [("user", f"Echo '{SECRET}'")]}
        agent.invoke(question)
        llm.explain(SECRET)
    assert any(r.name == "pickllm.router" for r in caplog.records)
    for record in caplog.records:
        assert SECRET not in record.getMessage()
        assert SECRET not in str(record.args)


def test_beliefs_and_explain_on_the_chat_model() -> None:
    llm = _llm(policy="thompson", await_feedback=False)
    for _ in range(5):
        llm.invoke("Hi")
    beliefs = llm.beliefs()
    assert sum(b.calls for b in beliefs.values()) == 5
    why = llm.explain("Hi", draws=50)
    assert sum(why.choice_rates.values()) == pytest.approx(1.0)
    assert why.policy == "thompson"
