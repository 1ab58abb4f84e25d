"""Plans as I/O-free state machines: single (retry, fall back), ensemble, cascade, stream.

Each plan is a generator that yields the actions of :mod:`pickllm.engine.attempts` (call a
candidate, sleep, open or read a stream, emit a chunk, gather sub-plans) and receives
their outcomes. It times every attempt with the injected clock and records exactly one
:class:`~pickllm.Feedback` per attempt into its recorder (normally a
:class:`~pickllm.Router`); a failed attempt is feedback too (``error`` = the exception's
class name, the latency until it failed, estimated input tokens, cost 0). The drivers of
:mod:`pickllm.engine.drivers` perform the actions, synchronously or with ``await``: the
logic below exists once for both.

* **single**: the chosen candidate, retried on transient errors, then its fallbacks along
  ``decision.ranking`` (at most ``max_fallbacks``); a fatal error surfaces at once; when
  every candidate failed, :class:`~pickllm.ExecutionError` (``attempts`` = the failures,
  chained to the last exception).
* **ensemble**: every member at once, each with its own retries and no fallback; ``choose``
  picks the answer among those that came (default: the first member's).
* **cascade**: members in order until ``stop(candidate, answer)`` accepts one (it is not
  asked about the last member's answer); ``choose`` picks the answer returned (default:
  the accepted one).
* **strategy cascade** (a job with a :class:`~pickllm.cascade.CascadeStrategy`): the
  strategy's session says which model runs next and which answer is returned; see
  :meth:`Planner.plan` and the rules below.
* **stream**: one candidate, with retries and fallback only until the first chunk; later
  errors surface after every chunk received has been emitted.

A plan's answers are recorded once it has finished (failures as they happen). With
``await_score`` only the member whose answer is returned waits for the delayed score; the
other members are learned from at once, without one.

A strategy cascade runs, for one call, ``session = strategy.start(query, members,
prompt_tokens=...)`` and then, while ``session.next_model()`` names a model:

* the model runs with the retry settings and no fallback (a step); its wall time,
  retries and waits included, is the step's latency, its cost the answering attempt's;
* a step that fails is told to ``session.failed``; a fatal or content-policy error ends
  the call and surfaces (as in the other plans); a passed deadline ends the cascade, and
  the best answer so far is returned if there is one (else
  :class:`~pickllm.DeadlineExceededError` surfaces);
* a step that answers is scored by the evaluator, if the job has one, inline (a
  :class:`~pickllm.engine.attempts.Score` action), and ``session.observe`` gets its text,
  cost, latency and that score, and returns the post-hoc estimate;
* the answer returned is ``session.final()``'s; ``strategy.settle(session)`` runs at the
  end of every call, also one that fails or is cancelled.

Each answering step is recorded as one feedback whose ``quality`` is the evaluator's
score when it gave one, else the post-hoc estimate (``extra`` keeps the estimate as
``("cascade_estimate", q)``); only the returned step of a job with ``await_score`` and no
evaluator score waits for a delayed score instead. Failed attempts are recorded as they
happen, answers once the cascade has ended (also when it fails).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Generic, Protocol, TypeVar, runtime_checkable

import numpy as np

from pickllm.cascade.protocol import CascadeSession, CascadeStep, CascadeStrategy
from pickllm.engine.attempts import (
    Call,
    Close,
    Emit,
    ErrorKind,
    Gather,
    Next,
    Open,
    Outcome,
    RetryConfig,
    Score,
    Sleep,
    all_failed,
    retry_after_s,
)
from pickllm.errors import ConfigError, DeadlineExceededError
from pickllm.pricing import Usage, estimate_tokens, make_feedback
from pickllm.types import Candidate, Decision, Feedback, SeedLike

__all__ = [
    "ClosedEarly",
    "ExecutionResult",
    "Job",
    "Machine",
    "MemoryRecorder",
    "Planner",
    "Recorder",
]

T = TypeVar("T")

Machine = Generator[Any, Any, T]
"""A plan: yields actions, receives their outcomes, returns its result."""


class ClosedEarly(Exception):  # noqa: N818 - a signal, not an error
    """Thrown into a stream's machine when its consumer stopped reading."""


