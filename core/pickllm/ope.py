"""Off-policy evaluation: what another policy would have earned on logged traffic.

A router that logs, per call, the context (features or query and key), the offered
candidates, the chosen one, the probability it was chosen with (``Decision.probability``)
and the reward can be used to compare policies without deploying them. :func:`log_record`
builds one JSON-ready record and :func:`append_log` appends it to a JSONL file;
:func:`read_log` reads such a file back. A :class:`DecisionLog` given to a ``Router``
(``decision_log=``) writes such a file from live traffic: one line per learned decision,
with the context's features and key but not its query text (unless ``include_query``).

:func:`evaluate` replays a log through a target policy, which picks a candidate for each
logged context, and estimates the target's mean reward three ways:

* ``ips``: inverse propensity scoring, ``mean(1[target == logged] * r / p)``; unbiased
  when the logged propensities are right and positive wherever the target may go.
* ``snips``: self-normalised IPS, ``sum(w r) / sum(w)``; slightly biased, far less variance.
* ``dr``: doubly robust, ``mean(rhat(x, target) + w * (r - rhat(x, logged)))`` with a
  ridge reward model ``rhat`` per candidate over the context features, cross-fitted on two
  halves of the log (each half's terms use the model fitted on the other half); unbiased
  if either the propensities or the reward model are right, and usually the tightest.

Each estimate comes with a normal-approximation confidence interval from the spread of the
per-record terms (the delta method for ``snips``). With ``learn=True`` the target learns
from the records where it picked the logged candidate (the replay method of Li et al.,
2011), to evaluate a learning policy; otherwise it is evaluated as it stands.

Examples:
    >>> import numpy as np
    >>> from pickllm.policies import Fixed, Random
    >>> from pickllm.types import Candidate, Context
    >>> pool = (Candidate(name="a"), Candidate(name="b"))
    >>> rng = np.random.default_rng(1)
    >>> logger = Random(seed=0)
    >>> log = []
    >>> for _ in range(2000):
    ...     decision = logger.select(Context(query="q", candidates=pool))
    ...     reward = float(rng.random() < (0.8 if decision.candidate.name == "b" else 0.3))
    ...     log.append(LoggedDecision.from_decision(Context(query="q", candidates=pool),
    ...                                              decision, reward))
    >>> est = evaluate(Fixed(model="b", seed=0), log, method="dr")
    >>> round(est.value, 2), est.low < 0.8 < est.high
    (0.81, True)
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import threading
import warnings
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any, Literal, Self

import numpy as np

from pickllm.errors import ConfigError, ConfigTypeError, PickLLMWarning
from pickllm.policies.base import Policy
from pickllm.policies.features import structural_features
from pickllm.types import Candidate, Context, Decision

__all__ = [
    "DecisionLog",
    "DecisionLogWarning",
    "Estimate",
    "KeptContext",
    "LoggedDecision",
    "append_log",
    "evaluate",
    "log_record",
    "read_log",
]

Method = Literal["ips", "snips", "dr"]

_ENCODER = json.JSONEncoder(allow_nan=False)
"""One encoder for every record (``json.dumps`` with options builds one per call)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggedDecision:
    """One logged call: what was offered, what was chosen, with which chance, and the reward.

    Args:
        context: the call's context (query, key and/or features, offered candidates).
        chosen: the name of the chosen candidate.
        propensity: the probability the logging policy chose it, in (0, 1].
        reward: the reward observed, in [0, 1].
    """

    context: Context
    chosen: str
    propensity: float
    reward: float

    def __post_init__(self) -> None:
        if not 0.0 < self.propensity <= 1.0:
            msg = f"LoggedDecision propensity must be in (0, 1], got {self.propensity!r}"
            raise ConfigError(msg)
        if not 0.0 <= self.reward <= 1.0:
            msg = f"LoggedDecision reward must be in [0, 1], got {self.reward!r}"
            raise ConfigError(msg)

    @classmethod
    def from_decision(cls, context: Context, decision: Decision, reward: float) -> LoggedDecision:
        """The record of ``decision`` made on ``context`` and rewarded ``reward``."""
        return cls(
            context=context,
            chosen=decision.candidate.name,
            propensity=decision.probability,
            reward=reward,
        )


def log_record(context: Context, decision: Decision, reward: float) -> dict[str, Any]:
    """A JSON-ready record of one call, as :func:`append_log` writes it."""
    return {
        "query": context.query,
        "key": context.key,
        "features": None if context.features is None else list(context.features),
        "candidates": [
            {"name": c.name, "input_price": c.input_price, "output_price": c.output_price}
            for c in context.candidates
        ],
        "chosen": decision.candidate.name,
        "propensity": decision.probability,
        "reward": reward,
    }


