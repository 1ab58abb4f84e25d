"""What a saved router has seen, per model: the ``pickllm stats STATE.json`` command.

:func:`read_stats` reads a state file written by :meth:`pickllm.Router.save` (without
rebuilding the router, so a file whose trained scorer is not on this machine still reads)
into a :class:`StateStats`; :func:`render_stats` lays it out as a table of at most 120
columns; :func:`plot_stats` draws the router's recent choices and rewards (needs
matplotlib). Nothing here reads or prints prompts or answers: the file holds none.

What the columns mean: *calls* are recorded attempts (failed ones included), *share* their
fraction of all calls, *mean reward* the mean of the rewards the policy learned from (a
failed attempt counts 0), *spend* the summed cost in USD, *p50/p95* the latency quantiles
of the model's last ``latency_window`` calls (the window the router keeps).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pickllm.errors import StateError
from pickllm.router import decode_history, read_state

__all__ = ["ModelStats", "StateStats", "plot_stats", "read_stats", "render_stats"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelStats:
    """One model's row of ``pickllm stats``.

    Args:
        name: the model.
        calls: recorded calls, failed ones included.
        errors: failed calls.
        share: ``calls`` over the calls of every model (NaN when there are none).
        learned: calls the policy learned from (the ones with a reward).
        mean_reward: mean reward of the learned calls (NaN if none).
        spend_usd: summed cost.
        latency_p50_s: median latency of the recent calls (NaN if none).
        latency_p95_s: 95th percentile latency of the recent calls (NaN if none).
        latency_samples: how many recent latencies the quantiles are computed from.
        in_pool: whether the model is still in the router's pool (a removed model keeps
            its statistics).
    """

    name: str
    calls: int
    errors: int
    share: float
    learned: int
    mean_reward: float
    spend_usd: float
    latency_p50_s: float
    latency_p95_s: float
    latency_samples: int
    in_pool: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class StateStats:
    """What a saved router has seen: one :class:`ModelStats` per model and its history.

    Args:
        path: the state file.
        policy: the policy's name.
        objective: the objective's weights (``quality``, ``cost``, ``latency``).
        latency_window: how many recent latencies per model the quantiles use.
        models: one row per model, in the order of the pool.
        history: the last learned calls ``(model, reward)``, oldest first (empty for files
            saved before the router kept one).
        history_start: the number of the first call of ``history`` among every learned
            call (1 when the history holds them all).

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from pickllm import Candidate, Feedback, Fixed, Router
        >>> router = Router([Candidate(name="a"), Candidate(name="b")], Fixed(model="a"))
        >>> for latency in (0.5, 1.5):
        ...     _ = router.record(router.route("hi"), Feedback(latency_s=latency, quality=1.0))
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     router.save(Path(folder) / "router.json")
        ...     stats = read_stats(Path(folder) / "router.json")
        >>> row = stats.models[0]
        >>> row.name, row.calls, row.share, row.latency_p50_s
        ('a', 2, 1.0, 1.0)
        >>> [(model, round(reward, 2)) for model, reward in stats.history]
        [('a', 0.93), ('a', 0.92)]
    """

    path: str
    policy: str
    objective: Mapping[str, float]
    latency_window: int
    models: tuple[ModelStats, ...]
    history: tuple[tuple[str, float], ...]
    history_start: int

    @property
    def calls(self) -> int:
        """Recorded calls of every model."""
        return sum(m.calls for m in self.models)

    @property
    def errors(self) -> int:
        """Failed calls of every model."""
        return sum(m.errors for m in self.models)

    @property
    def learned(self) -> int:
        """Calls the policy learned from, of every model."""
        return sum(m.learned for m in self.models)

    @property
    def spend_usd(self) -> float:
        """Summed cost of every model."""
        return sum(m.spend_usd for m in self.models)

    @property
    def mean_reward(self) -> float:
        """Mean reward over every learned call (NaN if none)."""
        learned = self.learned
        total = sum(m.mean_reward * m.learned for m in self.models if m.learned)
        return total / learned if learned else math.nan


def read_stats(path: str | os.PathLike[str]) -> StateStats:
    """Read the per-model statistics of a router state file written by ``Router.save``.

    The checksum is not required to match: a file edited by hand still reads, as long as
    its statistics are well formed.

    Raises:
        StateError: the file is missing, unreadable, not JSON, not a router state or has
            malformed statistics; the message names the file.
    """
    body = read_state(path, verify=False)
    try:
        return _parse(str(path), body)
    except StateError as exc:
        msg = f"router state file {str(path)!r}: {exc}"
        raise StateError(msg) from exc
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        msg = f"router state file {str(path)!r} has malformed statistics ({exc!r})"
        raise StateError(msg) from exc


def _parse(path: str, body: Mapping[str, Any]) -> StateStats:
    if body.get("format") != "pickllm.router":
        msg = "not a 'pickllm.router' state"
        raise StateError(msg)
    pool = [str(c["name"]) for c in body["candidates"]]
    tallies: Mapping[str, Mapping[str, Any]] = body["stats"]
    names = pool + [name for name in tallies if name not in pool]
    total = sum(int(tallies[n]["calls"]) for n in names if n in tallies)
    rows = []
    for name in names:
        s = tallies.get(name, {})
        calls, learned = int(s.get("calls", 0)), int(s.get("rewarded", 0))
        latencies = np.sort(np.asarray(s.get("latencies", []), dtype=float))
        if min(calls, learned) < 0 or np.any(~np.isfinite(latencies)):
            msg = f"statistics of {name!r} are inconsistent"
            raise StateError(msg)
        rows.append(
            ModelStats(
                name=name,
                calls=calls,
                errors=int(s.get("errors", 0)),
                share=calls / total if total else math.nan,
                learned=learned,
                mean_reward=float(s.get("reward_sum", 0.0)) / learned if learned else math.nan,
                spend_usd=float(s.get("cost", 0.0)),
                latency_p50_s=_quantile(latencies, 0.5),
                latency_p95_s=_quantile(latencies, 0.95),
                latency_samples=int(latencies.shape[0]),
                in_pool=name in pool,
            )
        )
    history = tuple(decode_history(body.get("history")))
    learned_total = sum(r.learned for r in rows)
    objective = body["objective"]
    return StateStats(
        path=path,
        policy=str(body["policy"]["name"]),
        objective={k: float(objective[k]) for k in ("quality", "cost", "latency")},
        latency_window=int(body["settings"]["latency_window"]),
        models=tuple(rows),
        history=history,
        history_start=max(learned_total - len(history), 0) + 1,
    )


def _quantile(sorted_values: np.ndarray, q: float) -> float:
    # Linear interpolation between order statistics, as Router.stats() computes them.
    return float(np.quantile(sorted_values, q)) if sorted_values.shape[0] else math.nan


# --------------------------------------------------------------------------- text
def _fmt(value: float, spec: str) -> str:
    return format(value, spec) if math.isfinite(value) else "-"


def render_stats(stats: StateStats) -> str:
    """The statistics as plain text: a summary, a table per model and notes (<= 120 columns).

    Examples:
        >>> stats = StateStats(path="r.json", policy="thompson",
        ...     objective={"quality": 1.0, "cost": 0.5, "latency": 0.2}, latency_window=1024,
        ...     models=(ModelStats(name="a", calls=3, errors=1, share=1.0, learned=3,
        ...         mean_reward=0.5, spend_usd=0.25, latency_p50_s=0.4, latency_p95_s=0.9,
        ...         latency_samples=3),), history=(), history_start=1)
        >>> print(render_stats(stats))  # doctest: +NORMALIZE_WHITESPACE
        pickllm stats: r.json
        policy: thompson; objective: quality=1, cost=0.5, latency=0.2
        3 calls (1 failed), $0.250000 spent, mean reward 0.5000 over 3 learned calls
        <BLANKLINE>
        model  calls  share %  errors  mean reward   spend $  $/call  p50 s  p95 s
        -----  -----  -------  ------  -----------  --------  --------  -----  -----
        a          3    100.0       1       0.5000  0.250000  0.083333  0.400  0.900
        <BLANKLINE>
        latency: p50/p95 over each model's last calls (up to 1024 per model)
        history: none in this file (saved before PickLLM kept one); --plot draws per-model bars
    """
    obj = stats.objective
    lines = [
        f"pickllm stats: {stats.path}",
        (
            f"policy: {stats.policy}; objective: quality={obj['quality']:g}, "
            f"cost={obj['cost']:g}, latency={obj['latency']:g}"
        ),
        (
            f"{stats.calls} calls ({stats.errors} failed), ${stats.spend_usd:.6f} spent, "
            f"mean reward {_fmt(stats.mean_reward, '.4f')} over {stats.learned} learned calls"
        ),
        "",
    ]
    header = ["model", "calls", "share %", "errors", "mean reward", "spend $", "$/call"]
    header += ["p50 s", "p95 s"]
    rows = [
        [
            m.name if m.in_pool else f"{m.name} (removed)",
            str(m.calls),
            _fmt(100 * m.share, ".1f"),
            str(m.errors),
            _fmt(m.mean_reward, ".4f"),
            f"{m.spend_usd:.6f}",
            _fmt(m.spend_usd / m.calls if m.calls else math.nan, ".6f"),
            _fmt(m.latency_p50_s, ".3f"),
            _fmt(m.latency_p95_s, ".3f"),
        ]
        for m in stats.models
    ]
    lines += _table(header, rows)
    lines += [
        "",
        f"latency: p50/p95 over each model's last calls (up to {stats.latency_window} per model)",
    ]
    if stats.history:
        first = stats.history_start
        lines.append(
            f"history: learned calls {first}..{first + len(stats.history) - 1} kept; "
            "--plot draws choices and reward over them"
        )
    else:
        lines.append(
            "history: none in this file (saved before PickLLM kept one); "
            "--plot draws per-model bars"
        )
    return "\n".join(lines) + "\n"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max([len(h), *(len(r[c]) for r in rows)]) for c, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (cell.rjust(widths[c + 1]) for c, cell in enumerate(cells[1:]))
        return "  ".join([first, *rest]).rstrip()

    return [line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]


# --------------------------------------------------------------------------- plot
def plot_stats(stats: StateStats, path: str | os.PathLike[str]) -> str:
    """Save a figure of the router's choices and rewards; return what it shows.

    With a history: each model's share of the calls in a moving window (top) and the
    moving mean reward (bottom), over the learned calls the file keeps. Without one (a
    file saved before the router kept it): bars of each model's calls and mean reward.
    The format follows the file's extension (any matplotlib writes: png, svg, pdf, ...).
    Draws on the Agg backend without touching pyplot's global state.

    Raises:
        ImportError: matplotlib is not installed (the message names ``pickllm[plot]``).
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        msg = "plotting needs matplotlib: pip install 'pickllm[plot]'"
        raise ImportError(msg) from exc
    fig = Figure(figsize=(10, 6), layout="constrained")
    FigureCanvasAgg(fig)
    top, bottom = fig.subplots(2, 1, sharex=bool(stats.history))
    colours = {m.name: f"C{i % 10}" for i, m in enumerate(stats.models)}
    if stats.history:
        what = _plot_history(stats, top, bottom, colours)
    else:
        what = _plot_bars(stats, top, bottom, colours)
    fig.suptitle(f"pickllm stats: {Path(stats.path).name} (policy {stats.policy})", fontsize=10)
    fig.savefig(os.fspath(path), dpi=120, bbox_inches="tight")
    return what