@runtime_checkable
class Recorder(Protocol):
    """Where a plan records feedback; :class:`~pickllm.Router` is one.

    ``record`` is called once per attempt with the decision retargeted to the candidate
    that ran (``feedback.candidate`` names it too) and returns the reward, or None when
    the reward waits for a delayed score (``await_score=True``).

    Examples:
        >>> isinstance(MemoryRecorder(), Recorder)
        True
    """

    def record(
        self, decision: Decision, feedback: Feedback, *, await_score: bool = False
    ) -> float | None:
        """Record ``feedback`` for ``decision``; return the reward if known."""
        ...


class MemoryRecorder:
    """A :class:`Recorder` that keeps what it is given, in order (thread-safe).

    Useful in tests and to run plans without a router. ``record`` returns None.

    Examples:
        >>> rec = MemoryRecorder()
        >>> a = Candidate(name="a")
        >>> d = Decision(decision_id="d1", candidate=a, ranking=(a,), probability=1.0,
        ...              policy="fixed")
        >>> rec.record(d, Feedback(latency_s=0.1)) is None
        True
        >>> [(dec.decision_id, fb.latency_s, wait) for dec, fb, wait in rec.records]
        [('d1', 0.1, False)]
    """

    def __init__(self) -> None:
        self._records: list[tuple[Decision, Feedback, bool]] = []
        self._lock = threading.Lock()

    def record(
        self, decision: Decision, feedback: Feedback, *, await_score: bool = False
    ) -> float | None:
        """Keep ``(decision, feedback, await_score)``; return None."""
        with self._lock:
            self._records.append((decision, feedback, await_score))
        return None

    @property
    def records(self) -> tuple[tuple[Decision, Feedback, bool], ...]:
        """Every ``(decision, feedback, await_score)`` recorded so far, in order."""
        with self._lock:
            return tuple(self._records)

    @property
    def feedbacks(self) -> tuple[Feedback, ...]:
        """The recorded feedback, in order."""
        with self._lock:
            return tuple(fb for _, fb, _ in self._records)


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionResult(Generic[T]):
    """What running a decision produced.

    Args:
        value: the answer returned (for streams, the list of chunks).
        decision: the decision, retargeted to the candidate that served the answer.
        feedback: the feedback of the answer; for plans, the combined feedback (tokens and
            cost summed over the answering members, latency the plan's wall time).
        attempts: the feedback of every attempt, in order (plans: member by member).
        reward: the reward the recorder returned for the served answer, or None while a
            delayed score is awaited.
        values: the answer of each member that answered, in plan order.
        served_by: the names of the candidates whose answers are in ``values``.
        steps: for a strategy cascade, every step run, in order (model, cost, latency,
            post-hoc estimate, the strategy's ex-ante estimate, error); else empty.

    Examples:
        >>> a = Candidate(name="a")
        >>> d = Decision(decision_id="d1", candidate=a, ranking=(a,), probability=1.0,
        ...              policy="fixed")
        >>> r = ExecutionResult(value="hi", decision=d, feedback=Feedback(), attempts=(),
        ...                     reward=None, values=("hi",), served_by=("a",))
        >>> r.value, r.served_by
        ('hi', ('a',))
    """

    value: T
    decision: Decision
    feedback: Feedback
    attempts: tuple[Feedback, ...]
    reward: float | None
    values: tuple[T, ...]
    served_by: tuple[str, ...]
    steps: tuple[CascadeStep, ...] = ()


