"""The linear policies' shared prior, their change handling, the tuning replica, OPE folds."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from pickllm import ConfigError, StateError
from pickllm.bench import run_bench
from pickllm.bench.tuning import tuning_table
from pickllm.ope import LoggedDecision, evaluate
from pickllm.policies import Fixed, LinearThompson, LinUCB, Random
from pickllm.types import Candidate, Context

from .test_bench import synthetic

# Relative prices 0, 0.5 and 1 (price = input + output price).
POOL = (
    Candidate(name="cheap", input_price=1.0, output_price=1.0),
    Candidate(name="middle", input_price=2.0, output_price=2.0),
    Candidate(name="dear", input_price=3.0, output_price=3.0),
)
PRICE = {"cheap": 0.0, "middle": 0.5, "dear": 1.0}


Seen = list[tuple[np.ndarray, float, str, float]]


def _learn(policy: LinUCB | LinearThompson, steps: int, pool: tuple[Candidate, ...]) -> Seen:
    """Random features and rewards; returns (x, relative price, model, reward) per step."""
    rng = np.random.default_rng(4)
    prices = {c.name: c.input_price + c.output_price for c in pool}
    low, high = min(prices.values()), max(prices.values())
    relative = {m: (v - low) / (high - low) for m, v in prices.items()}  # in the offered pool
    seen: Seen = []
    for _ in range(steps):
        f = rng.random(2)
        decision = policy.select(Context(features=tuple(f.tolist()), candidates=pool))
        name = decision.candidate.name
        reward = float(np.clip(0.3 + 0.4 * f[0] + 0.2 * PRICE[name], 0, 1))
        policy.update(decision, reward)
        seen.append((np.concatenate(([1.0], f)), relative[name], name, reward))
    return seen


def test_the_shared_head_is_the_ridge_fit_of_every_reward_and_the_untried_models_prior() -> None:
    policy = LinUCB(shared_prior=True, prior_mean=0.5, regularization=2.0, key_buckets=0, seed=0)
    seen = _learn(policy, 80, POOL[:2])  # "dear" is never offered until the probe
    z = np.array([(*x, p) for x, p, _, _ in seen])
    r = np.array([reward for *_, reward in seen])
    w = np.linalg.solve(2.0 * np.eye(4) + z.T @ z, z.T @ (r - 0.5))
    x = np.array([1.0, 0.3, 0.7])
    mean, width = policy.predict(Context(features=(0.3, 0.7), candidates=POOL))["dear"]
    assert mean == pytest.approx(0.5 + x @ w[:3] + w[3] * 1.0, abs=1e-9)
    assert width == pytest.approx(0.3 * np.sqrt(x @ x / 2.0), abs=1e-9)
    # The shared fit sees that the dearer model earned more: a positive price weight.
    assert w[3] > 0.05


def test_a_tried_head_is_the_ridge_fit_with_the_shared_weights_as_its_prior_mean() -> None:
    policy = LinUCB(shared_prior=True, prior_mean=0.5, regularization=2.0, key_buckets=0, seed=0)
    seen = _learn(policy, 120, POOL)
    z = np.array([(*x, p) for x, p, _, _ in seen])
    r = np.array([reward for *_, reward in seen])
    w = np.linalg.solve(2.0 * np.eye(4) + z.T @ z, z.T @ (r - 0.5))
    rows = [(x, reward) for x, _, name, reward in seen if name == "middle"]
    assert rows
    xs = np.array([x for x, _ in rows])
    ys = np.array([reward for _, reward in rows])
    centre = 0.5 + w[3] * 0.5
    theta = np.linalg.solve(2.0 * np.eye(3) + xs.T @ xs, xs.T @ (ys - centre) + 2.0 * w[:3])
    x = np.array([1.0, 0.6, 0.1])
    mean, _ = policy.predict(Context(features=(0.6, 0.1), candidates=POOL))["middle"]
    assert mean == pytest.approx(centre + x @ theta, abs=1e-9)


@pytest.mark.parametrize("cls", [LinUCB, LinearThompson])
def test_the_shared_prior_round_trips_through_json_state(
    cls: type[LinUCB | LinearThompson],
) -> None:
    policy = cls(shared_prior=True, discount=0.95, seed=0)
    _learn(policy, 50, POOL)
    state = json.loads(json.dumps(policy.state_dict()))
    fresh = cls(shared_prior=True, discount=0.95, seed=0)
    fresh.load_state_dict(state)
    probe = Context(features=(0.2, 0.9), candidates=POOL)
    assert fresh.predict(probe) == policy.predict(probe)
    _learn(fresh, 20, POOL)
    _learn(policy, 20, POOL)
    assert fresh.state_dict()["state"] == policy.state_dict()["state"]


def test_a_state_without_the_shared_head_loads_with_a_fresh_one() -> None:
    policy = LinUCB(shared_prior=True, key_buckets=0, seed=0)
    _learn(policy, 30, POOL)
    state = policy.state_dict()
    for field in ("price", "shared_A", "shared_A_inv", "shared_b", "shared_s"):
        del state["state"][field]
    fresh = LinUCB(shared_prior=True, key_buckets=0, seed=0)
    fresh.load_state_dict(state)
    assert fresh.counts == policy.counts
    assert fresh.state_dict()["state"]["shared_b"] == [0.0, 0.0, 0.0, 0.0]


def test_a_malformed_shared_head_is_refused() -> None:
    policy = LinUCB(shared_prior=True, seed=0)
    _learn(policy, 10, POOL)
    state = policy.state_dict()
    state["state"]["shared_A"] = [[1.0]]
    with pytest.raises(StateError, match="shared_A"):
        LinUCB(shared_prior=True, seed=0).load_state_dict(state)


@pytest.mark.parametrize("cls", [LinUCB, LinearThompson])
def test_without_the_shared_prior_predictions_are_unchanged_by_the_shared_head(
    cls: type[LinUCB | LinearThompson],
) -> None:
    # The shared head is not even fitted: a plain policy's state has a zero shared head.
    policy = cls(shared_prior=False, seed=0)
    _learn(policy, 40, POOL)
    assert not np.any(policy.state_dict()["state"]["shared_b"])


def _degrade(keep: float) -> tuple[LinUCB, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """'cheap' earns 0.9 then 0.1; stops at the detected change.

    Returns the policy and every head's A just before and just after the detecting update.
    """
    policy = LinUCB(change_threshold=1.0, change_keep=keep, key_buckets=0, seed=0)
    ctx = Context(query="q", candidates=POOL)
    rng = np.random.default_rng(0)

    def heads() -> dict[str, np.ndarray]:
        state = policy.state_dict()["state"]
        return {m: np.array(state["A"][i]) for i, m in enumerate(state["models"])}

    before = after = heads()
    for t in range(600):
        decision = policy.select(ctx)
        good = 0.9 if t < 200 else 0.1
        p = good if decision.candidate.name == "cheap" else 0.5
        before = heads()
        policy.update(decision, float(rng.random() < p))
        if policy.changes:
            after = heads()
            break
    return policy, before, after


def test_a_detected_change_resets_the_changed_head_and_keeps_a_share_of_the_others() -> None:
    policy, before, after = _degrade(1.0)
    assert policy.changes == 1
    eye = np.eye(after["cheap"].shape[0])
    np.testing.assert_allclose(after["cheap"], eye)  # the changed model starts again
    for name in ("middle", "dear"):  # the others keep everything
        np.testing.assert_allclose(after[name], before[name])
    policy, before, after = _degrade(0.5)
    assert policy.changes == 1
    for name in ("middle", "dear"):  # ... or half of their evidence
        np.testing.assert_allclose(after[name] - eye, 0.5 * (before[name] - eye))


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"change_keep": 1.5}, ConfigError),
        ({"change_keep": -0.1}, ConfigError),
        ({"shared_prior": 1}, TypeError),
    ],
)
def test_new_hyperparameters_are_validated(
    kwargs: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error, match=next(iter(kwargs))):
        LinUCB(**kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------- tuning replica
def test_the_tuning_replica_holds_only_train_rows_and_splits_them_by_fold() -> None:
    table = synthetic(n=60)
    replica = tuning_table(table, test_folds=(0,))
    train_ids = {table.prompt_ids[i] for i, s in enumerate(table.splits) if s != "test"}
    assert set(replica.prompt_ids) == train_ids
    for split, fold in zip(replica.splits, replica.folds.tolist(), strict=True):
        assert (split == "test") == (fold == 0)
    with pytest.raises(ConfigError, match="test_folds"):
        tuning_table(table, test_folds=(99,))


# ---------------------------------------------------------------- OPE reward model
def _log(n: int) -> list[LoggedDecision]:
    pool = (Candidate(name="a"), Candidate(name="b"), Candidate(name="c"))
    rng = np.random.default_rng(1)
    logger = Random(seed=0)
    log = []
    for _ in range(n):
        ctx = Context(features=(float(rng.random()),), candidates=pool)
        decision = logger.select(ctx)
        p = {"a": 0.3, "b": 0.2 + 0.6 * ctx.features[0], "c": 0.5}[decision.candidate.name]  # type: ignore[index]
        log.append(LoggedDecision.from_decision(ctx, decision, float(rng.random() < p)))
    return log


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"folds": 5},
        {"pooled": True},
        {"normalize": True},
        {"clip": 2.0},
        {"folds": 5, "pooled": True, "normalize": True, "clip": 2.0},
    ],
)
def test_doubly_robust_variants_find_the_truth(options: dict[str, Any]) -> None:
    est = evaluate(Fixed(model="b", seed=0), _log(3000), method="dr", **options)
    assert est.low < 0.5 < est.high  # b earns 0.2 + 0.6 * U(0, 1): 0.5 on average
    assert abs(est.value - 0.5) < 0.03


def test_clipping_bounds_the_weight_of_a_correction() -> None:
    # The uniform logger's weights are 3; clipped at 1, the corrections shrink, and with
    # them the spread of the terms.
    log = _log(600)
    plain = evaluate(Fixed(model="a", seed=0), log, method="dr")
    clipped = evaluate(Fixed(model="a", seed=0), log, method="dr", clip=1.0)
    assert clipped.high - clipped.low < plain.high - plain.low


@pytest.mark.parametrize(("options", "field"), [({"folds": 1}, "folds"), ({"clip": 0.5}, "clip")])
def test_doubly_robust_options_are_validated(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        evaluate(Fixed(model="b", seed=0), _log(10), method="dr", **options)


# ---------------------------------------------------------------- bench rule
def test_the_bench_gives_linear_policies_the_objectives_cost_share_as_price_prior() -> None:
    table = synthetic(n=40)
    report = run_bench(table, policies=["lin_ucb", "thompson"], seeds=1)
    ruled = [n for n in report.notes if "price_prior" in n]
    assert len(ruled) == 1
    assert ruled[0].startswith("lin_ucb: price_prior=0.294")  # 0.5 / (1 + 0.5 + 0.2)
    given = run_bench(
        table, policies=["lin_ucb"], seeds=1, policy_params={"lin_ucb": {"price_prior": 0.1}}
    )
    assert not [n for n in given.notes if "the objective's cost share" in n]
    assert "policy parameters given: lin_ucb price_prior=0.1" in given.notes


def test_a_shifted_change_marks_the_changed_models_past_rewards_down() -> None:
    # 'cheap' earns 0.9 then 0.3 (a drop of 0.6); with change_shift its head keeps its
    # evidence and is at once predicted below its old level, near the new one.
    policy = LinUCB(change_threshold=1.0, change_keep=1.0, change_shift=True, seed=0)
    ctx = Context(query="q", candidates=POOL[:1])
    for t in range(400):
        decision = policy.select(ctx)
        policy.update(decision, 0.9 if t < 200 else 0.3)
        if policy.changes:
            break
    assert policy.changes == 1
    assert policy.counts["cheap"] > 200  # the evidence is kept
    mean, _ = policy.predict(ctx)["cheap"]
    assert 0.25 < mean < 0.6


def test_the_change_run_round_trips_through_state() -> None:
    policy = LinUCB(change_threshold=50.0, change_shift=True, seed=0)
    ctx = Context(query="q", candidates=POOL[:1])
    for t in range(30):
        decision = policy.select(ctx)
        policy.update(decision, 0.9 if t < 20 else 0.1)
    state = json.loads(json.dumps(policy.state_dict()))
    assert state["state"]["run_n"][0] > 0
    fresh = LinUCB(change_threshold=50.0, change_shift=True, seed=0)
    fresh.load_state_dict(state)
    assert fresh.state_dict()["state"] == policy.state_dict()["state"]
    state["state"]["run_n"] = [-1.0]
    with pytest.raises(StateError, match="counts"):
        fresh.load_state_dict(state)


def test_a_shifted_change_marks_the_models_rewards_down_in_the_shared_head_too() -> None:
    policy = LinUCB(
        shared_prior=True, change_threshold=1.0, change_keep=1.0, change_shift=True, seed=0
    )
    ctx = Context(query="q", candidates=POOL[:1])
    for t in range(400):
        before = policy.state_dict()["state"]
        decision = policy.select(ctx)
        policy.update(decision, 0.9 if t < 200 else 0.3)
        if policy.changes:
            break
    assert policy.changes == 1
    state = policy.state_dict()["state"]
    # Only one model: its share of the shared head's sum of z is all of it ...
    np.testing.assert_allclose(state["shared_s_model"][0], state["shared_s"])
    # ... and the shared head keeps its evidence, its rewards marked down (by a drop in
    # (0, 0.6]: the run that set the test off mixes rewards of 0.9 and 0.3).
    z_sum = np.asarray(state["shared_s"])
    learned = np.asarray(before["shared_b"]) + 0.3 * z_sum / (t + 1)  # plus the last reward
    lowered = learned - np.asarray(state["shared_b"])
    k = np.flatnonzero(z_sum)[0]
    shortfall = lowered[k] / z_sum[k]
    assert 0.0 < shortfall <= 0.6
    np.testing.assert_allclose(lowered, shortfall * z_sum, atol=1e-9)
    assert np.asarray(state["shared_A"]).trace() > 100
