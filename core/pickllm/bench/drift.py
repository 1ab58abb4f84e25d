"""A drift scenario: the best model's quality drops mid-stream; who recovers, and how fast.

:func:`run_drift` streams a data set's prompts (the test rows, or every prompt) in seeded
orders. Until step ``at`` the recorded outcomes are replayed as they are; from then on the
model that was best (the highest mean reward on the stream) has its quality multiplied by
``1 - drop``. Each policy is scored on the ``window`` prompts after the change, against
the new best fixed model on those same prompts (the best in hindsight after the change)
and the old best model, and by its recovery step: the first step after the change from
which its running share of the old best model over the last 50 calls stays below 20%.

The rewards follow the harness's objective (:func:`pickllm.bench.run_bench`'s: the default
weights, ``cost_scale`` the dearest model's mean train cost).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from pickllm.bench.run import StreamRows, _rewards, _setup, _stream_contexts, _TestSet
from pickllm.data.table import OutcomeTable
from pickllm.errors import ConfigError
from pickllm.policies.base import Policy
from pickllm.types import Context

__all__ = ["DriftResult", "DriftScenario", "drift_scenario", "render_drift", "run_drift"]

PolicyBuilder = Callable[[int], Policy]
"""Builds a fresh policy from a seed."""

_RECOVERY_WINDOW = 50
_RECOVERY_SHARE = 0.2


@dataclass(frozen=True, slots=True)
class DriftResult:
    """What one policy earned around the change (means over the seeded orders).

    Args:
        name: the policy's label.
        before: mean reward over the prompts before the change.
        after: mean reward over the ``window`` prompts after it.
        new_best: the new best fixed model's mean reward on those prompts.
        old_best: the degraded model's mean reward on those prompts.
        recovery: the median recovery step after the change (None if it never recovered
            in most orders).
    """

    name: str
    before: float
    after: float
    new_best: float
    old_best: float
    recovery: int | None


@dataclass(frozen=True, slots=True)
class DriftScenario:
    """The streamed prompts of a drift scenario and their rewards before and after it.

    Args:
        ts: the stream's recorded outcomes (``ts.reward``: the rewards before the change).
        degraded: the rewards after the change, ``(prompts, models)``.
        contexts: the context of each streamed prompt.
        column: each model's column in the reward arrays.
        old: the column of the model that degrades (the best on the stream).
    """

    ts: _TestSet
    degraded: np.ndarray
    contexts: list[Context]
    column: dict[str, int]
    old: int


def drift_scenario(
    table: OutcomeTable, *, stream: StreamRows = "all", drop: float = 0.5, seed: int = 0
) -> DriftScenario:
    """The stream of :func:`run_drift`: its contexts, and its rewards before and after.

    Raises:
        ConfigError: ``drop`` out of (0, 1].
    """
    if not 0.0 < drop <= 1.0:
        msg = f"drop must be in (0, 1], got {drop!r}"
        raise ConfigError(msg)
    setup = _setup(
        table,
        objective=None,
        split_column="split",
        test_split="test",
        seed=seed,
        latency_model=None,
        stream=stream,
    )
    ts = setup.ts
    old = int(ts.reward.mean(axis=0).argmax())
    quality = ts.quality.copy()
    quality[:, old] *= 1.0 - drop
    contexts = _stream_contexts(setup)
    return DriftScenario(
        ts=ts,
        degraded=_rewards(setup.objective, quality, ts.cost, ts.latency),
        contexts=contexts,
        column={model: j for j, model in enumerate(table.models)},
        old=old,
    )


def run_drift(
    table: OutcomeTable,
    policies: Mapping[str, PolicyBuilder],
    *,
    stream: StreamRows = "all",
    drop: float = 0.5,
    at: int | None = None,
    window: int = 500,
    seeds: int = 5,
    seed: int = 0,
) -> tuple[str, list[DriftResult]]:
    """Replay the drift scenario for every policy; returns the degraded model and results.

    Args:
        table: the recorded outcomes.
        policies: label -> a builder of a fresh policy from a seed.
        stream: ``"test"`` or ``"all"`` rows (as :func:`~pickllm.bench.run_bench`).
        drop: the share of its quality the best model loses, in (0, 1].
        at: the step of the change (default: the middle of the stream).
        window: the prompts after the change that are scored.
        seeds: seeded orders per policy.
        seed: the base seed.

    Raises:
        ConfigError: ``drop``, ``at`` or ``window`` out of range.
    """
    scenario = drift_scenario(table, stream=stream, drop=drop, seed=seed)
    ts, degraded = scenario.ts, scenario.degraded
    contexts, column, old = scenario.contexts, scenario.column, scenario.old
    m = ts.reward.shape[0]
    at = m // 2 if at is None else at
    if not 0 < at < m or window < 1 or at + window > m:
        msg = f"need 0 < at and at + window <= {m}, got at={at!r}, window={window!r}"
        raise ConfigError(msg)
    orders = [np.random.default_rng([seed, s, 3]).permutation(m) for s in range(seeds)]
    results = []
    for name, build in policies.items():
        before, after, new_best, old_best, recovery = [], [], [], [], []
        for s, order in enumerate(orders):
            policy = build(int(np.random.SeedSequence([seed, s, 4]).generate_state(1)[0]))
            got = np.empty(at + window)
            chosen = np.empty(at + window, dtype=np.intp)
            for t in range(at + window):
                i = int(order[t])
                decision = policy.select(contexts[i])
                j = column[decision.candidate.name]
                r = float((ts.reward if t < at else degraded)[i, j])
                got[t], chosen[t] = r, j
                policy.update(decision, r)
            after_rows = order[at : at + window]
            before.append(float(got[:at].mean()))
            after.append(float(got[at:].mean()))
            new_best.append(float(degraded[after_rows].mean(axis=0).max()))
            old_best.append(float(degraded[after_rows, old].mean()))
            recovery.append(_recovery(chosen[at:] == old))
        found = [r for r in recovery if r is not None]
        median = int(np.median(found)) if len(found) * 2 > len(recovery) else None
        results.append(
            DriftResult(
                name,
                float(np.mean(before)),
                float(np.mean(after)),
                float(np.mean(new_best)),
                float(np.mean(old_best)),
                median,
            )
        )
    return table.models[old], results


def _recovery(on_old: np.ndarray) -> int | None:
    """First step from which the share of the old best in every later window stays low."""
    n = on_old.shape[0]
    if n < _RECOVERY_WINDOW:
        return None
    share = np.convolve(on_old.astype(float), np.ones(_RECOVERY_WINDOW), "valid")
    share /= _RECOVERY_WINDOW
    high = np.flatnonzero(share >= _RECOVERY_SHARE)
    if high.size == 0:
        return 0
    last = int(high[-1]) + 1
    return None if last >= share.shape[0] else last + _RECOVERY_WINDOW - 1


def render_drift(
    data: str, degraded: str, results: Sequence[DriftResult], *, drop: float, window: int
) -> str:
    """A text table of :func:`run_drift`'s results."""
    lines = [
        (
            f"drift: {data}; {degraded} loses {drop:.0%} of its quality mid-stream; "
            f"reward over the {window} prompts after the change"
        ),
        (
            f"{'policy':34s} {'before':>7s} {'after':>7s} {'new best':>9s} {'gap':>7s} "
            f"{'old best':>9s} {'recovery':>9s}"
        ),
    ]
    for r in results:
        rec = "-" if r.recovery is None else str(r.recovery)
        lines.append(
            f"{r.name:34s} {r.before:7.4f} {r.after:7.4f} {r.new_best:9.4f} "
            f"{r.after - r.new_best:+7.4f} {r.old_best:9.4f} {rec:>9s}"
        )
    return "\n".join(lines) + "\n"