# Built on every call and never changed: plain slots, without frozen's per-field cost.
@dataclass(slots=True, kw_only=True)
class Job:
    """One run of a decision: what to run and how to read its answers.

    Args:
        decision: what to run; its ``kind`` selects single, ensemble or cascade.
        usage: reads the token usage (and cost, if reported) off an answer (for streams,
            off the list of chunks); fields left None are estimated.
        await_score: the returned answer waits for a delayed quality score.
        prompt_text: the prompt, to estimate input tokens when usage has none.
        text: the text of an answer, to estimate output tokens when usage has none; None
            uses the answer itself if it is a string (or joins string chunks), else "".
        choose: picks the returned answer among a plan's answers (an index).
        stop: for a cascade, whether an answer is accepted.
        strategy: a cascade strategy; with one, a ``cascade`` decision runs as a strategy
            cascade over its members.
        query: the query the strategy's session starts with.
        score: a strategy cascade's steps are scored inline (the driver performs a
            :class:`~pickllm.engine.attempts.Score` action per answer).
    """

    decision: Decision
    usage: Callable[[Candidate, Any], Usage]
    await_score: bool = False
    prompt_text: str = ""
    text: Callable[[Any], str] | None = None
    choose: Callable[[Sequence[Any]], int] | None = None
    stop: Callable[[Candidate, Any], bool] | None = None
    strategy: CascadeStrategy | None = None
    query: str = ""
    score: bool = False


@dataclass(slots=True, eq=False)
class _Member:
    """What one plan member produced: an answer and its (unrecorded) feedback, or an error."""

    candidate: Candidate
    attempts: list[Feedback] = field(default_factory=list)
    answer: tuple[Any, Feedback] | None = None
    error: Exception | None = None
    latency_s: float = 0.0
    """A cascade step's wall time, retries and waits included."""
    score: float | None = None
    """A cascade step's evaluator score."""
    estimate: float | None = None
    """A cascade step's post-hoc estimate (``session.observe``)."""


