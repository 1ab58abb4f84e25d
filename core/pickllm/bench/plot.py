"""The benchmark's plot: quality-cost curves and online regret curves (needs matplotlib)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pickllm.bench.report import COST_TAGS, BenchReport

__all__ = ["plot_report"]


def plot_report(report: BenchReport, path: str | Path) -> None:
    """Save a PNG of the quality-cost curves and the online regret curves.

    Needs matplotlib (the ``plot`` extra); draws on the Agg backend without touching
    pyplot's global state.

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
    fig = Figure(figsize=(18, 5) if online else (9, 5), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 3 if online else 1, squeeze=False)[0]
    _plot_curves(axes[0], report)
    if online:
        for ax, attr, title in (
            (axes[1], "regret_curve_best_fixed", "regret vs the best fixed model"),
            (axes[2], "regret_curve_oracle", "regret vs the per-query oracle"),
        ):
            for r in online:
                curve = getattr(r.online, attr)
                ax.plot(np.arange(1, len(curve) + 1), curve, lw=1.2, label=r.name)
            ax.set_xlabel("query")
            ax.set_ylabel("cumulative regret (reward)")
            ax.set_title(f"{title} (mean of {report.seeds} stream(s))", fontsize=9)
            ax.legend(fontsize=6)
    fig.savefig(str(path), dpi=120)


def _plot_curves(ax: Any, report: BenchReport) -> None:
    styles: dict[str, dict[str, Any]] = {
        "offline": {"marker": ".", "lw": 1.5},
        "online": {"marker": "o", "ls": "none", "ms": 5},
        "baseline": {"marker": "x", "ls": "none", "ms": 6},
    }
    for r in report.results.values():
        if not r.points:
            continue
        xs = [p[0] for p in r.points]
        ys = [100 * p[1] for p in r.points]
        if r.kind == "model":
            ax.plot(xs, ys, "o", mfc="white", mec="grey", ms=4)
            ax.annotate(r.name.rsplit("/", 1)[-1], (xs[0], ys[0]), fontsize=6, color="grey")
        elif r.name == "convex_hull":
            ax.plot(xs, ys, "--", color="black", lw=1, label="convex hull")
        elif r.name == "oracle":
            ax.plot(xs, ys, "*", ms=12, color="gold", mec="black", label="oracle")
        else:
            ax.plot(xs, ys, label=f"{r.name} ({r.kind})", **styles[r.kind])
    ax.set_xscale("log")
    ax.set_xlabel(f"mean cost per query (USD{COST_TAGS[report.cost_label]})")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{report.data}: quality vs cost, test on {report.split}", fontsize=9)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
