"""Visible routing in LlamaIndex: one instrumentation event per decision, beliefs, explain."""

from __future__ import annotations

import logging

import pytest
from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.schema import QueryBundle
from llama_index.core.tools import ToolMetadata

from llamaindex_pickllm import PickLLM, PickLLMRouteEvent, PickLLMSelector
from tests.llamaindex.fakes import EventCounter, UsageLLM

SECRET = "zebra-quokka-7731"  # noqa: S105 - a marker, not a password


def _llm() -> PickLLM:
    return PickLLM(
        models={
            "small": UsageLLM(answer=f"small {SECRET}", name="small"),
            "large": UsageLLM(answer=f"large {SECRET}", name="large"),
        },
        cost=0.0,
        policy="thompson",
        seed=0,
        # Learn from every call at once: the tests read what was learned.
        await_feedback=False,
    )


def test_each_llm_decision_is_one_event(events: EventCounter) -> None:
    llm = _llm()
    answers = [llm.chat([ChatMessage(role="user", content=SECRET)]) for _ in range(3)]
    routed = [e for e in events.events if isinstance(e, PickLLMRouteEvent)]
    assert [e.decision_id for e in routed] == [
        a.additional_kwargs["pickllm"]["decision_id"] for a in answers
    ]
    assert [e.model for e in routed] == [a.additional_kwargs["pickllm"]["model"] for a in answers]
    assert SECRET not in repr([e.model_dump() for e in routed])


def test_each_selection_is_one_event(events: EventCounter) -> None:
    selector = PickLLMSelector(policy="thompson", seed=0)
    tools = [
        ToolMetadata(name="paris", description="Paris"),
        ToolMetadata(name="lyon", description="Lyon"),
    ]
    results = [selector.select(tools, QueryBundle(SECRET)) for _ in range(4)]
    routed = [e for e in events.events if isinstance(e, PickLLMRouteEvent)]
    assert len(routed) == 4
    for event, result in zip(routed, results, strict=True):
        selection = result.selections[0]
        assert event.decision_id == selection.decision_id  # type: ignore[attr-defined]
        assert event.model == selection.choice  # type: ignore[attr-defined]
        assert event.probability == selection.probability  # type: ignore[attr-defined]


def test_beliefs_and_explain_on_the_llm(caplog: pytest.LogCaptureFixture) -> None:
    llm = _llm()
    with caplog.at_level(logging.DEBUG):
        for _ in range(4):
            llm.chat([ChatMessage(role="user", content=SECRET)])
            llm.complete(SECRET)
        why = llm.explain(SECRET, draws=20)
    beliefs = llm.beliefs()
    assert sum(b.calls for b in beliefs.values()) == 8
    assert why.chosen in beliefs
    assert str(why).count("\n") >= 2
    assert any(r.name == "pickllm.router" for r in caplog.records)
    for record in caplog.records:
        assert SECRET not in record.getMessage()
        assert SECRET not in str(record.args)
