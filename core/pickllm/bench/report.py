"""The benchmark's results and their plain-text report.

:class:`BenchReport` holds what :func:`pickllm.bench.run_bench` measured (one
:class:`MethodResult` per method, with :class:`OnlineStats` for online policies);
:func:`render_report` lays it out as aligned tables.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from pickllm._version import __version__
from pickllm.objective import Objective

__all__ = ["WIDTH", "BenchReport", "Kind", "MethodResult", "OnlineStats", "render_report"]

Kind = Literal["model", "baseline", "offline", "online"]


@dataclass(frozen=True, slots=True, kw_only=True)
class OnlineStats:
    """Learning figures of an online policy, over ``seeds`` streams of the test prompts.

    Args:
        seeds: number of streams (random orders).
        steps: queries per stream.
        reward_std: standard deviation over streams of the mean reward.
        total_cost: mean over streams of the stream's total cost (None if unavailable).
        regret_best_fixed: mean final cumulative regret against the best fixed model.
        regret_oracle: mean final cumulative regret against the per-query oracle.
        regret_curve_best_fixed: mean cumulative regret after each step.
        regret_curve_oracle: idem against the oracle.
        reward_curve: mean over streams of the running mean reward after each step.
        reward_curve_std: its standard deviation over streams, step by step.
        regret_std_best_fixed: standard deviation over streams of the cumulative regret
            against the best fixed model, step by step.
        regret_std_oracle: idem against the oracle.
        best_fixed_model: the model with the best total reward on the test prompts.
        settle_steps: per stream, the step it settled at, or None.
        settled_models: per stream, the model it settled on, or None.
        settled_on_best: streams that settled on ``best_fixed_model``.
    """

    seeds: int
    steps: int
    reward_std: float
    total_cost: float | None
    regret_best_fixed: float
    regret_oracle: float
    regret_curve_best_fixed: tuple[float, ...]
    regret_curve_oracle: tuple[float, ...]
    reward_curve: tuple[float, ...]
    reward_curve_std: tuple[float, ...]
    regret_std_best_fixed: tuple[float, ...]
    regret_std_oracle: tuple[float, ...]
    best_fixed_model: str
    settle_steps: tuple[int | None, ...]
    settled_models: tuple[str | None, ...]
    settled_on_best: int


@dataclass(frozen=True, slots=True, kw_only=True)
class MethodResult:
    """Every figure of one method on the test rows (None: not available or not defined).

    Args:
        name: the method's name (a model, baseline, offline router or policy).
        kind: ``"model"``, ``"baseline"``, ``"offline"`` or ``"online"``.
        accuracy: mean quality (offline routers: at the quality-only end of the sweep).
        mean_cost: mean cost per query in USD.
        mean_latency: mean latency per query in seconds.
        mean_reward: mean reward under the objective.
        auc: quality-cost AUC x100.
        apgr: average performance gap recovered.
        cpt50: cost to recover 50% of the gap, in % of the cost range.
        cpt80: idem for 80%.
        cost_to_95: cost per query to reach 95% of the best single model's accuracy.
        cost_to_100: idem for 100%.
        points: the operating points ``(mean cost, mean quality)``.
        detail: what the method chose (for example the model of ``best_single``).
        online: learning figures, for online policies.
    """

    name: str
    kind: Kind
    accuracy: float
    mean_cost: float | None
    mean_latency: float | None
    mean_reward: float | None
    auc: float | None = None
    apgr: float | None = None
    cpt50: float | None = None
    cpt80: float | None = None
    cost_to_95: float | None = None
    cost_to_100: float | None = None
    points: tuple[tuple[float, float], ...] = ()
    detail: str = ""
    online: OnlineStats | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchReport:
    """The outcome of :func:`run_bench`: setup, reference figures and one result per method.

    Args:
        data: the table's name.
        models: the models of the pool.
        split: how the test rows were chosen (for example ``"split=test"``).
        n_train: train rows.
        n_test: test rows.
        cost_label: ``"recorded"``, ``"estimated"`` or ``"unavailable"``.
        latency_label: ``"recorded"`` or ``"simulated"``.
        objective: the objective the rewards used (with its ``cost_scale``).
        seed: the base seed.
        seeds: streams per online policy.
        reference: ``c_min``, ``c_max``, ``q_floor``, cheapest and best single model.
        results: every method by name, in report order.
        notes: remarks on what is estimated, simulated or unavailable.
    """

    data: str
    models: tuple[str, ...]
    split: str
    n_train: int
    n_test: int
    cost_label: Literal["recorded", "estimated", "unavailable"]
    latency_label: Literal["recorded", "simulated"]
    objective: Objective
    seed: int
    seeds: int
    reference: Mapping[str, float | str | None]
    results: Mapping[str, MethodResult]
    notes: tuple[str, ...] = field(default=())

    @property
    def cost_available(self) -> bool:
        """Whether cost metrics could be computed."""
        return self.cost_label != "unavailable"

    def to_dict(self) -> dict[str, Any]:
        """Every figure, JSON-ready (numbers as numbers, NaN and missing as None)."""
        results: dict[str, Any] = {}
        for name, res in self.results.items():
            entry: dict[str, Any] = {
                slot: _json(getattr(res, slot))
                for slot in MethodResult.__slots__
                if slot != "online"
            }
            entry["points"] = [[_json(c), _json(q)] for c, q in res.points]
            entry["cost_label"] = self.cost_label
            entry["latency_label"] = self.latency_label
            if res.online is not None:
                entry["online"] = {
                    slot: _json(getattr(res.online, slot)) for slot in OnlineStats.__slots__
                }
            results[name] = entry
        return {
            "pickllm_version": __version__,
            "data": {
                "name": self.data,
                "models": list(self.models),
                "split": self.split,
                "n_train": self.n_train,
                "n_test": self.n_test,
                "cost": self.cost_label,
                "latency": self.latency_label,
            },
            "objective": _json(self.objective.as_dict()),
            "seed": self.seed,
            "seeds": self.seeds,
            "reference": _json(dict(self.reference)),
            "notes": list(self.notes),
            "results": results,
        }


def _json(value: Any) -> Any:
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_json(v) for v in value]
    return value


# --------------------------------------------------------------------------- rendering
COST_TAGS: dict[str, str] = {
    "recorded": "",
    "estimated": " (estimated)",
    "unavailable": " (unavailable)",
}


WIDTH = 120
"""The report's maximum line width: tables and notes fit a 120-column terminal."""