def append_log(
    path: str | os.PathLike[str], context: Context, decision: Decision, reward: float
) -> None:
    """Append the record of one call to the JSONL file ``path``."""
    with Path(path).open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(log_record(context, decision, reward), allow_nan=False) + "\n")


@dataclass(frozen=True, slots=True)
class KeptContext:
    """What a :class:`DecisionLog` keeps of a routed call's context until its reward.

    Args:
        query: the query text, or None (the default: text is not logged).
        key: the context key.
        features: the features the record will hold.
        candidates: the offered candidates.
    """

    query: str | None
    key: str | None
    features: tuple[float, ...]
    candidates: tuple[Candidate, ...]


class DecisionLogWarning(PickLLMWarning):
    """A decision record could not be written (disk full, file removed): routing goes on."""


class DecisionLog:
    """An append-only JSONL file of a router's learned decisions, for :func:`evaluate`.

    Give it (or just its path) to ``Router(decision_log=...)`` or to a wrapper's
    ``decision_log`` setting. When the reward of a decision is known (recorded, scored,
    released or expired), the router appends one line: the context's features (the
    ``Context.features`` given to the router, else the structural features of the query
    computed when it was routed, :func:`pickllm.policies.features.structural_features`
    without its bias term), its key, the offered candidates, the chosen one, the
    probability it was chosen with and the reward. The query text is left out unless
    ``include_query=True``. Only the chosen candidate's outcome is logged: a fallback's or
    a plan member's answer was not chosen with the decision's probability.

    Lines are written whole under a lock (threads and routers may share one log), each with
    one append; a line that cannot be written is undone and a
    :class:`DecisionLogWarning` is issued: the app never sees the error.

    Args:
        path: the JSONL file (created if missing, appended to if present).
        include_query: also log the query text (user text: off by default).

    Raises:
        ConfigError: the file cannot be opened for appending (the message names
            ``decision_log``); ``ConfigTypeError`` for a path that is not a str or a path.

    Examples:
        >>> import tempfile, pathlib
        >>> from pickllm import Candidate, Feedback, Router
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "decisions.jsonl"
        >>> router = Router([Candidate(name="a"), Candidate(name="b")], seed=0,
        ...                 decision_log=DecisionLog(path))
        >>> d = router.route("What is 2+2?")
        >>> router.record(d, Feedback(latency_s=0.1, quality=1.0)) is not None
        True
        >>> [r.chosen == d.candidate.name for r in read_log(path)]
        [True]
        >>> "2+2" in path.read_text()
        False
        >>> router.decision_log.close()
    """

    def __init__(self, path: str | os.PathLike[str], *, include_query: bool = False) -> None:
        if isinstance(path, DecisionLog) or not isinstance(path, str | os.PathLike):
            msg = f"decision_log must be a file path or a DecisionLog, got {path!r}"
            raise ConfigTypeError(msg)
        if not isinstance(include_query, bool):
            msg = f"DecisionLog include_query must be a bool, got {include_query!r}"
            raise ConfigTypeError(msg)
        self.path = Path(path)
        self.include_query = include_query
        self._lock = threading.Lock()
        self._candidates: tuple[tuple[Candidate, ...], str] | None = None
        try:
            self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            msg = f"decision_log: cannot append to {str(self.path)!r}: {exc.strerror or exc}"
            raise ConfigError(msg) from exc
        # The file is closed when the log is garbage-collected, if not by close().
        self._closer = weakref.finalize(self, os.close, self._fd)

    def __repr__(self) -> str:
        return f"DecisionLog({str(self.path)!r}, include_query={self.include_query})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file; later records are dropped with a warning."""
        with self._lock:
            if self._fd is not None:
                self._closer()
                self._fd = None

    def keep(self, context: Context) -> KeptContext:
        """What is kept of ``context`` until its reward is known (features, not text)."""
        features = context.features
        if features is None:
            features = tuple(structural_features(context.query)[1:].tolist())
        return KeptContext(
            query=context.query if self.include_query else None,
            key=context.key,
            features=features,
            candidates=context.candidates,
        )

    def write(self, kept: KeptContext, decision: Decision, reward: float) -> bool:
        """Append the record of one decision; False (and a warning) if it failed.

        Args:
            kept: what :meth:`keep` kept of the decision's context.
            decision: the decision.
            reward: the reward learned from it.
        """
        head: dict[str, Any] = {"key": kept.key, "features": list(kept.features)}
        if kept.query is not None:
            head["query"] = kept.query
        tail = {
            "chosen": decision.candidate.name,
            "propensity": decision.probability,
            "reward": reward,
        }
        try:
            # The offered candidates' JSON is cached: one record is the two dicts around it.
            line = (
                f"{_ENCODER.encode(head)[:-1]}, "
                f'"candidates": {self._candidates_json(kept.candidates)}, '
                f"{_ENCODER.encode(tail)[1:]}\n"
            )
            data = line.encode("utf-8")
        except ValueError as exc:
            self._warn(f"a record is not JSON ({exc})")
            return False
        with self._lock:
            fd = self._fd
            if fd is None:
                self._warn("the log is closed")
                return False
            start = None
            try:
                start = os.lseek(fd, 0, os.SEEK_END)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            except OSError as exc:
                if start is not None:
                    # Undo a partial line so the file stays one record per line.
                    with contextlib.suppress(OSError):
                        os.ftruncate(fd, start)
                self._warn(exc.strerror or str(exc))
                return False
        return True

    def _candidates_json(self, candidates: tuple[Candidate, ...]) -> str:
        """The JSON of the offered candidates (the last one cached: usually the pool)."""
        cached = self._candidates
        if cached is not None and cached[0] is candidates:
            return cached[1]
        text = _ENCODER.encode(
            [
                {"name": c.name, "input_price": c.input_price, "output_price": c.output_price}
                for c in candidates
            ]
        )
        self._candidates = (candidates, text)
        return text

    def _warn(self, why: str) -> None:
        msg = f"decision_log {str(self.path)!r}: a decision record was not written: {why}"
        warnings.warn(msg, DecisionLogWarning, stacklevel=4)


