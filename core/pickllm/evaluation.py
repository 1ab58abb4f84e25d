"""Scoring answers: the evaluator protocol, reference-based evaluators, and running them.

An *evaluator* scores one answer: it is called as ``evaluator(prompt, answer, **kwargs)``
with the prompt text and the answer text and returns a quality in [0, 1], ``None`` to
skip (no score for this answer), or an awaitable of either. ``True``/``False`` count as
1.0/0.0. Keyword arguments carry what the caller knows about the call (the framework's
messages, the model that answered, a ``reference`` answer); an evaluator takes what it
names and may ignore the rest: :class:`EvaluationRunner` passes only the keywords an
evaluator's signature accepts, so ``lambda prompt, answer: 1.0`` is a valid evaluator.
An evaluator may also define ``aevaluate(prompt, answer, **kwargs)``, a coroutine used on
async paths instead of ``__call__`` (an LLM judge does, to avoid blocking the event loop).

Reference-based evaluators compare the answer with a known right answer. The reference
comes from the call (``reference=...``) or, when the call has none, from the evaluator's
``references``: a mapping from prompt text to reference, or a function of the prompt text.
Without a reference they return ``None``.

* :class:`ExactMatch`: the normalised answer equals the normalised reference.
* :class:`Contains`: the normalised answer contains the normalised reference.
* :class:`MultipleChoice`: the choice letter in the answer (``"B"``, ``"(B)"``,
  ``"Answer: B"``, ``"The answer is B."``) is the reference's letter.
* :class:`Numeric`: the number in the answer (after ``####`` or "answer is", else the
  last number) is close to the reference number.

:class:`EvaluationRunner` runs an evaluator for a routed call and joins the score to the
router with ``router.feedback(decision_id, score)``, inline (before returning) or in the
background (a bounded thread pool for sync callers, an asyncio task for async callers).
The call's cost and latency were recorded when it returned, so a slow evaluator only
delays the quality part of the reward. An evaluator that raises, returns something that is
not a score, or whose score cannot be joined (the decision expired) is logged with its
exception's class on this module's logger at WARNING (its message and traceback only at
DEBUG, as they may quote the prompt or the answer) and counted (``errors``,
``last_error``, ``on_error``);
it never fails the call it scores. An answer scored ``None`` leaves its decision pending
until the router expires it, and the router then learns from the call without a quality
score (see :class:`pickllm.Router`).

Nothing here imports a framework: the LangChain and LlamaIndex wrappers share it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import re
import threading
import traceback
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol, runtime_checkable

from pickllm.errors import ConfigError

__all__ = [
    "Contains",
    "EvaluationRunner",
    "Evaluator",
    "ExactMatch",
    "MultipleChoice",
    "Numeric",
    "ReferenceEvaluator",
    "References",
    "ScoreSink",
    "check_score",
    "extract_choice",
    "extract_number",
    "normalize_text",
]

logger = logging.getLogger(__name__)

ScoreLike = float | bool | None
"""What an evaluator returns (or its awaitable resolves to)."""

References = Mapping[str, str] | Callable[[str], "str | None"]
"""Where reference answers come from: prompt text -> reference, as a mapping or function."""


@runtime_checkable
class Evaluator(Protocol):
    """Scores one answer: ``evaluator(prompt, answer, **kwargs) -> score | None``.

    The score is a float in [0, 1] (or a bool), ``None`` skips the answer; an awaitable of
    either is accepted too. See the module docstring for the keyword arguments.

    Examples:
        >>> def length_ok(prompt: str, answer: str, **kwargs: object) -> float:
        ...     return 1.0 if len(answer) < 20 else 0.0
        >>> isinstance(length_ok, Evaluator), length_ok("Capital of France?", "Paris")
        (True, 1.0)
    """

    def __call__(self, prompt: str, answer: str, /, **kwargs: Any) -> Any:
        """Score ``answer`` to ``prompt``."""


class ScoreSink(Protocol):
    """Where scores go: :class:`pickllm.Router` (``feedback(decision_id, score)``)."""

    def feedback(self, decision_id: str, score: float) -> float | None:
        """Join ``score`` to the decision ``decision_id``."""


def check_score(value: object) -> float | None:
    """``value`` as a score: a float in [0, 1], or None.

    ``True``/``False`` become 1.0/0.0; numpy scalars are accepted.

    Raises:
        TypeError: ``value`` is neither None, a bool nor a real number.
        ConfigError: the number is outside [0, 1] or NaN.

    Examples:
        >>> check_score(True), check_score(0.25), check_score(None)
        (1.0, 0.25, None)
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    try:
        score = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        msg = f"an evaluator must return a number in [0, 1], a bool or None, got {value!r}"
        raise TypeError(msg) from None
    if not 0.0 <= score <= 1.0:  # also rejects NaN
        msg = f"an evaluator's score must be in [0, 1], got {value!r}"
        raise ConfigError(msg)
    return score