class Planner:
    """Builds the state machine of a job and records its feedback.

    Args:
        recorder: where each attempt's feedback goes (a Router, or a MemoryRecorder).
        retry: the retry and fallback settings; None uses ``RetryConfig()``.
        clock: monotonic clock in seconds, used to time every attempt.
        seed: seed of the generator that draws the backoff jitter.
    """

    def __init__(
        self,
        recorder: Recorder,
        *,
        retry: RetryConfig | None,
        clock: Callable[[], float],
        seed: SeedLike,
    ) -> None:
        if retry is not None and not isinstance(retry, RetryConfig):
            msg = f"retry must be a RetryConfig or None, got {retry!r}"
            raise TypeError(msg)
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, int | np.random.Generator)
        ):
            msg = f"seed must be an int, a numpy Generator or None, got {seed!r}"
            raise TypeError(msg)
        self.recorder = recorder
        self.config = retry if retry is not None else RetryConfig()
        self.clock = clock
        self._rng = np.random.default_rng(seed)
        # Ensemble members retry in parallel threads; a Generator is not thread-safe.
        self._rng_lock = threading.Lock()

    # ------------------------------------------------------------------ rules
    def backoff(self, failures: int) -> float:
        """The wait in seconds after the ``failures``-th failed attempt (draws jitter).

        Raises:
            ConfigError: ``failures`` is less than 1.
        """
        if isinstance(failures, bool) or not isinstance(failures, int) or failures < 1:
            msg = f"failures must be an int >= 1, got {failures!r}"
            raise ConfigError(msg)
        jitter = 0.0
        if self.config.jitter_s > 0.0:
            with self._rng_lock:
                jitter = float(self._rng.random())
        return self.config.wait_s(failures, jitter)

    def kind(self, exc: BaseException) -> ErrorKind:
        """How a failed attempt's error is handled."""
        return self.config.classify(exc)

    def _admits(self, candidate: Candidate) -> bool:
        """Whether the recorder's circuit breaker (``Router.admits``) lets it be retried now."""
        admits = getattr(self.recorder, "admits", None)
        return True if admits is None else bool(admits(candidate.name))

    def order(self, decision: Decision) -> tuple[Candidate, ...]:
        """The chosen candidate, then its fallbacks from the ranking."""
        first = decision.candidate
        rest = [c for c in decision.ranking if c.name != first.name]
        if self.config.max_fallbacks is not None:
            del rest[self.config.max_fallbacks :]
        return (first, *rest)

    # ------------------------------------------------------------------ feedback
    def _failed(  # noqa: PLR0917 - the parts of one failure, internal
        self,
        job: Job,
        candidate: Candidate,
        exc: BaseException,
        latency_s: float,
        attempts: list[Feedback],
        ttft: float | None = None,
    ) -> None:
        feedback = make_feedback(
            candidate,
            Usage(output_tokens=0, cost_usd=0.0),
            latency_s=max(latency_s, 0.0),
            prompt_text=job.prompt_text,
            error=type(exc).__name__,
            time_to_first_token_s=ttft,
            error_kind=self.kind(exc).value if isinstance(exc, Exception) else None,
        )
        attempts.append(feedback)
        self.recorder.record(job.decision.retarget(candidate), feedback)

    @staticmethod
    def _answered(
        job: Job, candidate: Candidate, value: Any, latency_s: float, ttft: float | None = None
    ) -> Feedback:
        usage = job.usage(candidate, value)
        text = ""
        if usage.output_tokens is None:
            text = job.text(value) if job.text is not None else _plain_text(value)
        return make_feedback(
            candidate,
            usage,
            latency_s=max(latency_s, 0.0),
            prompt_text=job.prompt_text,
            completion_text=text,
            time_to_first_token_s=ttft,
        )

    # ------------------------------------------------------------------ machines
    def plan(self, job: Job) -> Machine[ExecutionResult[Any]]:
        """The machine that runs ``job``'s decision (single, ensemble or cascade).

        A ``cascade`` decision runs as a strategy cascade when ``job.strategy`` is set
        (see the module docstring), else as the fixed list of its members.
        """
        until = self._until()
        kind = job.decision.kind
        if kind == "ensemble":
            return self._ensemble(job, until)
        if kind == "cascade":
            if job.strategy is not None:
                return self._strategy_cascade(job, job.strategy, until)
            return self._cascade(job, until)
        return self._single(job, until)

    def _until(self) -> float | None:
        deadline = self.config.deadline
        return None if deadline is None else self.clock() + deadline

    def _timeout(self, job: Job, until: float | None, attempts: list[Feedback]) -> float | None:
        """This attempt's time limit; raises DeadlineExceededError once the deadline passed."""
        timeout = self.config.timeout
        if until is None:
            return timeout
        left = until - self.clock()
        if left <= 0.0:
            failed = all_failed(job.decision, attempts)
            msg = f"the call's deadline of {self.config.deadline} s passed: {failed}"
            raise DeadlineExceededError(msg, attempts=failed.attempts)
        return left if timeout is None else min(timeout, left)

    def _serve(
        self,
        job: Job,
        candidate: Candidate,
        action: type[Call | Open],
        attempts: list[Feedback],
        until: float | None,
    ) -> Machine[tuple[Any, Feedback | None, float, float]]:
        """Attempts on one candidate until one succeeds.

        Returns the value, its feedback (for a call; None for an opened stream), and the
        attempt's start and end. Reading the usage off an answer is part of the attempt.
        """
        failures = 0
        while True:
            timeout = self._timeout(job, until, attempts)
            start = self.clock()
            outcome: Outcome = yield action(candidate, timeout)
            end = self.clock()
            exc = outcome.error
            if exc is None:
                if action is not Call:
                    return outcome.value, None, start, end
                try:
                    feedback = self._answered(job, candidate, outcome.value, end - start)
                except Exception as err:  # noqa: BLE001 - a failed attempt, handled below
                    exc = err
                else:
                    return outcome.value, feedback, start, end
            self._failed(job, candidate, exc, end - start, attempts)
            failures += 1
            if (
                not isinstance(exc, Exception)
                or self.kind(exc) is not ErrorKind.TRANSIENT
                or failures >= self.config.max_attempts
                or not self._admits(candidate)
            ):
                raise exc
            wait = self.backoff(failures)
            asked = retry_after_s(exc)
            if asked is not None:
                if asked > self.config.max_wait_s:
                    raise exc  # the model asks for longer than we wait: fall back
                wait = max(wait, asked)
            if until is not None:
                wait = min(wait, max(until - self.clock(), 0.0))
            yield Sleep(wait)

    def _fall_back(
        self,
        job: Job,
        action: type[Call | Open],
        attempts: list[Feedback],
        until: float | None,
    ) -> Machine[tuple[Candidate, Any, Feedback | None, float, float]]:
        """The first candidate of the order that answers, and what ``_serve`` returned."""
        order = list(self.order(job.decision))
        last: Exception | None = None
        while order:
            candidate = order.pop(0)
            try:
                value, feedback, start, end = yield from self._serve(
                    job, candidate, action, attempts, until
                )
            except Exception as exc:  # noqa: BLE001 - _after classifies it, or re-raises
                order = self._after(exc, candidate, order, job.decision)
                last = exc
                continue
            return candidate, value, feedback, start, end
        raise all_failed(job.decision, attempts) from last

    def _after(
        self, exc: Exception, failed: Candidate, order: list[Candidate], decision: Decision
    ) -> list[Candidate]:
        """The candidates still to try after ``failed`` raised ``exc`` (or ``exc`` itself)."""
        kind = self.kind(exc)
        if kind is ErrorKind.FATAL or isinstance(exc, DeadlineExceededError):
            raise exc
        if kind is ErrorKind.CONTENT_POLICY:
            fallbacks = self.config.content_policy_fallbacks
            if not fallbacks:
                raise exc
            known = {c.name: c for c in (*decision.ranking, *order)}
            return [known[n] for n in fallbacks if n in known and n != failed.name]
        if kind is ErrorKind.CONTEXT_LENGTH and failed.max_context_tokens is not None:
            limit = failed.max_context_tokens
            return [
                c for c in order if c.max_context_tokens is None or c.max_context_tokens > limit
            ]
        return order

    def _single(self, job: Job, until: float | None) -> Machine[ExecutionResult[Any]]:
        attempts: list[Feedback] = []
        candidate, value, feedback, _, _ = yield from self._fall_back(job, Call, attempts, until)
        assert feedback is not None  # noqa: S101 - a call's attempt has its feedback
        return self._record_one(job, candidate, value, feedback, attempts)

    def _record_one(
        self, job: Job, candidate: Candidate, value: Any, feedback: Feedback, attempts: list[Any]
    ) -> ExecutionResult[Any]:
        served = job.decision.retarget(candidate)
        reward = self.recorder.record(served, feedback, await_score=job.await_score)
        attempts.append(feedback)
        return ExecutionResult(
            value=value,
            decision=served,
            feedback=feedback,
            attempts=tuple(attempts),
            reward=reward,
            values=(value,),
            served_by=(candidate.name,),
        )

    def _member(self, job: Job, candidate: Candidate, until: float | None) -> Machine[_Member]:
        member = _Member(candidate=candidate)
        try:
            value, feedback, _, _ = yield from self._serve(
                job, candidate, Call, member.attempts, until
            )
        except Exception as exc:  # noqa: BLE001 - kept; _finish_plan surfaces it
            member.error = exc
        else:
            assert feedback is not None  # noqa: S101 - a call's attempt has its feedback
            member.answer = (value, feedback)
        return member

    def _ensemble(self, job: Job, until: float | None) -> Machine[ExecutionResult[Any]]:
        start = self.clock()
        members = yield Gather(tuple(self._member(job, m, until) for m in job.decision.members))
        return self._finish_plan(job, members, self.clock() - start, ensemble=True)

    def _cascade(self, job: Job, until: float | None) -> Machine[ExecutionResult[Any]]:
        start = self.clock()
        steps = job.decision.members
        members: list[_Member] = []
        for i, candidate in enumerate(steps):
            member = yield from self._member(job, candidate, until)
            members.append(member)
            if member.error is not None:
                if self._stops(member.error):
                    break
                continue
            assert member.answer is not None  # noqa: S101 - set when no error
            last = i == len(steps) - 1
            if not last and (job.stop is None or job.stop(candidate, member.answer[0])):
                break
        return self._finish_plan(job, members, self.clock() - start, ensemble=False)

    # ------------------------------------------------------------------ strategy cascade
    def _strategy_cascade(
        self, job: Job, strategy: CascadeStrategy, until: float | None
    ) -> Machine[ExecutionResult[Any]]:
        start = self.clock()
        offered = {c.name: c for c in job.decision.members}
        session = strategy.start(
            job.query, tuple(offered.values()), prompt_tokens=estimate_tokens(job.prompt_text)
        )
        members: list[_Member] = []
        served: _Member | None = None
        reward: float | None = None
        try:
            stopped = yield from self._steps(job, strategy, session, offered, members, until)
            _revise_estimates(strategy, session, members)
            served = self._returned(job, strategy, session, members, stopped)
        finally:
            # Also when the call fails or is cancelled: what was paid for is learned from.
            reward = self._record_steps(job, members, served)
            strategy.settle(session)
        return self._cascade_result(job, session, members, served, self.clock() - start, reward)

    def _steps(  # noqa: PLR0917 - the parts of one cascade, internal
        self,
        job: Job,
        strategy: CascadeStrategy,
        session: CascadeSession,
        offered: dict[str, Candidate],
        members: list[_Member],
        until: float | None,
    ) -> Machine[Exception | None]:
        """Run the session's steps; return the error that ended the cascade early, if any."""
        while (name := session.next_model()) is not None:
            candidate = offered.get(name)
            if candidate is None or any(m.candidate.name == name for m in members):
                msg = (
                    f"the cascade strategy {strategy.name!r} proposed model {name!r}, which "
                    f"is not among the models offered for this call {sorted(offered)} or "
                    "has already run in it"
                )
                raise ConfigError(msg)
            begun = self.clock()
            member = yield from self._member(job, candidate, until)
            member.latency_s = max(self.clock() - begun, 0.0)
            members.append(member)
            if member.error is not None:
                session.failed(name, error=type(member.error).__name__, latency_s=member.latency_s)
                if self._stops(member.error):
                    return member.error
                continue
            assert member.answer is not None  # noqa: S101 - set when no error
            value, feedback = member.answer
            if job.score:
                member.score = yield Score(candidate, value)
            text = job.text(value) if job.text is not None else _plain_text(value)
            estimate = session.observe(
                name,
                text,
                cost_usd=feedback.cost_usd,
                latency_s=member.latency_s,
                score=member.score,
            )
            member.estimate = _checked_estimate(strategy, name, estimate)
        return None

    def _returned(
        self,
        job: Job,
        strategy: CascadeStrategy,
        session: CascadeSession,
        members: Sequence[_Member],
        stopped: Exception | None,
    ) -> _Member:
        """The step whose answer the call returns, or the error the call raises."""
        answered = {m.candidate.name: m for m in members if m.answer is not None}
        if stopped is not None and not (isinstance(stopped, DeadlineExceededError) and answered):
            raise stopped
        if not answered:
            attempts = [f for m in members for f in m.attempts]
            last = next((m.error for m in reversed(members) if m.error is not None), None)
            raise all_failed(job.decision, attempts) from last
        name = session.final()
        served = answered.get(name)
        if served is None:
            msg = (
                f"the cascade strategy {strategy.name!r} returned model {name!r} as final, "
                f"but only {sorted(answered)} answered in this call"
            )
            raise ConfigError(msg)
        return served

    def _record_steps(
        self, job: Job, members: Sequence[_Member], served: _Member | None
    ) -> float | None:
        """Record each answering step (the returned one first); the returned one's reward."""
        reward: float | None = None
        answered = [m for m in members if m.answer is not None]
        for member in sorted(answered, key=lambda m: m is not served):
            assert member.answer is not None  # noqa: S101 - filtered above
            feedback = self._step_feedback(member)
            waits = job.await_score and member is served and member.score is None
            if waits:
                feedback = replace(feedback, quality=None)
            member.answer = (member.answer[0], feedback)
            got = self.recorder.record(
                job.decision.retarget(member.candidate), feedback, await_score=waits
            )
            if member is served:
                reward = got
        return reward

    @staticmethod
    def _step_feedback(member: _Member) -> Feedback:
        assert member.answer is not None  # noqa: S101 - only answering steps
        feedback = member.answer[1]
        quality = member.score if member.score is not None else member.estimate
        extra = feedback.extra
        if member.estimate is not None:
            extra = (*extra, ("cascade_estimate", member.estimate))
        return replace(feedback, quality=quality, extra=extra)

    def _cascade_result(  # noqa: PLR0917 - the parts of one cascade, internal
        self,
        job: Job,
        session: CascadeSession,
        members: Sequence[_Member],
        served: _Member | None,
        latency: float,
        reward: float | None,
    ) -> ExecutionResult[Any]:
        assert served is not None  # noqa: S101 - _returned raised otherwise
        assert served.answer is not None  # noqa: S101 - an answering step
        ex_ante = {step.model: step.ex_ante for step in session.steps}
        attempts: list[Feedback] = []
        steps: list[CascadeStep] = []
        answered: list[_Member] = []
        for member in members:
            attempts.extend(member.attempts)
            name = member.candidate.name
            if member.answer is None:
                error = type(member.error).__name__ if member.error is not None else None
                steps.append(
                    CascadeStep(
                        model=name,
                        cost_usd=0.0,
                        latency_s=member.latency_s,
                        quality=None,
                        ex_ante=ex_ante.get(name),
                        error=error,
                    )
                )
                continue
            answered.append(member)
            attempts.append(member.answer[1])
            steps.append(
                CascadeStep(
                    model=name,
                    cost_usd=member.answer[1].cost_usd,
                    latency_s=member.latency_s,
                    quality=member.estimate,
                    ex_ante=ex_ante.get(name),
                )
            )
        feedbacks = [m.answer[1] for m in answered if m.answer is not None]
        combined = Feedback(
            latency_s=max(latency, 0.0),
            input_tokens=sum(f.input_tokens for f in feedbacks),
            output_tokens=sum(f.output_tokens for f in feedbacks),
            cost_usd=sum(f.cost_usd for f in feedbacks),
            tokens_estimated=any(f.tokens_estimated for f in feedbacks),
            quality=served.score if served.score is not None else served.estimate,
        )
        return ExecutionResult(
            value=served.answer[0],
            decision=job.decision.retarget(served.candidate),
            feedback=combined,
            attempts=tuple(attempts),
            reward=reward,
            values=tuple(m.answer[0] for m in answered if m.answer is not None),
            served_by=tuple(m.candidate.name for m in answered),
            steps=tuple(steps),
        )

    def _stops(self, exc: Exception) -> bool:
        """Whether a plan member's error ends the plan and surfaces."""
        kind = self.kind(exc)
        return (
            kind is ErrorKind.FATAL
            or (kind is ErrorKind.CONTENT_POLICY and not self.config.content_policy_fallbacks)
            or isinstance(exc, DeadlineExceededError)
        )

    def _finish_plan(
        self, job: Job, members: Sequence[_Member], latency: float, *, ensemble: bool
    ) -> ExecutionResult[Any]:
        """Record the answers of a finished plan and pick the one returned."""
        answered = [(m, m.answer) for m in members if m.answer is not None]
        fatal = next((m.error for m in members if m.error and self._stops(m.error)), None)
        attempts: list[Feedback] = []
        for member in members:
            attempts.extend(member.attempts)
            if member.answer is not None:
                attempts.append(member.answer[1])
        values = tuple(answer[0] for _, answer in answered)
        served: _Member | None = None
        if answered:
            index = (0 if ensemble else -1) if job.choose is None else job.choose(values)
            served = answered[index][0]
        # The answer returned is the one a delayed score judges; the waiting member is
        # recorded first, since a Router closes a decision's pending entry when an answer
        # that does not wait arrives before one that does.
        waits = job.await_score and fatal is None
        reward: float | None = None
        ordered = sorted(answered, key=lambda pair: pair[0] is not served)
        for member, (_, feedback) in ordered:
            got = self.recorder.record(
                job.decision.retarget(member.candidate),
                feedback,
                await_score=waits and member is served,
            )
            if member is served:
                reward = got
        if fatal is not None:
            raise fatal
        if served is None or served.answer is None:
            last = next((m.error for m in reversed(members) if m.error is not None), None)
            raise all_failed(job.decision, attempts) from last
        feedbacks = [answer[1] for _, answer in answered]
        combined = Feedback(
            latency_s=max(latency, 0.0),
            input_tokens=sum(f.input_tokens for f in feedbacks),
            output_tokens=sum(f.output_tokens for f in feedbacks),
            cost_usd=sum(f.cost_usd for f in feedbacks),
            tokens_estimated=any(f.tokens_estimated for f in feedbacks),
        )
        return ExecutionResult(
            value=served.answer[0],
            decision=job.decision.retarget(served.candidate),
            feedback=combined,
            attempts=tuple(attempts),
            reward=reward,
            values=values,
            served_by=tuple(m.candidate.name for m, _ in answered),
        )

    def stream(
        self,
        job: Job,
        on_start: Callable[[Candidate], None] | None = None,
        on_finish: Callable[[ExecutionResult[list[Any]]], None] | None = None,
    ) -> Machine[ExecutionResult[list[Any]]]:
        """The machine that streams ``job``'s chosen candidate (the plan is not used).

        If the consumer stops early (the driver throws :class:`ClosedEarly`), the chunks
        received so far are recorded as a successful call with
        ``extra=(("closed_early", 1.0),)`` and the stream is closed.
        """
        attempts: list[Feedback] = []
        until = self._until()
        candidate, (iterator, head), _, start, first_at = yield from self._fall_back(
            job, Open, attempts, until
        )
        if on_start is not None:
            on_start(candidate)
        ttft = first_at - start if head else None
        chunks: list[Any] = []
        closed_early = False
        try:
            while head:
                chunks.append(head[0])
                yield Emit(head[0])
                outcome: Outcome = yield Next(iterator, self.config.timeout)
                if outcome.error is not None:
                    yield Close(iterator)
                    self._failed(
                        job, candidate, outcome.error, self.clock() - start, attempts, ttft
                    )
                    raise outcome.error
                head = outcome.value
        except ClosedEarly:
            closed_early = True
            yield Close(iterator)
        latency = self.clock() - start
        try:
            feedback = self._answered(job, candidate, chunks, latency, ttft)
        except Exception as exc:
            self._failed(job, candidate, exc, latency, attempts, ttft)
            raise
        if closed_early:
            feedback = replace(feedback, extra=(*feedback.extra, ("closed_early", 1.0)))
        result = self._record_one(job, candidate, chunks, feedback, attempts)
        if on_finish is not None:
            on_finish(result)
        return result