def read_log(path: str | os.PathLike[str]) -> list[LoggedDecision]:
    """The records of a JSONL log written by :func:`append_log`.

    Raises:
        ConfigError: a line is not a valid record (the message names the line).
    """
    out: list[LoggedDecision] = []
    with Path(path).open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                out.append(_from_record(json.loads(line)))
            except (KeyError, TypeError, ValueError) as exc:
                msg = f"{path}: line {n} is not a decision record: {exc}"
                raise ConfigError(msg) from exc
    return out


def _from_record(rec: Mapping[str, Any]) -> LoggedDecision:
    cands = tuple(
        Candidate(
            name=c["name"],
            input_price=float(c.get("input_price", 0.0)),
            output_price=float(c.get("output_price", 0.0)),
        )
        for c in rec["candidates"]
    )
    features = rec.get("features")
    context = Context(
        query=str(rec.get("query") or ""),
        key=rec.get("key"),
        features=None if features is None else tuple(float(v) for v in features),
        candidates=cands,
    )
    return LoggedDecision(
        context=context,
        chosen=str(rec["chosen"]),
        propensity=float(rec["propensity"]),
        reward=float(rec["reward"]),
    )


@dataclass(frozen=True, slots=True)
class Estimate:
    """An off-policy estimate of a policy's mean reward, with its confidence interval.

    Args:
        method: ``ips``, ``snips`` or ``dr``.
        value: the estimated mean reward.
        low: the interval's lower end.
        high: the interval's upper end.
        n: the number of logged records.
        matched: how many records the target chose the logged candidate on.
    """

    method: str
    value: float
    low: float
    high: float
    n: int
    matched: int


