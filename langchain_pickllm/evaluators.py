"""Evaluators for ``ChatPickLLM``: an LLM judge, and adapters from LangChain-style scorers.

Every evaluator here follows :class:`pickllm.evaluation.Evaluator`: called as
``evaluator(prompt, answer, **kwargs)`` it returns a score in [0, 1] or None. The
reference-based ones (``ExactMatch``, ``Contains``, ``MultipleChoice``, ``Numeric``) are
framework-free and live in :mod:`pickllm.evaluation`.

``ChatPickLLM`` calls its evaluator (through :class:`pickllm.engine.Engine`) with the last
user message as ``prompt``, the answer's text (tool-call arguments included) as ``answer``,
and the keywords ``messages`` (the input messages) and ``model`` (the candidate that
answered).
"""

# Evaluators accept the call's other keywords (see pickllm.evaluation) and ignore them.
# ruff: noqa: ARG002

from __future__ import annotations

import inspect
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig

from pickllm.errors import ConfigError
from pickllm.evaluation import References, check_score

__all__ = ["DEFAULT_RUBRIC", "LLMJudge", "from_langsmith", "from_messages"]

logger = logging.getLogger(__name__)

DEFAULT_RUBRIC = (
    "Grade the answer to the question. Consider correctness first, then completeness and "
    "clarity. A wrong answer gets the lowest score, however well written."
)
"""The judge's default rubric."""

_SCORE = re.compile(r"score\s*[:=]?\s*\**\s*(-?\d+(?:\.\d+)?)", re.IGNORECASE)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")

# The judge's own tokens must not reach a graph's stream_mode="messages" output, and its
# run is named so traces tell it apart from the routed call.
_JUDGE_CONFIG: RunnableConfig = {"tags": ["nostream", "pickllm:judge"], "run_name": "pickllm_judge"}


class LLMJudge:
    """Scores answers with a chat model and a rubric.

    The judge model gets a system message with the rubric and the scale, and a user
    message with the question, the answer and, when known, a reference answer; it must
    reply with a line ``Score: N``. N on the scale ``low``..``high`` maps linearly to
    [0, 1]; a reply without a readable score in range gives None (logged), so the call is
    learned from without a quality score.

    The judge's call is a separate LLM run (tagged ``nostream`` so LangGraph does not
    stream its tokens, named ``pickllm_judge`` in traces); its usage is its own.

    Args:
        judge: any LangChain chat model.
        rubric: what a good answer is.
        low: the lowest score of the scale.
        high: the highest score of the scale.
        references: prompt text -> reference answer (mapping or function), shown to the
            judge when present.

    Examples:
        >>> from langchain_core.language_models import FakeListChatModel
        >>> judge = LLMJudge(FakeListChatModel(responses=["Correct and clear. Score: 9"]))
        >>> judge("What is 2 + 2?", "4")
        0.8888888888888888
        >>> LLMJudge.parse_score("I cannot grade this.", 1, 10) is None
        True
    """

    def __init__(
        self,
        judge: BaseChatModel,
        *,
        rubric: str = DEFAULT_RUBRIC,
        low: int = 1,
        high: int = 10,
        references: References | None = None,
    ) -> None:
        if not isinstance(judge, BaseChatModel):
            msg = f"judge must be a LangChain chat model, got {type(judge).__name__}"
            raise TypeError(msg)
        if not isinstance(rubric, str) or not rubric.strip():
            msg = f"rubric must be a non-empty string, got {rubric!r}"
            raise ConfigError(msg)
        if (
            isinstance(low, bool)
            or isinstance(high, bool)
            or not (isinstance(low, int) and isinstance(high, int) and low < high)
        ):
            msg = f"the scale must be integers low < high, got low={low!r}, high={high!r}"
            raise ConfigError(msg)
        if references is not None and not (isinstance(references, Mapping) or callable(references)):
            msg = (
                f"references must be a mapping, a function or None, got {type(references).__name__}"
            )
            raise TypeError(msg)
        self.judge = judge
        self.rubric = rubric
        self.low = low
        self.high = high
        self.references = references

    @staticmethod
    def parse_score(text: str, low: int, high: int) -> float | None:
        """The score in [0, 1] of a judge's reply, or None when it has none in range.

        ``Score: N`` wins; otherwise the last number of the reply.
        """
        match = _SCORE.search(text)
        found = match.group(1) if match else None
        if found is None:
            numbers = _NUMBER.findall(text)
            found = numbers[-1] if numbers else None
        if found is None:
            return None
        value = float(found)
        if not (math.isfinite(value) and low <= value <= high):
            return None
        return (value - low) / (high - low)

    def _reference(self, prompt: str, reference: str | None) -> str | None:
        if reference is not None or self.references is None:
            return reference
        if isinstance(self.references, Mapping):
            return self.references.get(prompt)
        return self.references(prompt)

    def messages(self, prompt: str, answer: str, reference: str | None = None) -> list[BaseMessage]:
        """The messages sent to the judge."""
        system = (
            f"{self.rubric}\n\nReply with a short justification, then a last line "
            f"'Score: N' where N is an integer from {self.low} (worst) to {self.high} (best)."
        )
        parts = [f"Question:\n{prompt}", f"Answer:\n{answer}"]
        if reference is not None:
            parts.append(f"Reference answer:\n{reference}")
        return [SystemMessage(content=system), HumanMessage(content="\n\n".join(parts))]

    def _score(self, reply: BaseMessage) -> float | None:
        score = self.parse_score(reply.text, self.low, self.high)
        if score is None:
            # The reply may quote the prompt or the answer: the log says only that it
            # had no score, and its length (prompts and answers are never logged).
            logger.warning(
                "LLMJudge reply (%d characters) has no score from %s to %s",
                len(reply.text),
                self.low,
                self.high,
            )
        return score

    def __call__(
        self,
        prompt: str,
        answer: str,
        /,
        *,
        reference: str | None = None,
        **kwargs: Any,
    ) -> float | None:
        """Score ``answer`` to ``prompt`` with the judge."""
        ref = self._reference(prompt, reference)
        return self._score(
            self.judge.invoke(self.messages(prompt, answer, ref), config=_JUDGE_CONFIG)
        )

    async def aevaluate(
        self,
        prompt: str,
        answer: str,
        /,
        *,
        reference: str | None = None,
        **kwargs: Any,
    ) -> float | None:
        """Async :meth:`__call__` (uses the judge's ``ainvoke``)."""
        ref = self._reference(prompt, reference)
        reply = await self.judge.ainvoke(self.messages(prompt, answer, ref), config=_JUDGE_CONFIG)
        return self._score(reply)

    def __repr__(self) -> str:
        return f"LLMJudge({type(self.judge).__name__}, low={self.low}, high={self.high})"