# ---------------------------------------------------------------------- text helpers
_SPACES = re.compile(r"\s+")
_CHOICE_PATTERNS = (
    # a letter opening the answer, followed by a bracket, a stop, a space or the end, as
    # in B) house or "A questioning" (RouterBench grades the opening letter); the pronoun
    # I opening a sentence, as in "I think", is not a choice
    re.compile(r"^\s*\**(?!I\s+[a-z'])([A-Z])\**(?:[\)\]\.:,]|\s|$)"),
    # a bracketed letter opening the answer, in either case, as in (c)
    re.compile(r"^\s*[\(\[]([A-Za-z])[\)\]]"),
    # a letter after the word answer, as in the answer is (B)
    re.compile(r"answer\s*(?:is|:)?\s*[:\-]?\s*[\(\[]?\**([A-Z])\b", re.IGNORECASE),
    # a letter after the word option or choice
    re.compile(r"\b(?:option|choice)\s*[\(\[]?([A-Z])\b", re.IGNORECASE),
    # a line with only the letter, anywhere
    re.compile(r"^\s*\**([A-Z])\**\s*$", re.MULTILINE),
)
_NUMBER = r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?"
_NUMBER_AFTER = (
    re.compile(r"####\s*\$?\s*(" + _NUMBER + ")"),
    re.compile(r"answer\s*(?:is|:)\s*[:\-]?\s*\$?\s*(" + _NUMBER + ")", re.IGNORECASE),
)
_ANY_NUMBER = re.compile(_NUMBER)


def normalize_text(text: str, *, case_sensitive: bool = False) -> str:
    r"""``text`` with whitespace collapsed, ends stripped of spaces, quotes and final dots.

    Examples:
        >>> normalize_text("  The  answer:\n Paris. ")
        'the answer: paris'
    """
    out = _SPACES.sub(" ", text).strip().strip("\"'`").rstrip(".").strip()
    return out if case_sensitive else out.casefold()


def extract_choice(text: str, letters: str = "ABCDEFGHIJ") -> str | None:
    r"""The multiple-choice letter an answer gives, or None.

    Tried in order: a letter opening the answer, followed by a bracket, a stop, a space or
    the end (``"B"``, ``"B."``, ``"B) house"``, ``"A questioning"``; but not the pronoun in
    ``"I think"``), a bracketed letter opening it (``"(b)"``), a letter after "answer"
    (``"Answer: B"``, ``"The answer is B"``), after "option" or "choice", then a line
    holding only a letter. Only ``letters`` count.

    Examples:
        >>> extract_choice("B\n"), extract_choice("The answer is (c)."), extract_choice("x")
        ('B', 'C', None)
    """
    for pattern in _CHOICE_PATTERNS:
        for match in pattern.finditer(text):
            letter = match.group(1).upper()
            if letter in letters:
                return letter
    return None


