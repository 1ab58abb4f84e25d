"""The benchmark harness: baselines, offline sweeps, online streams, reports and plots."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pickllm import ConfigError, Objective
from pickllm.bench import (
    OFFLINE_ROUTERS,
    ONLINE_FACTORIES,
    BenchReport,
    OfflineRouter,
    PerTaskAverage,
    PolicySetup,
    available_methods,
    plot_report,
    register_offline_router,
    register_online_policy,
    render_report,
    resolve_methods,
    run_bench,
    split_rows,
)
from pickllm.bench.plot import method_colours
from pickllm.bench.report import WIDTH
from pickllm.data import OutcomeTable, load_outcomes
from pickllm.metrics import apgr, cpt, quality_cost_auc
from pickllm.policies import Choice, Policy
from pickllm.types import Context, Decision

BASELINES = {"random_model", "best_single", "best_per_task", "convex_hull", "oracle"}


def synthetic(
    *, n: int = 80, cost: bool = True, latency: bool = False, seed: int = 0
) -> OutcomeTable:
    """Three models: cheap and weak, mid, dear and strong; two tasks; half train, half test."""
    rng = np.random.default_rng(seed)
    skill = np.array([0.3, 0.6, 0.9])
    quality = (rng.random((n, 3)) < skill).astype(float)
    return OutcomeTable(
        name="synthetic",
        prompt_ids=tuple(f"p{i}" for i in range(n)),
        prompts=tuple(f"question {i}" for i in range(n)),
        tasks=tuple("a" if i % 2 else "b" for i in range(n)),
        splits=tuple("train" if i < n // 2 else "test" for i in range(n)),
        folds=np.arange(n) % 4,
        models=("cheap", "mid", "dear"),
        quality=quality,
        cost=np.tile([0.001, 0.002, 0.01], (n, 1)) if cost else None,
        cost_estimated=False,
        input_tokens=np.full(n, 10),
        latency=rng.uniform(0.1, 2.0, (n, 3)) if latency else None,
        responses=None,
    )


class _Scripted(Policy):
    """Test policy: a fixed rule over candidate indices (not registered: no name)."""

    def __init__(self, *, rule: str = "last", seed: int | None = None) -> None:
        super().__init__(seed=seed)
        self.rule = rule
        self._step = 0

    def _select(self, context: Context) -> Choice:
        self._step += 1
        k = len(context.candidates)
        if self.rule == "cycle":
            return Choice(self._step % k, 1.0 / k)
        if self.rule == "ensemble":
            return Choice(0, 1.0, members=[0, k - 1], kind="ensemble")
        return Choice(k - 1, 1.0)

    def _update(self, decision: Decision, reward: float) -> None:
        pass


def scripted(rule: str) -> Any:
    return lambda setup: _Scripted(rule=rule, seed=setup.seed)


@pytest.fixture
def tiny_policies(monkeypatch: pytest.MonkeyPatch) -> None:
    for rule in ("last", "cycle", "ensemble"):
        monkeypatch.setitem(ONLINE_FACTORIES, f"scripted_{rule}", scripted(rule))


@pytest.fixture(scope="module")
def routerbench_report() -> BenchReport:
    return run_bench(load_outcomes("routerbench_subset"), policies=["per_task"])


# ---------------------------------------------------------------- routerbench figures
def test_routerbench_report_has_every_baseline_and_the_reference_figures(
    routerbench_report: BenchReport,
) -> None:
    report = routerbench_report
    assert report.n_test == 945
    assert report.n_train == 2205
    assert report.split == "split=test"
    assert report.cost_label == "recorded"
    assert report.latency_label == "simulated"
    names = set(report.results)
    assert set(report.models) <= names
    assert names >= BASELINES
    assert round(100 * report.results["oracle"].accuracy, 2) == 97.57
    assert round(100 * report.results["gpt-4-1106-preview"].accuracy, 2) == 87.94
    assert report.results["best_single"].detail == "gpt-4-1106-preview"
    assert report.reference["best_model"] == "gpt-4-1106-preview"
    assert report.reference["cheapest_model"] == "mistralai/mistral-7b-chat"
    assert report.results["oracle"].mean_cost == pytest.approx(0.000211, abs=5e-7)


def test_per_task_router_reaches_the_cascade_routing_reference_auc(
    routerbench_report: BenchReport,
) -> None:
    per_task = routerbench_report.results["per_task"]
    hull = routerbench_report.results["convex_hull"]
    assert per_task.kind == "offline"
    assert per_task.auc is not None
    assert hull.auc is not None
    assert per_task.auc == pytest.approx(85.6, abs=0.5)
    assert per_task.auc > hull.auc
    assert len(per_task.points) > 10
    # At the quality-only end it routes every task to GPT-4, like best_per_task.
    assert per_task.accuracy == routerbench_report.results["best_per_task"].accuracy


def test_curve_figures_are_the_metrics_of_the_reported_points(
    routerbench_report: BenchReport,
) -> None:
    ref = routerbench_report.reference
    res = routerbench_report.results["per_task"]
    costs = [p[0] for p in res.points]
    quals = [p[1] for p in res.points]
    c_min, c_max = float(ref["c_min"]), float(ref["c_max"])  # type: ignore[arg-type]
    q_floor = float(ref["q_floor"])  # type: ignore[arg-type]
    band = {
        "c_min": c_min,
        "c_max": c_max,
        "q_weak": float(ref["q_cheapest"]),  # type: ignore[arg-type]
        "q_strong": float(ref["q_best"]),  # type: ignore[arg-type]
        "q_floor": q_floor,
    }
    auc = quality_cost_auc(costs, quals, c_min=c_min, c_max=c_max, q_floor=q_floor)
    assert res.auc == pytest.approx(100 * auc)
    assert res.apgr == pytest.approx(apgr(costs, quals, **band))
    assert res.cpt50 == pytest.approx(100 * cpt(costs, quals, 0.5, **band))  # type: ignore[operator]
    assert res.cost_to_100 is not None
    assert res.cost_to_95 is not None
    assert res.cost_to_95 < res.cost_to_100 <= c_max


# ---------------------------------------------------------------- online streams
def test_a_policy_that_always_plays_the_best_fixed_model_has_no_regret(
    tiny_policies: None,
) -> None:
    # With quality only, the dear and strong model is the best fixed one.
    report = run_bench(
        synthetic(), policies=["scripted_last"], seeds=3, objective=Objective(cost=0, latency=0)
    )
    res = report.results["scripted_last"]
    stats = res.online
    assert stats is not None
    assert stats.best_fixed_model == "dear"
    assert stats.regret_best_fixed == pytest.approx(0.0)
    assert stats.regret_oracle >= 0
    assert stats.settle_steps == (0, 0, 0)
    assert stats.settled_models == ("dear",) * 3
    assert stats.settled_on_best == 3
    assert res.accuracy == report.results["dear"].accuracy
    assert stats.steps == 40
    assert len(stats.regret_curve_best_fixed) == 40
    assert stats.total_cost == pytest.approx(40 * 0.01)


def test_a_cycling_policy_never_settles_and_has_regret(tiny_policies: None) -> None:
    report = run_bench(synthetic(), policies=["scripted_cycle"], seeds=2)
    stats = report.results["scripted_cycle"].online
    assert stats is not None
    assert stats.settle_steps == (None, None)
    assert stats.settled_on_best == 0
    assert stats.regret_oracle > stats.regret_best_fixed


def test_online_curves_are_running_means_and_spreads_over_the_orders(tiny_policies: None) -> None:
    report = run_bench(synthetic(), policies=["scripted_last", "scripted_cycle"], seeds=3)
    last = report.results["scripted_last"]
    cycle = report.results["scripted_cycle"].online
    assert last.online is not None
    assert cycle is not None
    # Always the same model: every order sees the same rewards, only shuffled.
    assert last.online.reward_curve[-1] == pytest.approx(last.mean_reward)
    assert last.online.reward_curve_std[-1] == pytest.approx(0.0, abs=1e-12)
    assert max(last.online.reward_curve_std) > 0  # the running means differ before the end
    assert last.online.regret_std_best_fixed[-1] == pytest.approx(0.0, abs=1e-12)
    assert cycle.reward_curve[-1] == pytest.approx(report.results["scripted_cycle"].mean_reward)
    for curve in (
        cycle.reward_curve,
        cycle.reward_curve_std,
        cycle.regret_std_best_fixed,
        cycle.regret_std_oracle,
    ):
        assert len(curve) == cycle.steps
    assert max(cycle.regret_std_oracle) > 0
    one = run_bench(synthetic(), policies=["scripted_cycle"], seeds=1).results["scripted_cycle"]
    assert one.online is not None
    assert set(one.online.regret_std_oracle) == {0.0}


def test_an_ensemble_plan_pays_every_member_and_keeps_the_best_answer(
    tiny_policies: None,
) -> None:
    table = synthetic()
    report = run_bench(table, policies=["scripted_ensemble"], seeds=1)
    res = report.results["scripted_ensemble"]
    test = table.rows(split="test")
    assert res.accuracy == pytest.approx(table.quality[test][:, [0, 2]].max(axis=1).mean())
    assert res.mean_cost == pytest.approx(0.011)


def test_registered_policies_run_on_real_data_and_fixed_plays_the_best_single_model() -> None:
    table = load_outcomes("routerbench_subset")
    rows = np.concatenate([table.rows(split="train")[:300], table.rows(split="test")[:120]])
    report = run_bench(
        table.subset(rows),
        policies=["fixed", "thompson", "per_context", "cheapest", "random"],
        seeds=2,
    )
    fixed = report.results["fixed"]
    assert fixed.accuracy == report.results["best_single"].accuracy
    assert fixed.online is not None
    assert fixed.online.settle_steps == (0, 0)
    cheapest = report.results["cheapest"]
    assert cheapest.mean_cost == report.results["mistralai/mistral-7b-chat"].mean_cost
    for name in ("thompson", "per_context", "random"):
        res = report.results[name]
        assert res.kind == "online"
        assert 0.0 <= res.accuracy <= 1.0
        assert res.online is not None
        assert res.online.regret_oracle >= res.online.regret_best_fixed - 1e-9


def test_same_seed_same_numbers_other_seed_other_orders(tiny_policies: None) -> None:
    table = synthetic(n=60)
    policies = ["random", "per_context", "thompson", "scripted_cycle", "per_task"]
    kwargs: dict[str, Any] = {"policies": policies, "seeds": 2}
    a = run_bench(table, seed=3, **kwargs).to_dict()
    b = run_bench(table, seed=3, **kwargs).to_dict()
    c = run_bench(table, seed=4, **kwargs).to_dict()
    assert a == b
    assert a["results"]["random"] != c["results"]["random"]


# ---------------------------------------------------------------- setup and errors
def test_unknown_policy_lists_what_is_available() -> None:
    with pytest.raises(ConfigError) as info:
        run_bench(synthetic(), policies=["nope"])
    message = str(info.value)
    assert "unknown policy 'nope'" in message
    assert "per_task" in message
    assert "thompson" in message


def test_policy_names_are_matched_like_make_policy() -> None:
    offline, online = resolve_methods(["per_task", "Epsilon-Greedy-Q", "ucb1", "ucb1"])
    assert offline == ["per_task"]
    assert online == ["epsilon_greedy_q", "ucb1"]
    methods = available_methods()
    assert "per_task" in methods["offline"]
    assert {"learning_automaton", "fixed", "per_context"} <= set(methods["online"])


def test_default_methods_are_the_offline_routers_and_the_core_policies() -> None:
    offline, online = resolve_methods(None)
    assert "per_task" in offline
    assert online == [
        "learning_automaton",
        "epsilon_greedy_q",
        "ucb1",
        "thompson",
        "fixed",
        "random",
        "cheapest",
        "per_context",
        "linear_thompson",
        "lin_ucb",
    ]


def test_split_rows_by_split_and_fold() -> None:
    table = synthetic(n=8)
    train, test, label = split_rows(table)
    assert (train.tolist(), test.tolist(), label) == ([0, 1, 2, 3], [4, 5, 6, 7], "split=test")
    train, test, label = split_rows(table, split_column="fold", test_split="1")
    assert (test.tolist(), label) == ([1, 5], "fold=1")
    assert sorted([*train.tolist(), *test.tolist()]) == list(range(8))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"split_column": "column"}, "unknown split column 'column'; available: split, fold"),
        ({"split_column": "fold", "test_split": "x"}, "must be a fold number"),
        ({"test_split": "dev"}, "available: test, train"),
        ({"split_column": "fold", "test_split": 9}, "available: 0, 1, 2, 3"),
    ],
)
def test_bad_splits_are_config_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        split_rows(synthetic(n=8), **kwargs)


def test_a_test_split_covering_everything_leaves_no_train_rows() -> None:
    table = synthetic(n=8).subset(np.arange(4, 8))
    with pytest.raises(ConfigError, match="no train rows"):
        split_rows(table)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"seeds": 0}, "seeds"), ({"seed": -1}, "seed"), ({"budgets_per_segment": 1}, "budgets")],
)
def test_bad_arguments_are_config_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        run_bench(synthetic(), policies=[], **kwargs)


# ---------------------------------------------------------------- cost and latency labels
def test_without_cost_quality_metrics_remain_and_cost_metrics_are_unavailable() -> None:
    report = run_bench(synthetic(cost=False), policies=["per_task", "random"], seeds=1)
    assert report.cost_label == "unavailable"
    assert not report.cost_available
    assert report.objective.cost == 0.0
    assert "convex_hull" not in report.results
    for res in report.results.values():
        assert res.mean_cost is None
        assert res.auc is None
        assert res.cpt50 is None
        assert 0.0 <= res.accuracy <= 1.0
    assert any("cost unavailable" in note for note in report.notes)
    assert "$/query (unavailable): mean cost per query" in render_report(report)


def test_an_objective_of_cost_alone_needs_cost() -> None:
    with pytest.raises(ConfigError, match="no cost"):
        run_bench(synthetic(cost=False), policies=[], objective=Objective(quality=0, latency=0))


def test_recorded_latency_is_used_as_is() -> None:
    table = synthetic(latency=True)
    report = run_bench(table, policies=[])
    assert report.latency_label == "recorded"
    assert table.latency is not None
    test = table.rows(split="test")
    assert report.results["mid"].mean_latency == pytest.approx(table.latency[test, 1].mean())


def test_cost_scale_defaults_to_the_dearest_models_mean_train_cost() -> None:
    report = run_bench(synthetic(), policies=[])
    assert report.objective.cost_scale == pytest.approx(0.01)
    given = run_bench(synthetic(), policies=[], objective=Objective(cost_scale=1.0))
    assert given.objective.cost_scale == 1.0


def test_llmrouter_by_fold_labels_estimated_cost_and_simulated_latency() -> None:
    table = load_outcomes("llmrouter_9llm")
    report = run_bench(table, policies=["per_task"], split_column="fold", test_split=0)
    assert report.split == "fold=0"
    assert report.cost_label == "estimated"
    text = render_report(report)
    assert "$/query (estimated): mean cost per query" in text
    assert "lat s (simulated): mean latency" in text
    assert "note: cost is estimated" in text
    assert report.results["per_task"].auc is not None


# ---------------------------------------------------------------- offline routers
class _Perfect:
    """Test router that knows the true outcomes."""

    name = "perfect"

    def fit(self, table: OutcomeTable, rows: np.ndarray) -> None:
        pass

    def predict(self, table: OutcomeTable, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        assert table.cost is not None
        return table.quality[rows], table.cost[rows]


class _Broken(_Perfect):
    def predict(self, table: OutcomeTable, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros((1, 1)), np.zeros((1, 1))


def test_registered_offline_routers_are_benchmarked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pickllm.registry.OFFLINE_ROUTERS", dict(OFFLINE_ROUTERS))
    register_offline_router("perfect", _Perfect)
    assert isinstance(_Perfect(), OfflineRouter)
    report = run_bench(synthetic(), policies=["per_task", "perfect"])
    perfect = report.results["perfect"]
    assert perfect.accuracy == report.results["oracle"].accuracy
    assert perfect.auc is not None
    assert report.results["per_task"].auc is not None
    assert perfect.auc > report.results["per_task"].auc


def test_an_offline_router_predicting_the_wrong_shape_is_rejected(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("pickllm.registry.OFFLINE_ROUTERS", {"broken": _Broken})
    with pytest.raises(ConfigError, match="offline router 'broken'"):
        run_bench(synthetic(), policies=["broken"])


def test_registration_rejects_empty_names(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError):
        register_offline_router("", _Perfect)
    with pytest.raises(ConfigError):
        register_online_policy("", scripted("last"))
    monkeypatch.setattr("pickllm.registry.ONLINE_FACTORIES", dict(ONLINE_FACTORIES))
    register_online_policy("scripted", scripted("last"))
    assert "scripted" in available_methods()["online"]


def test_per_task_average_predicts_train_means_and_falls_back_for_new_tasks() -> None:
    table = synthetic(n=8)
    router = PerTaskAverage()
    with pytest.raises(ConfigError, match="before fit"):
        router.predict(table, np.arange(2))
    train = np.array([0, 1, 2, 3])
    router.fit(table, train)
    q_hat, c_hat = router.predict(table, np.array([4, 5]))
    b_rows = train[[t == "b" for t in (table.tasks[i] for i in train)]]
    assert q_hat[0].tolist() == pytest.approx(table.quality[b_rows].mean(axis=0).tolist())
    assert c_hat.shape == (2, 3)
    other = OutcomeTable(**{**_fields(table), "tasks": ("z",) * 8})
    q_new, _ = router.predict(other, np.array([0]))
    assert q_new[0].tolist() == pytest.approx(table.quality[train].mean(axis=0).tolist())
    with pytest.raises(ConfigError, match="at least one train row"):
        router.fit(table, np.array([], dtype=int))


def _fields(table: OutcomeTable) -> dict[str, Any]:
    return {name: getattr(table, name) for name in OutcomeTable.__slots__}


# ---------------------------------------------------------------- output
def test_to_dict_is_strict_json_with_every_result(tiny_policies: None) -> None:
    report = run_bench(synthetic(), policies=["per_task", "scripted_cycle"], seeds=2)
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert set(data["results"]) == set(report.results)
    per_task = data["results"]["per_task"]
    assert per_task["kind"] == "offline"
    assert isinstance(per_task["auc"], float)
    assert per_task["cost_label"] == "recorded"
    assert per_task["latency_label"] == "simulated"
    assert all(len(p) == 2 for p in per_task["points"])
    online = data["results"]["scripted_cycle"]["online"]
    assert len(online["regret_curve_oracle"]) == 40
    assert online["settle_steps"] == [None, None]
    assert data["data"]["n_test"] == 40
    assert data["objective"]["cost_scale"] == pytest.approx(0.01)


def test_render_report_is_an_aligned_table_of_every_method(tiny_policies: None) -> None:
    report = run_bench(synthetic(), policies=["per_task", "scripted_last"], seeds=1)
    text = render_report(report)
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("method"))
    dashes = lines[header + 1]
    for name in report.results:
        row = next(line for line in lines[header:] if line.startswith(name + " "))
        # Every numeric column ends where its dashes end.
        assert len(row) == len(dashes)
    assert "online learning over 1 stream(s)" in text
    best = report.results["scripted_last"].online
    assert best is not None
    best_line = "best: the best single model in hindsight (by reward on these prompts), "
    assert best_line + best.best_fixed_model in text
    # Methods are grouped by kind under a title line, in report order.
    titles = [line for line in lines[header:] if line.startswith("[")]
    assert titles[:2] == ["[single models]", "[baselines]"]
    assert max(len(line) for line in lines) <= WIDTH


def test_long_method_names_are_shortened_in_the_middle_to_fit(tiny_policies: None) -> None:
    report = run_bench(synthetic(), policies=["per_task", "scripted_last"], seeds=1)
    long_name = "an-organisation/a-model-name-much-longer-than-any-column-should-be-v2"
    renamed = {
        name: replace(r, name=long_name) if name == "per_task" else r
        for name, r in report.results.items()
    }
    text = render_report(replace(report, results=renamed))
    shortened = next(line.split()[0] for line in text.splitlines() if "..." in line)
    assert len(shortened) == 36
    assert shortened == long_name[:17] + "..." + long_name[-16:]
    assert max(len(line) for line in text.splitlines()) <= WIDTH


def test_plot_colours_are_one_per_method(tiny_policies: None) -> None:
    report = run_bench(synthetic(), policies=["per_task", "scripted_cycle", "scripted_last"])
    colours = method_colours(report)
    methods = [r.name for r in report.results.values() if r.kind != "model"]
    assert set(colours) == set(methods)
    assert len(set(colours.values())) == len(methods)


def test_plot_report_writes_a_png(tmp_path: Path, tiny_policies: None) -> None:
    report = run_bench(synthetic(), policies=["per_task", "scripted_cycle"], seeds=1)
    path = tmp_path / "bench.png"
    plot_report(report, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_report_without_matplotlib_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    report = run_bench(synthetic(), policies=[])
    with pytest.raises(ImportError, match=r"pickllm\[plot\]"):
        plot_report(report, tmp_path / "x.png")


def test_policy_setup_carries_the_best_train_model() -> None:
    seen: list[PolicySetup] = []

    def factory(setup: PolicySetup) -> Policy:
        seen.append(setup)
        return _Scripted(seed=setup.seed)

    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(ONLINE_FACTORIES, "spy", factory)
        run_bench(synthetic(), policies=["spy"], seeds=2)
    assert [s.best_single for s in seen] == ["dear", "dear"]
    assert seen[0].seed != seen[1].seed
    assert seen[0].train.tolist() == list(range(40))