def evaluate(
    policy: Policy,
    log: Sequence[LoggedDecision],
    *,
    method: Method = "dr",
    confidence: float = 0.95,
    learn: bool = False,
    regularization: float = 1.0,
    folds: int = 2,
    pooled: bool = False,
    normalize: bool = False,
    clip: float | None = None,
) -> Estimate:
    """Estimate the mean reward ``policy`` would have earned on the logged contexts.

    Args:
        policy: the target policy (used as given: clone it first to keep it untouched).
        log: the logged records, in the order they happened.
        method: ``ips``, ``snips`` or ``dr`` (see the module docstring).
        confidence: the interval's coverage, in (0, 1).
        learn: update the target on the records where it chose the logged candidate.
        regularization: ridge penalty of the doubly robust reward model.
        folds: cross-fitting folds of the doubly robust reward model (each fold's terms
            use the model fitted on the other folds), ``>= 2``.
        pooled: shrink each candidate's reward model toward one fitted on every record
            (its prior mean) rather than toward the mean reward; helps the candidates the
            logger rarely chose.
        normalize: divide the doubly robust correction by the mean weight
            (self-normalised doubly robust): a little bias, less variance when the
            target's matches are few and their weights large.
        clip: the largest weight of a doubly robust correction (weights above it are
            cut to it: a little bias, much less variance from rare, improbable matches);
            None does not clip.

    Raises:
        ConfigError: empty log, unknown method or a confidence outside (0, 1).
    """
    if not log:
        msg = "evaluate() needs at least one logged record, got none"
        raise ConfigError(msg)
    if method not in ("ips", "snips", "dr"):
        msg = f"method must be 'ips', 'snips' or 'dr', got {method!r}"
        raise ConfigError(msg)
    if not 0.0 < confidence < 1.0:
        msg = f"confidence must be in (0, 1), got {confidence!r}"
        raise ConfigError(msg)
    if clip is not None and not (isinstance(clip, int | float) and clip >= 1.0):
        msg = f"clip must be a number >= 1 or None, got {clip!r}"
        raise ConfigError(msg)
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        msg = f"folds must be an int >= 2, got {folds!r}"
        raise ConfigError(msg)
    picks = _replay(policy, log, learn=learn)
    n = len(log)
    reward = np.array([r.reward for r in log])
    match = np.array([p == r.chosen for p, r in zip(picks, log, strict=True)], dtype=float)
    weight = match / np.array([r.propensity for r in log])
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    if method == "ips":
        terms = weight * reward
        value = float(terms.mean())
    elif method == "snips":
        total = float(weight.sum())
        value = float((weight * reward).sum() / total) if total > 0 else 0.0
        terms = weight * (reward - value) / max(float(weight.mean()), 1e-12) + value
    else:
        on_logged, on_target = _reward_model(log, picks, regularization, folds=folds, pooled=pooled)
        w = weight if clip is None else np.minimum(weight, clip)
        scale = 1.0
        if normalize and w.mean() > 0:
            scale = float(w.mean())
        terms = on_target + w * (reward - on_logged) / scale
        value = float(terms.mean())
    half = z * float(terms.std(ddof=1)) / math.sqrt(n) if n > 1 else math.inf
    return Estimate(method, value, value - half, value + half, n, int(match.sum()))


def _replay(policy: Policy, log: Iterable[LoggedDecision], *, learn: bool) -> list[str]:
    picks: list[str] = []
    for rec in log:
        decision = policy.select(rec.context)
        picks.append(decision.candidate.name)
        if learn and decision.candidate.name == rec.chosen:
            policy.update(decision, rec.reward)
    return picks


def _features(context: Context) -> np.ndarray:
    if context.features is not None:
        return np.concatenate(((1.0,), np.asarray(context.features, dtype=float)))
    return structural_features(context.query)


def _reward_model(
    log: Sequence[LoggedDecision],
    picks: Sequence[str],
    regularization: float,
    *,
    folds: int = 2,
    pooled: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Cross-fitted ridge predictions of the logged and the target's candidates' rewards."""
    x = np.array([_features(r.context) for r in log])
    n, d = x.shape
    names = sorted({r.chosen for r in log} | set(picks))
    col = {m: j for j, m in enumerate(names)}
    chosen = np.array([col[r.chosen] for r in log])
    target = np.array([col[p] for p in picks])
    reward = np.array([r.reward for r in log])
    fold = np.arange(n) % folds
    on_logged = np.empty(n)
    on_target = np.empty(n)
    eye = regularization * np.eye(d)
    for f in range(folds):
        fit, use = fold != f, fold == f
        mean = float(reward[fit].mean()) if fit.any() else 0.5
        prior = np.zeros(d)
        if pooled:
            xs = x[fit]
            prior = np.linalg.solve(eye + xs.T @ xs, xs.T @ (reward[fit] - mean))
        theta = np.zeros((len(names), d))
        for j in range(len(names)):
            rows = fit & (chosen == j)
            xs = x[rows]
            theta[j] = np.linalg.solve(
                eye + xs.T @ xs, xs.T @ (reward[rows] - mean) + regularization * prior
            )
        idx = np.flatnonzero(use)
        on_logged[idx] = mean + np.einsum("id,id->i", x[idx], theta[chosen[idx]])
        on_target[idx] = mean + np.einsum("id,id->i", x[idx], theta[target[idx]])
    return np.clip(on_logged, 0.0, 1.0), np.clip(on_target, 0.0, 1.0)