def extract_number(text: str) -> float | None:
    """The numeric answer of a text, or None.

    The number after ``####`` (GSM8K style) or after "answer is"/"answer:" wins; otherwise
    the last number in the text. Thousands separators and a leading ``$`` are allowed.

    Examples:
        >>> extract_number("3 apples and 4 pears make 7"), extract_number("#### 1,234")
        (7.0, 1234.0)
        >>> extract_number("no digits") is None
        True
    """
    for pattern in _NUMBER_AFTER:
        match = pattern.search(text)
        if match:
            return float(match.group(1).replace(",", ""))
    found = _ANY_NUMBER.findall(text)
    if not found:
        return None
    return float(found[-1].replace(",", ""))


# ---------------------------------------------------------------------- reference-based
class ReferenceEvaluator:
    """Base of evaluators that compare an answer with a reference answer.

    Subclasses implement ``compare(answer, reference) -> float``. The reference is the
    call's ``reference`` keyword, else ``references`` looked up by the prompt text (a
    mapping, looked up with the prompt as given and then stripped, or a function); with
    none, the evaluator returns None.

    Args:
        references: prompt text -> reference answer (mapping or function), or None.

    Examples:
        >>> class SameLength(ReferenceEvaluator):
        ...     def compare(self, answer: str, reference: str) -> float:
        ...         return float(len(answer) == len(reference))
        >>> SameLength()("Q", "abc", reference="xyz")
        1.0
    """

    def __init__(self, *, references: References | None = None) -> None:
        if references is not None and not (isinstance(references, Mapping) or callable(references)):
            msg = (
                "references must be a mapping of prompt text to reference answer, a "
                f"function of the prompt text, or None, got {type(references).__name__}"
            )
            raise TypeError(msg)
        self.references = references

    def reference_for(self, prompt: str) -> str | None:
        """The reference answer of ``prompt`` from ``references``, or None."""
        refs = self.references
        if refs is None:
            return None
        if isinstance(refs, Mapping):
            found = refs.get(prompt)
            if found is None and prompt != prompt.strip():
                found = refs.get(prompt.strip())
            return found
        return refs(prompt)

    def compare(self, answer: str, reference: str) -> float:
        """Score ``answer`` against ``reference`` in [0, 1]."""
        raise NotImplementedError

    def __call__(
        self,
        prompt: str,
        answer: str,
        /,
        *,
        reference: str | None = None,
        **kwargs: Any,  # noqa: ARG002 - the other keywords of the call are not needed
    ) -> float | None:
        """Score ``answer``; None when there is no reference for ``prompt``."""
        ref = reference if reference is not None else self.reference_for(prompt)
        if ref is None:
            return None
        return self.compare(answer, ref)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class ExactMatch(ReferenceEvaluator):
    """1.0 when the answer equals the reference after normalisation, else 0.0.

    Normalisation (:func:`normalize_text`) collapses whitespace and strips surrounding
    quotes and a final dot; case is ignored unless ``case_sensitive``.

    Args:
        references: prompt text -> reference answer (mapping or function), or None.
        case_sensitive: compare case too.

    Examples:
        >>> match = ExactMatch(references={"Capital of France?": "Paris"})
        >>> match("Capital of France?", " paris. "), match("Capital of Spain?", "Madrid")
        (1.0, None)
    """

    def __init__(
        self, *, references: References | None = None, case_sensitive: bool = False
    ) -> None:
        super().__init__(references=references)
        if not isinstance(case_sensitive, bool):
            msg = f"case_sensitive must be a bool, got {case_sensitive!r}"
            raise TypeError(msg)
        self.case_sensitive = case_sensitive

    def compare(self, answer: str, reference: str) -> float:
        """1.0 if equal after normalisation."""
        cs = self.case_sensitive
        return float(
            normalize_text(answer, case_sensitive=cs)
            == normalize_text(reference, case_sensitive=cs)
        )


