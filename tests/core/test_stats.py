"""``pickllm stats STATE.json``: the per-model table of a saved router, its plot, its errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from pickllm import Candidate, Feedback, Router
from pickllm.bench.report import WIDTH
from pickllm.cli import main
from pickllm.errors import StateError
from pickllm.router import HISTORY_LENGTH, read_state
from pickllm.stats import read_stats, render_stats

POOL = (
    Candidate(name="small", input_price=0.1, output_price=0.2),
    Candidate(name="large", input_price=5.0, output_price=15.0),
)


def _router(calls: int = 60, *, seed: int = 0) -> tuple[Router, dict[str, dict[str, list[float]]]]:
    """A router that served ``calls`` calls, and what it was fed, per model."""
    router = Router(POOL, policy="thompson", seed=seed, clock=lambda: 0.0)
    rng = np.random.default_rng(seed)
    fed: dict[str, dict[str, list[float]]] = {
        c.name: {"cost": [], "latency": [], "reward": [], "error": []} for c in POOL
    }
    for _ in range(calls):
        decision = router.route("a question")
        name = decision.candidate.name
        latency = float(rng.uniform(0.1, 3.0))
        cost = 0.001 if name == "small" else 0.02
        failed = rng.random() < 0.1
        feedback = Feedback(
            latency_s=latency,
            cost_usd=cost,
            quality=None if failed else float(rng.random()),
            error="RuntimeError: boom" if failed else None,
        )
        reward = router.record(decision, feedback)
        assert reward is not None
        fed[name]["cost"].append(cost)
        fed[name]["latency"].append(latency)
        fed[name]["reward"].append(reward)
        fed[name]["error"].append(float(failed))
    return router, fed


def test_the_table_shows_what_the_router_recorded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    router, fed = _router()
    path = tmp_path / "router.json"
    router.save(path)
    assert main(["stats", str(path)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.splitlines()
    assert lines[0] == f"pickllm stats: {path}"
    assert lines[1] == "policy: thompson; objective: quality=1, cost=0.5, latency=0.2"
    failed = int(sum(sum(f["error"]) for f in fed.values()))
    assert lines[2].startswith(f"60 calls ({failed} failed), $")
    header = lines[4].split("  ")
    assert [h.strip() for h in header if h.strip()] == [
        "model",
        "calls",
        "share %",
        "errors",
        "mean reward",
        "spend $",
        "$/call",
        "p50 s",
        "p95 s",
    ]
    for name, f in fed.items():
        cells = next(line for line in lines if line.startswith(name + " ")).split()
        n = len(f["cost"])
        assert cells[1:4] == [str(n), f"{100 * n / 60:.1f}", str(int(sum(f["error"])))]
        assert cells[4] == f"{np.mean(f['reward']):.4f}"
        assert cells[5] == f"{sum(f['cost']):.6f}"
        assert cells[7] == f"{np.percentile(f['latency'], 50):.3f}"
        assert cells[8] == f"{np.percentile(f['latency'], 95):.3f}"
    assert "history: learned calls 1..60 kept" in out
    assert max(len(line) for line in lines) <= WIDTH


def test_the_summary_matches_router_stats(tmp_path: Path) -> None:
    router, _ = _router(calls=40, seed=3)
    path = tmp_path / "router.json"
    router.save(path)
    stats = read_stats(path)
    live = router.stats()
    assert [m.name for m in stats.models] == ["small", "large"]
    for m in stats.models:
        assert m.calls == live[m.name].calls
        assert m.errors == live[m.name].errors
        assert m.spend_usd == pytest.approx(live[m.name].total_cost_usd)
        assert m.latency_p50_s == pytest.approx(live[m.name].latency_p50_s)
        assert m.latency_p95_s == pytest.approx(live[m.name].latency_p95_s)
        assert m.mean_reward == pytest.approx(live[m.name].mean_reward)
    assert sum(m.share for m in stats.models) == pytest.approx(1.0)


def test_history_is_saved_bounded_and_reloaded(tmp_path: Path) -> None:
    router, _ = _router(calls=HISTORY_LENGTH + 25)
    path = tmp_path / "router.json"
    router.save(path)
    stats = read_stats(path)
    assert len(stats.history) == HISTORY_LENGTH
    assert stats.history_start == 26
    assert {name for name, _ in stats.history} <= {"small", "large"}
    assert all(0.0 <= reward <= 1.0 for _, reward in stats.history)
    again = tmp_path / "again.json"
    Router.load(path).save(again)
    assert read_stats(again).history == stats.history


def test_a_state_saved_before_the_history_still_loads_and_plots_bars(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    router, _ = _router(calls=10)
    old = tmp_path / "old.json"
    router.save(old)
    document = json.loads(old.read_text(encoding="utf-8"))
    del document["router"]["history"]
    document["checksum"] = "-"  # an old file's own checksum: stats does not need it
    old.write_text(json.dumps(document), encoding="utf-8")
    assert Router.load(old, verify=False).stats()["small"].calls == router.stats()["small"].calls
    png = tmp_path / "old.png"
    assert main(["stats", str(old), "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "history: none in this file" in out
    assert "plot: per-model calls and mean reward" in out
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_plot_of_choices_and_reward_over_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    router, _ = _router(calls=50)
    path = tmp_path / "router.json"
    router.save(path)
    svg = tmp_path / "stats.svg"
    assert main(["stats", str(path), "--plot", str(svg)]) == 0
    assert "plot: choices and reward over learned calls 1..50" in capsys.readouterr().out
    assert "<svg" in svg.read_text(encoding="utf-8")[:1000]


def test_an_empty_router_shows_dashes_not_nan(tmp_path: Path) -> None:
    path = tmp_path / "router.json"
    Router(POOL).save(path)
    text = render_stats(read_stats(path))
    assert "nan" not in text
    row = next(line for line in text.splitlines() if line.startswith("small "))
    assert row.split()[1:] == ["0", "-", "0", "-", "0.000000", "-", "-", "-"]
    assert math.isnan(read_stats(path).mean_reward)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "has no 'router' object"),
        ('{"router": {"format": "something else"}}', "not a 'pickllm.router' state"),
        ('{"router": {"format": "pickllm.router", "stats": 3}}', "malformed statistics"),
    ],
)
def test_bad_files_are_one_line_naming_the_path(
    content: str | None, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "state.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    assert main(["stats", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"pickllm stats: error: router state file '{path}'")
    assert message in err
    assert err.count("\n") == 1
    with pytest.raises(StateError, match=message):
        read_stats(path)


def test_a_bad_plot_path_is_refused_before_reading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nothing-here.json"
    assert main(["stats", str(missing), "--plot", str(tmp_path / "out.txt")]) == 2
    err = capsys.readouterr().err
    assert "argument --plot: cannot write a figure as" in err


def test_read_state_refuses_an_edited_file_unless_told(tmp_path: Path) -> None:
    router, _ = _router(calls=5)
    path = tmp_path / "router.json"
    router.save(path)
    document = json.loads(path.read_text(encoding="utf-8"))
    document["router"]["stats"]["small"]["calls"] += 1
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(StateError, match="does not match its checksum"):
        read_state(path)
    assert read_state(path, verify=False)["stats"]["small"]["calls"] >= 1