def _plot_history(stats: StateStats, top: Any, bottom: Any, colours: Mapping[str, str]) -> str:
    n = len(stats.history)
    window = max(1, min(100, n // 10))
    calls = np.arange(stats.history_start, stats.history_start + n)
    names = [m.name for m in stats.models]
    chosen = np.array([names.index(name) for name, _ in stats.history])
    rewards = np.array([reward for _, reward in stats.history])

    def moving(values: np.ndarray) -> np.ndarray:
        # The mean of the last `window` values (fewer at the start).
        total = np.convolve(values, np.ones(window))[:n]
        return total / np.minimum(np.arange(1, n + 1), window)

    shares = [moving((chosen == i).astype(float)) for i in range(len(names))]
    top.stackplot(calls, shares, labels=names, colors=[colours[m] for m in names], alpha=0.85)
    top.set_ylabel(f"share of the last {window} calls")
    top.set_ylim(0, 1)
    top.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    top.set_title("which model the router chose", fontsize=9)
    bottom.plot(calls, moving(rewards), color="black", lw=1.2, label=f"mean of last {window}")
    bottom.plot(calls, rewards, ".", ms=2, color="grey", alpha=0.4, label="each call")
    bottom.set_ylabel("reward")
    bottom.set_ylim(-0.02, 1.02)
    bottom.set_xlabel("learned call")
    bottom.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    bottom.set_title("reward over time", fontsize=9)
    return (
        f"choices and reward over learned calls {calls[0]}..{calls[-1]} (moving window of {window})"
    )


def _plot_bars(stats: StateStats, top: Any, bottom: Any, colours: Mapping[str, str]) -> str:
    names = [m.name for m in stats.models]
    colour = [colours[m] for m in names]
    top.bar(names, [m.calls for m in stats.models], color=colour)
    top.set_ylabel("calls")
    top.set_title("calls per model (the file keeps no history)", fontsize=9)
    rewards = [m.mean_reward if m.learned else 0.0 for m in stats.models]
    bottom.bar(names, rewards, color=colour)
    bottom.set_ylabel("mean reward")
    bottom.set_ylim(0, 1)
    for ax in (top, bottom):
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    return "per-model calls and mean reward (this file keeps no history of choices over time)"