_NAME_WIDTH = 36
"""Longer method names are shortened in the middle (the JSON keeps them whole)."""

_SECTIONS: dict[str, str] = {
    "model": "single models",
    "baseline": "baselines",
    "offline": "offline routers (fitted on the train rows, swept over cost budgets)",
    "online": "online policies (learning while the test prompts stream, mean over the orders)",
}


def _fmt(value: object, spec: str, scale: float = 1.0) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return "-"
    return format(value * scale, spec)


def _short(name: str, width: int = _NAME_WIDTH) -> str:
    if len(name) <= width:
        return name
    keep = width - 3
    return f"{name[: (keep + 1) // 2]}...{name[len(name) - keep // 2 :]}"


def _wrap(text: str) -> list[str]:
    """``text`` in lines of at most :data:`WIDTH` columns, continuations indented."""
    return textwrap.wrap(
        text, width=WIDTH, subsequent_indent="  ", break_long_words=True, break_on_hyphens=False
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> list[str]:
    widths = [max([len(h), *(len(r[c]) for r in rows)]) for c, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        out = [
            cell.ljust(widths[c]) if align[c] == "l" else cell.rjust(widths[c])
            for c, cell in enumerate(cells)
        ]
        return "  ".join(out).rstrip()

    return [line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]


def _header_lines(report: BenchReport) -> list[str]:
    obj = report.objective
    scale = f", cost_scale={obj.cost_scale:.6g} USD" if obj.cost_scale else ""
    lines = [
        (
            f"pickllm bench: {report.data}, test on {report.split} ({report.n_test} test / "
            f"{report.n_train} train prompts, {len(report.models)} models)"
        ),
        (
            f"objective: quality={obj.quality:g}, cost={obj.cost:g}, latency={obj.latency:g}"
            f"{scale}; seed {report.seed}, {report.seeds} stream(s) per online policy"
        ),
        f"cost: {report.cost_label}; latency: {report.latency_label}",
    ]
    ref = report.reference
    if report.cost_available:
        lines.append(
            f"reference: cheapest {ref['cheapest_model']} ({_fmt(ref['q_cheapest'], '.2f', 100)}"
            f"%), best {ref['best_model']} ({_fmt(ref['q_best'], '.2f', 100)}%); AUC over "
            f"${_fmt(ref['c_min'], '.6f')} .. ${_fmt(ref['c_max'], '.6f')} per query"
        )
    return [wrapped for line in lines for wrapped in _wrap(line)]


def _online_lines(report: BenchReport, cost_tag: str) -> list[str]:
    online = [(r, r.online) for r in report.results.values() if r.online is not None]
    if not online:
        return []
    header = [
        "policy",
        "reward",
        "+-",
        "acc %",
        "total $",
        "regret vs best",
        "regret vs oracle",
        "settled",
        "median step",
        "on best",
    ]
    rows = []
    for r, st in online:
        steps = [s for s in st.settle_steps if s is not None]
        rows.append(
            [
                _short(r.name),
                _fmt(r.mean_reward, ".4f"),
                _fmt(st.reward_std, ".4f"),
                _fmt(r.accuracy, ".2f", 100),
                _fmt(st.total_cost, ".4f"),
                _fmt(st.regret_best_fixed, ".1f"),
                _fmt(st.regret_oracle, ".1f"),
                f"{len(steps)}/{st.seeds}",
                str(int(np.median(steps))) if steps else "-",
                f"{st.settled_on_best}/{st.seeds}",
            ]
        )
    legend = [
        (
            "best: the best single model in hindsight (by reward on these prompts), "
            f"{online[0][1].best_fixed_model}; oracle: the best model of each query"
        ),
        (
            f"total ${cost_tag}: cost of a whole stream; regret: cumulative reward lost "
            "against them; settled: streams that settled on one model (median step: when); "
            "on best: streams that settled on the best"
        ),
    ]
    fixed = report.results.get("fixed")
    if fixed is not None and fixed.online is not None:
        legend.append(
            f"fixed: always {_detail(report, 'best_single')} (the best single model on the "
            "train rows), not the best in hindsight"
        )
    return [
        "",
        f"online learning over {report.seeds} stream(s) of the {report.n_test} test prompts:",
        *_table(header, rows, "lrrrrrrrrr"),
        *(wrapped for line in legend for wrapped in _wrap(line)),
    ]


def _detail(report: BenchReport, name: str) -> str:
    result = report.results.get(name)
    return result.detail if result is not None and result.detail else "the best train model"


def render_report(report: BenchReport) -> str:
    """The report as aligned plain text of at most :data:`WIDTH` columns.

    A setup summary, one table of every method grouped by kind (single models, baselines,
    offline routers, online policies) with a legend of its columns, a table of the
    online policies' learning figures, and notes.
    """
    cost_tag = COST_TAGS[report.cost_label]
    lat_tag = " (simulated)" if report.latency_label == "simulated" else ""
    header = [
        "method",
        "acc %",
        "$/query",
        "lat s",
        "reward",
        "AUC",
        "APGR",
        "CPT50",
        "CPT80",
        "$ to 95%",
        "$ to 100%",
    ]
    by_kind: dict[str, list[MethodResult]] = {}
    for r in report.results.values():
        by_kind.setdefault(r.kind, []).append(r)
    rows: list[list[str]] = []
    titles: dict[int, str] = {}
    for kind, results in by_kind.items():
        titles[len(rows)] = _SECTIONS.get(kind, kind)
        rows.extend(
            [
                _short(r.name),
                _fmt(r.accuracy, ".2f", 100),
                _fmt(r.mean_cost, ".6f"),
                _fmt(r.mean_latency, ".3f"),
                _fmt(r.mean_reward, ".4f"),
                _fmt(r.auc, ".2f"),
                _fmt(r.apgr, ".3f"),
                _fmt(r.cpt50, ".1f"),
                _fmt(r.cpt80, ".1f"),
                _fmt(r.cost_to_95, ".6f"),
                _fmt(r.cost_to_100, ".6f"),
            ]
            for r in results
        )
    table = _table(header, rows, "lrrrrrrrrrr")
    body = table[:2]
    for i, row in enumerate(table[2:]):
        if i in titles:
            body.append(f"[{titles[i]}]")
        body.append(row)
    legend = (
        f"$/query{cost_tag}: mean cost per query in USD; lat s{lat_tag}: mean latency per "
        "query in seconds; AUC: mean accuracy over the cost range x100; APGR: average "
        "performance gap recovered; CPT50/CPT80: cost to recover 50/80% of the gap, in % "
        "of the cost range; $ to 95%/100%: cost per query to reach 95/100% of the best "
        "single model's accuracy"
    )
    lines = [
        *_header_lines(report),
        "",
        *body,
        "",
        *_wrap(legend),
        *_online_lines(report, cost_tag),
    ]
    for name in ("best_single", "best_per_task", "convex_hull"):
        if name in report.results and report.results[name].detail:
            lines.extend(_wrap(f"{name}: {report.results[name].detail}"))
    for note in report.notes:
        lines.extend(_wrap(f"note: {note}"))
    return "\n".join(lines) + "\n"
