"""LLMJudge and the adapters from LangChain-style evaluators."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import FakeListChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from langchain_pickllm import ChatPickLLM, LLMJudge, from_langsmith, from_messages
from pickllm import ConfigError
from pickllm.evaluation import EvaluationRunner
from tests.langchain.unit_tests.conftest import FakeClock, fakes


class Prompts(BaseCallbackHandler):
    def __init__(self) -> None:
        self.messages: list[list[BaseMessage]] = []
        self.tags: list[list[str]] = []

    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[BaseMessage]], **kwargs: Any
    ) -> None:
        self.messages.extend(messages)
        self.tags.append(list(kwargs.get("tags") or []))


def test_judge_maps_the_scale_to_unit_interval() -> None:
    replies = ["Good. Score: 10", "Score: 1", "score = 5.5", "I'd say 7", "No idea.", "Score: 11"]
    judge = LLMJudge(FakeListChatModel(responses=replies))
    scores = [judge("Q", "A") for _ in replies]
    assert scores == [1.0, 0.0, 0.5, 2 / 3, None, None]


def test_judge_shows_rubric_question_answer_and_reference() -> None:
    handler = Prompts()
    judge_model = FakeListChatModel(responses=["Score: 8"], callbacks=[handler])
    judge = LLMJudge(judge_model, rubric="Be strict.", low=0, high=8, references={"Q?": "42"})
    assert judge("Q?", "41") == 1.0
    system, user = handler.messages[0]
    assert "Be strict." in system.text
    assert "from 0 (worst) to 8 (best)" in system.text
    assert user.text == "Question:\nQ?\n\nAnswer:\n41\n\nReference answer:\n42"
    # LangGraph must not stream the judge's tokens as if they were the answer.
    assert "nostream" in handler.tags[0]


async def test_judge_async() -> None:
    judge = LLMJudge(FakeListChatModel(responses=["Score: 4"]), low=0, high=4)
    assert await judge.aevaluate("Q", "A", reference="B") == 1.0


def test_judge_logs_an_unreadable_reply(caplog: pytest.LogCaptureFixture) -> None:
    judge = LLMJudge(FakeListChatModel(responses=["Looks fine to me."]))
    with caplog.at_level(logging.WARNING, logger="langchain_pickllm.evaluators"):
        assert judge("Q", "A") is None
    assert "no score from 1 to 10" in caplog.text
    # The reply may quote the prompt or the answer: it is never logged, at any level.
    assert "Looks fine" not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        judge = LLMJudge(FakeListChatModel(responses=["Looks fine to me."]))
        assert judge("Q", "A") is None
    assert caplog.records
    assert not [r for r in caplog.records if "Looks fine" in r.getMessage()]


def test_judge_validates_its_settings() -> None:
    model = FakeListChatModel(responses=["x"])
    with pytest.raises(ConfigError, match="low < high"):
        LLMJudge(model, low=5, high=5)
    with pytest.raises(ConfigError, match="rubric"):
        LLMJudge(model, rubric="  ")
    with pytest.raises(TypeError, match="chat model"):
        LLMJudge("gpt-4o")  # type: ignore[arg-type]


def test_judge_as_the_evaluator_of_a_router() -> None:
    llm = ChatPickLLM(
        models=fakes(),
        prices={"small": (0.1, 0.4), "large": (2.5, 10.0)},
        evaluator=LLMJudge(FakeListChatModel(responses=["Score: 10"])),
        seed=0,
        clock=FakeClock(),
    )
    llm.invoke("Capital of France?")
    assert llm.evaluation is not None
    assert llm.evaluation.scored == 1
    assert llm.router is not None
    assert llm.router.pending() == 0


def test_from_messages_sees_the_messages_and_the_answer() -> None:
    seen: list[tuple[list[BaseMessage], AIMessage]] = []

    def judge(messages: list[BaseMessage], answer: AIMessage) -> bool:
        seen.append((messages, answer))
        return bool(answer.tool_calls)

    evaluator = from_messages(judge)
    assert evaluator("Q", "A") is False
    assert [m.content for m in seen[0][0]] == ["Q"]
    call = {"name": "add", "args": {}, "id": "1", "type": "tool_call"}
    message = AIMessage(content="", tool_calls=[call])
    history: list[BaseMessage] = [HumanMessage(content="Q")]
    assert evaluator("Q", "", messages=history, message=message) is True
    with pytest.raises(TypeError):
        from_messages("not callable")  # type: ignore[arg-type]


def test_from_langsmith_accepts_openevals_results() -> None:
    def dict_result(*, inputs: str, outputs: str, reference_outputs: str | None = None) -> Any:
        return {"key": "match", "score": outputs == reference_outputs}

    def list_result(*, inputs: str, outputs: str) -> Any:
        return [{"key": "a", "score": 1.0}, {"key": "b", "score": 0.0}]

    def bad(*, inputs: str, outputs: str) -> Any:
        return {"key": "no score"}

    evaluator = from_langsmith(dict_result, references=lambda prompt: "4")
    assert evaluator("2 + 2?", "4") == 1.0
    assert evaluator("2 + 2?", "5", reference="5") == 1.0
    assert from_langsmith(list_result)("Q", "A") == 0.5
    with pytest.raises(ConfigError, match="'score' key"):
        from_langsmith(bad)("Q", "A")


def test_adapters_run_in_the_core_runner() -> None:
    class Sink:
        def __init__(self) -> None:
            self.scores: list[tuple[str, float]] = []

        def feedback(self, decision_id: str, score: float) -> None:
            self.scores.append((decision_id, score))

    sink = Sink()
    runner = EvaluationRunner(from_messages(lambda messages, answer: 0.25), sink)
    runner.submit("d1", "Q", "A", messages=[HumanMessage(content="Q")], model="m")
    assert sink.scores == [("d1", 0.25)]