class Contains(ReferenceEvaluator):
    """1.0 when the normalised answer contains the normalised reference, else 0.0.

    Args:
        references: prompt text -> reference answer (mapping or function), or None.
        case_sensitive: compare case too.

    Examples:
        >>> Contains()("Capital of France?", "It is Paris, of course.", reference="paris")
        1.0
    """

    def __init__(
        self, *, references: References | None = None, case_sensitive: bool = False
    ) -> None:
        super().__init__(references=references)
        if not isinstance(case_sensitive, bool):
            msg = f"case_sensitive must be a bool, got {case_sensitive!r}"
            raise TypeError(msg)
        self.case_sensitive = case_sensitive

    def compare(self, answer: str, reference: str) -> float:
        """1.0 if the reference occurs in the answer."""
        cs = self.case_sensitive
        needle = normalize_text(reference, case_sensitive=cs)
        return float(bool(needle) and needle in normalize_text(answer, case_sensitive=cs))


class MultipleChoice(ReferenceEvaluator):
    """1.0 when the answer picks the reference's choice letter, else 0.0.

    The letter is read with :func:`extract_choice` from both the answer and the
    reference (so a reference may be ``"B"`` or ``"B) house"``). An answer without a
    readable letter scores 0.0. On the bundled RouterBench ARC-Challenge and Winogrande
    responses this agrees with the recorded correctness on every (prompt, model) pair.

    Args:
        references: prompt text -> reference answer (mapping or function), or None.
        letters: the allowed choice letters.

    Examples:
        >>> mc = MultipleChoice(letters="ABCD")
        >>> mc("Q", "The answer is B.", reference="B"), mc("Q", "(d)", reference="B) x")
        (1.0, 0.0)
    """

    def __init__(
        self, *, references: References | None = None, letters: str = "ABCDEFGHIJ"
    ) -> None:
        super().__init__(references=references)
        if not isinstance(letters, str) or not letters or not letters.isalpha():
            msg = f"letters must be a non-empty string of letters, got {letters!r}"
            raise ConfigError(msg)
        self.letters = letters

    def compare(self, answer: str, reference: str) -> float:
        """1.0 if both name the same letter."""
        letters = self.letters.upper()
        want = extract_choice(reference, letters)
        if want is None:
            msg = f"the reference {reference!r} names no choice letter among {letters!r}"
            raise ConfigError(msg)
        return float(extract_choice(answer, letters) == want)


class Numeric(ReferenceEvaluator):
    """1.0 when the answer's number is close to the reference number, else 0.0.

    Numbers are read with :func:`extract_number`; closeness is ``math.isclose`` with
    ``rel_tol`` and ``abs_tol``. An answer without a number scores 0.0.

    Args:
        references: prompt text -> reference answer (mapping or function), or None.
        rel_tol: relative tolerance.
        abs_tol: absolute tolerance.

    Examples:
        >>> num = Numeric(abs_tol=0.01)
        >>> num("Q", "So she pays $1,234.00 in total.", reference="1234")
        1.0
        >>> num("Q", "5", reference="6")
        0.0
    """

    def __init__(
        self,
        *,
        references: References | None = None,
        rel_tol: float = 1e-6,
        abs_tol: float = 1e-9,
    ) -> None:
        super().__init__(references=references)
        for name, value in (("rel_tol", rel_tol), ("abs_tol", abs_tol)):
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
            ):
                msg = f"{name} must be a finite number >= 0, got {value!r}"
                raise ConfigError(msg)
        self.rel_tol = rel_tol
        self.abs_tol = abs_tol

    def compare(self, answer: str, reference: str) -> float:
        """1.0 if the numbers are close."""
        want = extract_number(reference)
        if want is None:
            msg = f"the reference {reference!r} holds no number"
            raise ConfigError(msg)
        got = extract_number(answer)
        if got is None:
            return 0.0
        return float(math.isclose(got, want, rel_tol=self.rel_tol, abs_tol=self.abs_tol))