class _MessagesEvaluator:
    def __init__(self, fn: Callable[[list[BaseMessage], AIMessage], Any]) -> None:
        self.fn = fn

    def __call__(
        self,
        prompt: str,
        answer: str,
        /,
        *,
        messages: Sequence[BaseMessage] | None = None,
        message: BaseMessage | None = None,
        **kwargs: Any,
    ) -> Any:
        msgs: list[BaseMessage] = (
            list(messages) if messages is not None else [HumanMessage(content=prompt)]
        )
        reply = message if isinstance(message, AIMessage) else AIMessage(content=answer)
        return self.fn(msgs, reply)

    def __repr__(self) -> str:
        return f"from_messages({getattr(self.fn, '__name__', self.fn)!r})"


def from_messages(fn: Callable[[list[BaseMessage], AIMessage], Any]) -> Callable[..., Any]:
    """An evaluator from a function of the LangChain messages: ``fn(messages, answer)``.

    ``fn`` gets the call's input messages and the answer ``AIMessage`` (so it can look at
    tool calls or metadata) and returns a score in [0, 1], a bool, None, or an awaitable
    of one. Outside ``ChatPickLLM`` the prompt text becomes one ``HumanMessage``.

    Examples:
        >>> def used_a_tool(messages, answer):
        ...     return bool(answer.tool_calls)
        >>> evaluator = from_messages(used_a_tool)
        >>> evaluator("What is 2 + 2?", "4")
        False
    """
    if not callable(fn):
        msg = f"fn must be callable as fn(messages, answer), got {fn!r}"
        raise TypeError(msg)
    return _MessagesEvaluator(fn)


def _langsmith_score(result: Any) -> float | None:
    """A score from a LangSmith/openevals-style result: number, bool, dict or list."""
    if isinstance(result, list):
        if not result:
            return None
        scores = [_langsmith_score(r) for r in result]
        known = [s for s in scores if s is not None]
        return sum(known) / len(known) if known else None
    if isinstance(result, Mapping):
        if "score" not in result:
            msg = f"an evaluator result mapping needs a 'score' key, got keys {sorted(result)}"
            raise ConfigError(msg)
        return _langsmith_score(result["score"])
    return check_score(result)


class _LangSmithEvaluator:
    def __init__(self, fn: Callable[..., Any], references: References | None) -> None:
        self.fn = fn
        self.references = references
        params = inspect.signature(fn).parameters
        self._takes_reference = "reference_outputs" in params or any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()
        )

    def _reference(self, prompt: str, reference: str | None) -> str | None:
        if reference is not None or self.references is None:
            return reference
        if isinstance(self.references, Mapping):
            return self.references.get(prompt)
        return self.references(prompt)

    def __call__(
        self,
        prompt: str,
        answer: str,
        /,
        *,
        reference: str | None = None,
        **kwargs: Any,
    ) -> float | None:
        call: dict[str, Any] = {"inputs": prompt, "outputs": answer}
        if self._takes_reference:
            call["reference_outputs"] = self._reference(prompt, reference)
        result = self.fn(**call)
        if inspect.isawaitable(result):
            msg = "from_langsmith wraps synchronous evaluators; await async ones yourself"
            raise TypeError(msg)
        return _langsmith_score(result)

    def __repr__(self) -> str:
        return f"from_langsmith({getattr(self.fn, '__name__', self.fn)!r})"


def from_langsmith(
    fn: Callable[..., Any], *, references: References | None = None
) -> Callable[..., Any]:
    """An evaluator from a LangSmith / openevals-style one.

    ``fn`` is called with the keywords ``inputs`` (the prompt text), ``outputs`` (the
    answer text) and, if it takes them, ``reference_outputs`` (the call's ``reference`` or
    the one ``references`` gives for the prompt). Its result may be a number, a bool, a
    dict with a ``"score"`` (as openevals returns), or a list of those (averaged).

    Examples:
        >>> def exact(*, inputs, outputs, reference_outputs=None):
        ...     return {"key": "exact", "score": outputs == reference_outputs}
        >>> evaluator = from_langsmith(exact, references={"2 + 2?": "4"})
        >>> evaluator("2 + 2?", "4"), evaluator("2 + 2?", "5")
        (1.0, 0.0)
    """
    if not callable(fn):
        msg = f"fn must be callable with keywords inputs, outputs, got {fn!r}"
        raise TypeError(msg)
    return _LangSmithEvaluator(fn, references)