def _revise_estimates(
    strategy: CascadeStrategy, session: CascadeSession, members: Sequence[_Member]
) -> None:
    """Each answering step's estimate as the session holds it once the steps are over.

    A session may revise an earlier answer's estimate when a later one comes (agreement);
    the feedback and the metadata then carry the estimate ``final()`` compared.
    """
    latest = {step.model: step.quality for step in session.steps if step.quality is not None}
    for member in members:
        name = member.candidate.name
        if member.estimate is not None and name in latest:
            member.estimate = _checked_estimate(strategy, name, latest[name])


def _checked_estimate(strategy: CascadeStrategy, model: str, estimate: object) -> float:
    """A session's post-hoc estimate, checked to be a number in [0, 1]."""
    if isinstance(estimate, bool) or not isinstance(estimate, int | float | np.floating):
        msg = (
            f"the cascade strategy {strategy.name!r} estimated {estimate!r} for {model!r}; "
            "observe() must return a number in [0, 1]"
        )
        raise ConfigError(msg)
    value = float(estimate)
    if not 0.0 <= value <= 1.0:  # also rejects NaN
        msg = (
            f"the cascade strategy {strategy.name!r} estimated {estimate!r} for {model!r}; "
            "observe() must return a number in [0, 1]"
        )
        raise ConfigError(msg)
    return value


def _plain_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "".join(value)
    return ""