# ---------------------------------------------------------------------- running
def _accepted_keywords(fn: Callable[..., Any]) -> frozenset[str] | None:
    """Keyword names ``fn`` accepts beyond the two positionals; None means any."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):  # builtins without a signature: pass nothing extra
        return frozenset()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    named = [p for p in params if p.kind in positional][2:]
    named += [p for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]
    return frozenset(p.name for p in named)


def _run_coroutine(awaitable: Awaitable[Any]) -> Any:
    """Run ``awaitable`` to completion from synchronous code."""

    async def wait() -> Any:
        return await awaitable

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(wait())
    # Called from sync code on a thread that runs an event loop: that loop cannot be
    # re-entered, so the coroutine gets a loop of its own on a helper thread.
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(wait())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="pickllm-evaluator")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


class EvaluationRunner:
    """Runs an evaluator on routed answers and joins the scores to the router.

    ``submit``/``asubmit`` score one answer of a routed call and pass the score to
    ``sink.feedback(decision_id, score)``. Inline (the default) they return the score;
    in the background they return None at once and the work runs on a thread pool of
    ``max_workers`` threads (``submit``) or as an asyncio task (``asubmit``). At most
    ``max_queued`` background evaluations wait at a time: a further ``submit`` blocks
    until one finishes, a further ``asubmit`` evaluates inline. ``join``/``ajoin`` wait for
    the background work (tests and shutdown); ``close`` stops the thread pool.

    Errors (the evaluator raising or returning a non-score, the sink rejecting the score)
    are logged (the error's class at WARNING, its text at DEBUG), counted in ``errors``,
    kept in ``last_error`` and passed to ``on_error(decision_id, exc)`` if given; they never
    propagate to the call.

    Args:
        evaluator: the evaluator (see :class:`Evaluator`).
        sink: where scores go, usually the :class:`pickllm.Router`.
        background: evaluate after returning instead of before.
        max_workers: threads of the background pool.
        max_queued: background evaluations that may wait at a time.
        on_error: called with the decision id and the exception of each failure.
        release_unscored: when an answer gets no score (the evaluator returned None or
            failed), call ``sink.release(decision_id)`` so the call is learned from at
            once without one, instead of waiting for a score that will not come.

    Examples:
        >>> class Sink:
        ...     def feedback(self, decision_id: str, score: float) -> None:
        ...         print(decision_id, score)
        >>> runner = EvaluationRunner(ExactMatch(), Sink())
        >>> runner.submit("d-1", "Capital of France?", "Paris", reference="paris")
        d-1 1.0
        1.0
        >>> runner.submit("d-2", "Capital of France?", "Paris") is None  # no reference
        True
    """

    def __init__(
        self,
        evaluator: Callable[..., Any],
        sink: ScoreSink,
        *,
        background: bool = False,
        max_workers: int = 2,
        max_queued: int = 1000,
        on_error: Callable[[str, BaseException], None] | None = None,
        release_unscored: bool = False,
    ) -> None:
        if not callable(evaluator):
            msg = f"evaluator must be callable as evaluator(prompt, answer), got {evaluator!r}"
            raise TypeError(msg)
        if not callable(getattr(sink, "feedback", None)):
            msg = f"sink must have a feedback(decision_id, score) method, got {sink!r}"
            raise TypeError(msg)
        if not isinstance(background, bool):
            msg = f"background must be a bool, got {background!r}"
            raise TypeError(msg)
        for name, value in (("max_workers", max_workers), ("max_queued", max_queued)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                msg = f"{name} must be an int >= 1, got {value!r}"
                raise ConfigError(msg)
        self.evaluator = evaluator
        self.sink = sink
        self.background = background
        self.max_workers = max_workers
        self.max_queued = max_queued
        self.on_error = on_error
        self.release_unscored = release_unscored
        if release_unscored and not callable(getattr(sink, "release", None)):
            msg = f"sink must have a release(decision_id) method to release_unscored, got {sink!r}"
            raise TypeError(msg)
        self._keywords = _accepted_keywords(evaluator)
        async_fn = getattr(evaluator, "aevaluate", None)
        self._async_fn: Callable[..., Awaitable[Any]] | None = (
            async_fn if callable(async_fn) else None
        )
        self._async_keywords = (
            _accepted_keywords(self._async_fn) if self._async_fn is not None else None
        )
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_queued)
        self._pool: ThreadPoolExecutor | None = None
        self._futures: set[Future[float | None]] = set()
        self._tasks: set[asyncio.Task[float | None]] = set()
        self._errors = 0
        self._scored = 0
        self._last_error: BaseException | None = None

    # ------------------------------------------------------------------ results
    @property
    def errors(self) -> int:
        """How many evaluations failed (logged, never raised)."""
        return self._errors

    @property
    def scored(self) -> int:
        """How many scores were joined to their decisions."""
        return self._scored

    @property
    def last_error(self) -> BaseException | None:
        """The most recent failure, if any."""
        return self._last_error

    @property
    def pending(self) -> int:
        """Background evaluations not finished yet."""
        with self._lock:
            return len(self._futures) + len(self._tasks)

    # ------------------------------------------------------------------ scoring
    def _kwargs(self, kwargs: Mapping[str, Any], accepted: frozenset[str] | None) -> dict[str, Any]:
        if accepted is None:
            return dict(kwargs)
        return {k: v for k, v in kwargs.items() if k in accepted}

    def score(self, prompt: str, answer: str, /, **kwargs: Any) -> float | None:
        """Run the evaluator now and return its checked score (errors propagate)."""
        result = self.evaluator(prompt, answer, **self._kwargs(kwargs, self._keywords))
        if inspect.isawaitable(result):
            result = _run_coroutine(result)
        return check_score(result)

    async def ascore(self, prompt: str, answer: str, /, **kwargs: Any) -> float | None:
        """Async :meth:`score`: uses ``aevaluate`` when the evaluator has one."""
        if self._async_fn is not None:
            result = await self._async_fn(
                prompt, answer, **self._kwargs(kwargs, self._async_keywords)
            )
        else:
            # A sync evaluator may block (an HTTP judge): it runs off the event loop.
            result = await asyncio.to_thread(
                self.evaluator, prompt, answer, **self._kwargs(kwargs, self._keywords)
            )
            if inspect.isawaitable(result):
                result = await result
        return check_score(result)

    def try_score(
        self, decision_id: str, prompt: str, answer: str, /, **kwargs: Any
    ) -> float | None:
        """Run the evaluator now and return its score, without joining it to the sink.

        For answers scored as they come (a cascade's steps). A failure is handled as in
        :meth:`submit` (logged, counted, ``on_error``) and gives None; nothing is released.
        """
        try:
            return self.score(prompt, answer, **kwargs)
        except Exception as exc:  # noqa: BLE001 - logged and counted in _failed
            self._failed(decision_id, exc)
            return None

    async def atry_score(
        self, decision_id: str, prompt: str, answer: str, /, **kwargs: Any
    ) -> float | None:
        """Async :meth:`try_score` (uses ``aevaluate`` when the evaluator has one)."""
        try:
            return await self.ascore(prompt, answer, **kwargs)
        except Exception as exc:  # noqa: BLE001 - logged and counted in _failed
            self._failed(decision_id, exc)
            return None

    def _unscored(self, decision_id: str) -> None:
        if self.release_unscored:
            self.sink.release(decision_id)  # type: ignore[attr-defined]

    def _join(self, decision_id: str, score: float | None) -> None:
        if score is None:
            logger.debug("no score for decision %s", decision_id)
            self._unscored(decision_id)
            return
        self.sink.feedback(decision_id, score)
        with self._lock:
            self._scored += 1

    def _failed(self, decision_id: str, exc: BaseException) -> None:
        with self._lock:
            self._errors += 1
            self._last_error = exc
        # The exception's text may quote the prompt or the answer, which are never
        # logged: WARNING names its class, DEBUG adds where it was raised (the traceback's
        # frames, without the message). ``last_error`` and ``on_error`` get it whole.
        logger.warning(
            "evaluator %s failed for decision %s: %s",
            type(self.evaluator).__name__,
            decision_id,
            type(exc).__name__,
        )
        logger.debug("evaluator failure for decision %s:\n%s", decision_id, _frames(exc))
        if self.on_error is not None:
            try:
                self.on_error(decision_id, exc)
            except Exception as callback_error:  # noqa: BLE001 - reported, never raised
                logger.warning(
                    "on_error callback failed for decision %s: %s",
                    decision_id,
                    type(callback_error).__name__,
                )
                logger.debug("on_error failure:\n%s", _frames(callback_error))

    def _evaluate(
        self, decision_id: str, prompt: str, answer: str, kwargs: Mapping[str, Any]
    ) -> float | None:
        try:
            score = self.score(prompt, answer, **kwargs)
            self._join(decision_id, score)
        except Exception as exc:  # noqa: BLE001 - logged and counted in _failed
            self._failed(decision_id, exc)
            self._unscored(decision_id)
            return None
        return score

    async def _aevaluate(
        self, decision_id: str, prompt: str, answer: str, kwargs: Mapping[str, Any]
    ) -> float | None:
        try:
            score = await self.ascore(prompt, answer, **kwargs)
            self._join(decision_id, score)
        except Exception as exc:  # noqa: BLE001 - logged and counted in _failed
            self._failed(decision_id, exc)
            self._unscored(decision_id)
            return None
        return score

    # ------------------------------------------------------------------ submitting
    def submit(self, decision_id: str, prompt: str, answer: str, /, **kwargs: Any) -> float | None:
        """Score ``answer`` and join the score to ``decision_id``.

        Returns:
            The score when inline (None if skipped or failed); None in the background.
        """
        if not self.background:
            return self._evaluate(decision_id, prompt, answer, kwargs)
        self._slots.acquire()
        try:
            with self._lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(
                        max_workers=self.max_workers, thread_name_prefix="pickllm-eval"
                    )
                future = self._pool.submit(self._evaluate, decision_id, prompt, answer, kwargs)
                self._futures.add(future)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(self._future_done)
        return None

    def _future_done(self, future: Future[float | None]) -> None:
        with self._lock:
            self._futures.discard(future)
        self._slots.release()

    async def asubmit(
        self, decision_id: str, prompt: str, answer: str, /, **kwargs: Any
    ) -> float | None:
        """Async :meth:`submit`; background work becomes an asyncio task."""
        if not self.background:
            return await self._aevaluate(decision_id, prompt, answer, kwargs)
        with self._lock:
            full = len(self._tasks) >= self.max_queued
        if full:
            return await self._aevaluate(decision_id, prompt, answer, kwargs)
        coro: Coroutine[Any, Any, Any] = self._aevaluate(decision_id, prompt, answer, kwargs)
        task: asyncio.Task[float | None] = asyncio.get_running_loop().create_task(coro)
        with self._lock:
            self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return None

    def _task_done(self, task: asyncio.Task[float | None]) -> None:
        with self._lock:
            self._tasks.discard(task)

    # ------------------------------------------------------------------ waiting
    def join(self, timeout: float | None = None) -> bool:
        """Wait for the background thread-pool work; True if all of it finished.

        Asyncio tasks are awaited with :meth:`ajoin`.
        """
        with self._lock:
            futures = list(self._futures)
        if not futures:
            return True
        import concurrent.futures

        _, not_done = concurrent.futures.wait(futures, timeout=timeout)
        return not not_done

    async def ajoin(self) -> None:
        """Wait for this loop's background tasks and for the thread-pool work."""
        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                tasks = [t for t in self._tasks if t.get_loop() is loop]
            if not tasks:
                break
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._futures:
            await asyncio.to_thread(self.join)

    def close(self, *, wait: bool = True) -> None:
        """Shut the background pool down (waiting for its work unless ``wait=False``)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=wait)

    def __repr__(self) -> str:
        return (
            f"EvaluationRunner({self.evaluator!r}, background={self.background}, "
            f"max_workers={self.max_workers}, max_queued={self.max_queued})"
        )


def _frames(exc: BaseException) -> str:
    """Where ``exc`` was raised: its traceback's frames, without its message."""
    return "".join(traceback.format_tb(exc.__traceback__)) + type(exc).__name__
