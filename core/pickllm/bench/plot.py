"""The benchmark's plot: quality-cost curves and online regret curves (needs matplotlib)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pickllm.bench.report import COST_TAGS, BenchReport, MethodResult

__all__ = ["method_colours", "plot_report"]


def method_colours(report: BenchReport) -> dict[str, str]:
    """One colour per method (single models excluded), the same in every panel.

    Examples:
        >>> from pickllm.bench import run_bench
        >>> from pickllm.data import load_outcomes
        >>> report = run_bench(load_outcomes("routerbench_subset"), policies=[])
        >>> method_colours(report)["oracle"]
        'gold'
    """
    fixed = {"oracle": "gold", "convex_hull": "black"}
    names = [r.name for r in report.results.values() if r.kind != "model"]
    learned = [name for name in names if name not in fixed]
    colours = {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate(learned)}
    return {**colours, **{name: fixed[name] for name in names if name in fixed}}


# matplotlib's "tab20" colours, its dark shades first, then its light ones.
_PALETTE = (
    *("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"),
    *("#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"),
    *("#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5"),
    *("#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5"),
)


def _label(report: BenchReport, name: str) -> str:
    """A legend label that says what a reference line is."""
    best_train = report.results.get("best_single")
    best_model = best_train.detail if best_train is not None else "?"
    labels = {
        "fixed": f"fixed: always {best_model} (best on train)",
        "best_single": f"best single model on train ({best_model})",
        "best_per_task": "best model per task on train",
        "random_model": "a random model per query",
        "convex_hull": "convex hull of single models",
        "oracle": "oracle (best model per query)",
    }
    return labels.get(name, name)


def plot_report(report: BenchReport, path: str | os.PathLike[str]) -> None:
    """Save a figure of the quality-cost curves and the online regret curves.

    Each method keeps one colour in every panel; reference lines say what they are
    ("fixed: always <model>" against "best single model in hindsight (<model>)"); model
    labels are never clipped. The format follows the extension (png, svg, pdf, ...: any
    format matplotlib writes). Needs matplotlib (the ``plot`` extra); draws on the Agg
    backend without touching pyplot's global state.

    Raises:
        ImportError: matplotlib is not installed (the message names ``pickllm[plot]``).
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        msg = "plotting needs matplotlib: pip install 'pickllm[plot]'"
        raise ImportError(msg) from exc
    online = [r for r in report.results.values() if r.online is not None]
    colours = method_colours(report)
    fig = Figure(figsize=(25, 5.5) if online else (10, 5.5), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 4 if online else 1, squeeze=False)[0]
    _plot_curves(axes[0], report, colours)
    if online:
        _plot_online(axes[1:], report, online, colours)
    fig.savefig(os.fspath(Path(path)), dpi=120, bbox_inches="tight")


def _plot_online(
    axes: Sequence[Any],
    report: BenchReport,
    online: Sequence[MethodResult],
    colours: Mapping[str, str],
) -> None:
    """Running mean reward, and regret against the best fixed model and the oracle.

    Each line is the mean over the streams (seeded orders), its band one standard
    deviation over them.
    """
    first = online[0].online
    hindsight = first.best_fixed_model if first is not None else "?"
    panels = (
        ("reward_curve", "reward_curve_std", "mean reward so far", "running mean reward"),
        (
            "regret_curve_best_fixed",
            "regret_std_best_fixed",
            f"regret vs the best single model in hindsight\n({hindsight}, by reward)",
            "cumulative regret (reward)",
        ),
        (
            "regret_curve_oracle",
            "regret_std_oracle",
            "regret vs the oracle\n(the best model per query)",
            "cumulative regret (reward)",
        ),
    )
    for ax, (mean_attr, std_attr, title, ylabel) in zip(axes, panels, strict=True):
        for r in online:
            mean = np.asarray(getattr(r.online, mean_attr))
            std = np.asarray(getattr(r.online, std_attr))
            steps = np.arange(1, len(mean) + 1)
            colour = colours[r.name]
            ax.plot(steps, mean, lw=1.4, color=colour, label=_label(report, r.name))
            ax.fill_between(steps, mean - std, mean + std, color=colour, alpha=0.15, lw=0)
        ax.set_xlabel("query")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{title}, mean ± std of {report.seeds} stream(s)", fontsize=9)
    references = (
        (report.results.get(hindsight), f"always {hindsight}"),
        (report.results.get("oracle"), "oracle"),
    )
    for ref, label in references:
        if ref is not None and ref.mean_reward is not None:
            axes[0].axhline(ref.mean_reward, color="grey", ls="--", lw=1.0)
            axes[0].annotate(
                f"{label}: {ref.mean_reward:.4f}",
                (1, ref.mean_reward),
                xytext=(2, 2),
                textcoords="offset points",
                fontsize=7,
                color="grey",
            )
    axes[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def _plot_curves(ax: Any, report: BenchReport, colours: Mapping[str, str]) -> None:
    styles: dict[str, dict[str, Any]] = {
        "offline": {"marker": ".", "lw": 1.5},
        "online": {"marker": "o", "ls": "none", "ms": 6},
        "baseline": {"marker": "x", "ls": "none", "ms": 7, "mew": 1.8},
    }
    for r in report.results.values():
        if not r.points:
            continue
        xs = [p[0] for p in r.points]
        ys = [100 * p[1] for p in r.points]
        if r.kind == "model":
            ax.plot(xs, ys, "o", mfc="white", mec="grey", ms=4)
            ax.annotate(
                r.name.rsplit("/", 1)[-1],
                (xs[0], ys[0]),
                xytext=(3, 3),
                textcoords="offset points",
                fontsize=6,
                color="dimgrey",
                annotation_clip=False,
            )
        elif r.name == "convex_hull":
            ax.plot(xs, ys, "--", color=colours[r.name], lw=1, label=_label(report, r.name))
        elif r.name == "oracle":
            ax.plot(xs, ys, "*", ms=12, color="gold", mec="black", label=_label(report, r.name))
        else:
            style = styles.get(r.kind, styles["offline"])
            label = f"{_label(report, r.name)} ({r.kind})"
            ax.plot(xs, ys, color=colours[r.name], label=label, **style)
    ax.set_xscale("log")
    ax.margins(x=0.12, y=0.06)
    ax.set_xlabel(f"mean cost per query (USD{COST_TAGS[report.cost_label]})")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{report.data}: quality vs cost, test on {report.split}", fontsize=9)
    if ax.get_legend_handles_labels()[0]:  # without costs there are no points to label
        ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncols=2)
