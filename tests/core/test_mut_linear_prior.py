"""Linear policies' reward prior, warm start, change tests and saved state, for mutation testing.

Complements ``test_mut_linear.py``: every expected number is recomputed here from the
definitions of ``pickllm.policies.linear`` (heads ``A = reg * I + sum x x^T``,
``b = sum x r`` with ``x (r - p(x))`` against a reward prior, ``s``/``prior_s`` the sums of
``x`` learned without/with a prior value, the Page-Hinkley recursion on residuals
``predicted - observed``), never copied from the code's output. Contexts carry explicit
features, so ``x = (1, *features)`` (``key_buckets=0``: no key part).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from pickllm import Candidate, ConfigError, Context, StateError
from pickllm.policies.base import Choice
from pickllm.policies.lin_ucb import LinUCB
from pickllm.policies.linear import LinearPolicy
from pickllm.policies.linear_thompson import LinearThompson
from pickllm.types import Plan

A = Candidate(name="a", input_price=1.0, output_price=1.0)
B = Candidate(name="b", input_price=2.0, output_price=2.0)
P = "state of policy 'lin_ucb'"


def ctx(features: tuple[float, ...], *pool: Candidate, query: str = "") -> Context:
    return Context(query=query, candidates=pool or (A, B), features=features)


def state(policy: LinearPolicy) -> dict[str, Any]:
    inner: dict[str, Any] = policy.state_dict()["state"]
    return inner


def row(policy: LinearPolicy, field_name: str, model: str) -> np.ndarray:
    st = state(policy)
    return np.asarray(st[field_name][st["models"].index(model)], dtype=float)


# ================================================================ exact messages
@pytest.mark.parametrize("cls", [LinUCB, LinearThompson])
def test_set_prior_refuses_a_non_callable_with_the_whole_message(
    cls: type[LinUCB | LinearThompson],
) -> None:
    with pytest.raises(TypeError) as info:
        cls().set_prior(3)  # type: ignore[arg-type]
    assert str(info.value) == f"{cls.__name__} prior must be callable or None, got 3"


@pytest.mark.parametrize("cls", [LinUCB, LinearThompson])
def test_set_prior_refuses_a_shared_prior_policy_with_the_whole_message(
    cls: type[LinUCB | LinearThompson],
) -> None:
    with pytest.raises(ConfigError) as info:
        cls(shared_prior=True).set_prior(lambda context: {})
    assert str(info.value) == (
        f"{cls.__name__} with shared_prior=True cannot take a reward prior: "
        "both set the heads' prior mean (use shared_prior=False)"
    )


def test_a_prior_returning_no_mapping_is_refused_with_its_type() -> None:
    policy = LinearThompson(key_buckets=0, seed=0)
    policy.set_prior(lambda context: [0.5, 0.5])  # type: ignore[arg-type, return-value]
    with pytest.raises(ConfigError) as info:
        policy.select(ctx((0.0,)))
    assert str(info.value) == (
        "LinearThompson prior must return a mapping of candidate names to predicted "
        "rewards, got list"
    )


@pytest.mark.parametrize("bad", [1.5, -0.25, math.nan, True, "0.5"])
def test_a_prior_value_outside_the_unit_interval_is_refused_with_the_candidate(
    bad: Any,
) -> None:
    policy = LinUCB(key_buckets=0)
    policy.set_prior(lambda context: {"a": 0.5, "b": bad})
    with pytest.raises(ConfigError) as info:
        policy.predict(ctx((0.0,)))
    assert str(info.value) == (
        f"LinUCB prior: the predicted reward of 'b' must be a number in [0, 1], got {bad!r}"
    )


def test_routing_without_the_prior_learned_against_is_refused_with_the_whole_message() -> None:
    policy = LinearThompson(key_buckets=0, seed=0)
    policy.set_prior(lambda context: {"a": 0.5, "b": 0.5})
    policy.update(policy.select(ctx((1.0,))), 1.0)
    policy.set_prior(None)
    with pytest.raises(ConfigError) as info:
        policy.select(ctx((1.0,)))
    assert str(info.value) == (
        "LinearThompson learned against a reward prior: set it again with set_prior() "
        "before routing (a prior is not saved with the state)"
    )


@pytest.mark.parametrize("bad", [1.5, -0.1])
def test_change_keep_is_checked_by_name(bad: float) -> None:
    with pytest.raises(ConfigError) as info:
        LinUCB(change_keep=bad)
    assert str(info.value) == f"LinUCB change_keep must be a finite number in [0, 1], got {bad!r}"
    for edge in (0.0, 1.0):
        assert LinUCB(change_keep=edge).change_keep == edge


@pytest.mark.parametrize("flag", ["change_shift", "shared_prior"])
@pytest.mark.parametrize("cls", [LinUCB, LinearThompson])
def test_the_flags_must_be_bools_by_name(cls: type[LinUCB | LinearThompson], flag: str) -> None:
    bad: dict[str, Any] = {flag: 1}
    with pytest.raises(TypeError) as info:
        cls(**bad)
    assert str(info.value) == f"{cls.__name__} {flag} must be a bool, got 1"


def test_the_unit_test_parameters_are_the_documented_ones() -> None:
    # LinUCB's conformance checks run at its default exploration; Thompson's draw wider
    # than its default (the checks' rewards are 0 or 1).
    assert LinUCB._unit_test_params() == {"exploration": LinUCB().exploration}
    assert LinearThompson._unit_test_params() == {"exploration": 0.25}


# ================================================================ the prior's boundaries
@pytest.mark.parametrize("cls", [LinUCB, LinearThompson])
def test_a_prior_may_predict_exactly_zero_and_one(cls: type[LinUCB | LinearThompson]) -> None:
    policy = cls(key_buckets=0, exploration=0.01, seed=0)
    policy.set_prior(lambda context: {"a": 0.0, "b": 1.0})
    means = {n: m for n, (m, _) in policy.predict(ctx((0.5,))).items()}
    assert means == {"a": 0.0, "b": 1.0}
    assert policy.select(ctx((0.5,))).candidate.name == "b"


# ================================================================ warm start with a prior
def test_a_warm_start_sums_the_features_of_covered_rewards_apart() -> None:
    # The prior covers 'a' on the query "in" only: a warm reward it covers adds x to
    # prior_s and x (r - p) to b; one it does not, x to s and x r to b.
    policy = LinUCB(key_buckets=0, regularization=1.0)
    policy.set_prior(lambda context: {"a": 0.4} if context.query == "in" else {})
    first = policy.select(ctx((3.0,), A, query="in"))
    policy.update(first, 0.9)  # online, against the prior: prior_s already holds x0
    x0, x_in, x_out = np.array([1.0, 3.0]), np.array([1.0, 1.0]), np.array([1.0, 2.0])
    contexts = [ctx((1.0,), query="in"), ctx((2.0,), query="out")]
    rewards = np.array([[0.7, 0.2], [0.1, 0.6]])
    policy.warm_start(contexts, rewards, ["a", "b"], weight=0.5)
    np.testing.assert_allclose(row(policy, "prior_s", "a"), x0 + 0.5 * x_in)
    np.testing.assert_allclose(row(policy, "s", "a"), 0.5 * x_out)
    np.testing.assert_allclose(
        row(policy, "b", "a"),
        (0.9 - 0.4) * x0 + 0.5 * ((0.7 - 0.4) * x_in + 0.1 * x_out),
    )
    np.testing.assert_allclose(row(policy, "prior_s", "b"), 0.0)
    np.testing.assert_allclose(row(policy, "s", "b"), 0.5 * (x_in + x_out))
    assert state(policy)["prior_used"] is True


def test_a_warm_start_against_the_prior_marks_the_prior_used() -> None:
    policy = LinUCB(key_buckets=0)
    policy.set_prior(lambda context: {"a": 0.3})
    policy.warm_start([ctx((1.0,))], np.array([[0.5, 0.5]]), ["a", "b"])
    assert state(policy)["prior_used"] is True
    policy.set_prior(None)
    with pytest.raises(ConfigError, match="learned against a reward prior"):
        policy.select(ctx((1.0,)))
    # A prior that covers none of the warm rewards leaves the heads centred only.
    uncovered = LinUCB(key_buckets=0)
    uncovered.set_prior(lambda context: {})
    uncovered.warm_start([ctx((1.0,))], np.array([[0.5, 0.5]]), ["a", "b"])
    assert state(uncovered)["prior_used"] is False
    uncovered.set_prior(None)
    assert uncovered.select(ctx((1.0,))).candidate.name in ("a", "b")


def test_a_warm_start_refuses_a_missing_reward_like_a_nan() -> None:
    policy = LinUCB(key_buckets=0)
    rewards = np.array([[0.5, None]], dtype=object)
    with pytest.raises(ConfigError) as info:
        policy.warm_start([ctx((1.0,))], rewards, ["a", "b"])
    assert str(info.value) == "rewards must be finite numbers in [0, 1]"


def test_a_warm_start_gives_each_model_its_share_of_the_shared_head() -> None:
    policy = LinUCB(key_buckets=0, shared_prior=True)
    contexts = [ctx((0.5,)), ctx((2.0,))]  # a is the cheaper (relative price 0), b 1
    rewards = np.array([[0.2, 0.8], [0.4, 1.0]])
    for _ in range(2):  # twice: the shares accumulate
        policy.warm_start(contexts, rewards, ["a", "b"], weight=0.5)
    x = np.array([[1.0, 0.5], [1.0, 2.0]])
    share = {
        m: 2 * 0.5 * np.append(x.sum(axis=0), 2 * price) for m, price in (("a", 0.0), ("b", 1.0))
    }
    for m, expected in share.items():
        np.testing.assert_allclose(row(policy, "shared_s_model", m), expected)
    np.testing.assert_allclose(state(policy)["shared_s"], share["a"] + share["b"])


# ================================================================ members and kind
class Planner(LinearPolicy):
    """A linear policy whose choice is a two-model cascade, the dearer model first."""

    name = "test_mut_linear_prior_planner"

    def _choose(self, mean: np.ndarray, width: np.ndarray, context: Context) -> Choice:
        return Choice(1, 0.5, [0.1, 0.2], members=(1, 0), kind="cascade")


def test_a_linear_policy_passes_the_plan_of_its_choice_on() -> None:
    policy = Planner(exploration=0.3, key_buckets=0)
    decision = policy.select(ctx((2.0,)))
    assert decision.candidate == B
    assert decision.probability == 0.5
    assert decision.plan == Plan(kind="cascade", members=(B, A))
    policy.update(decision, 1.0)  # learned at the decision's own features
    x = np.array([1.0, 2.0])
    np.testing.assert_allclose(row(policy, "A", "b"), np.eye(2) + np.outer(x, x))


# ================================================================ LinUCB's tie tolerance
def test_lin_ucb_picks_even_when_the_bounds_dwarf_the_tie_tolerance() -> None:
    # Bounds near 1e6: 1e-12 is below their rounding step, the tie is exact.
    policy = LinUCB(key_buckets=0, exploration=1e6)
    decision = policy.select(ctx((0.5,), B, A))
    assert decision.candidate.name == "a"  # the cheaper of two untried models


# ================================================================ fresh and hand-made states
def test_a_fresh_policy_saves_empty_heads_that_load_back_unchanged() -> None:
    policy = LinUCB(key_buckets=0, shared_prior=True)
    saved = policy.state_dict()
    st = saved["state"]
    assert st["dim"] == 0
    assert st["models"] == []
    for name in ("A", "A_inv", "b", "s", "prior_s", "n", "shared_A", "shared_A_inv"):
        assert st[name] == [], name
    assert st["shared_s_model"] == []
    again = LinUCB(key_buckets=0, shared_prior=True)
    again.load_state_dict(saved)
    assert again.state_dict() == saved


def test_models_saved_before_any_features_start_from_the_ridge_prior() -> None:
    # A state naming models whose heads have no dimension yet: the first context gives
    # each head A = reg I (so A^-1 = I / reg: the width) and nothing learned.
    reg = 4.0
    policy = LinUCB(key_buckets=0, regularization=reg)
    saved = policy.state_dict()
    st = saved["state"]
    st["models"] = ["a", "b"]
    for name in ("A", "A_inv", "b", "s", "prior_s", "shared_s_model"):
        st[name] = [[], []]
    for name in (
        "n",
        "page_hinkley",
        "run_sum",
        "run_n",
        "page_hinkley_up",
        "up_sum",
        "up_n",
        "residual_sum",
        "residual_n",
        "price",
    ):
        st[name] = [0.0, 0.0]
    policy.load_state_dict(saved)
    x = np.array([1.0, 0.5])
    predicted = policy.predict(ctx((0.5,)))
    width = 0.3 * math.sqrt(float(x @ x) / reg)
    assert [v for m in ("a", "b") for v in predicted[m]] == pytest.approx([0.5, width] * 2)
    for model in ("a", "b"):
        np.testing.assert_allclose(row(policy, "A", model), reg * np.eye(2))
        np.testing.assert_allclose(row(policy, "A_inv", model), np.eye(2) / reg)


# ================================================================ optional state fields
def learned(**kwargs: Any) -> dict[str, Any]:
    policy = LinUCB(key_buckets=0, **kwargs)
    policy.update(policy.select(ctx((0.5,))), 0.7)
    saved: dict[str, Any] = policy.state_dict()
    return saved


@pytest.mark.parametrize(
    ("field_name", "value", "message"),
    [
        ("up_n", [1.0], f"{P}: up_n must have shape (2,), got (1,)"),
        ("shared_s", [1.0], f"{P}: shared_s must have shape (3,), got (1,)"),
        ("run_n", [-1.0, 0.0], f"{P}: counts must be >= 0"),
        ("residual_sq", -1.0, f"{P}: counts must be >= 0"),
        ("prior_used", 1, f"{P}: prior_used must be a bool, got 1"),
    ],
)
def test_malformed_optional_fields_are_refused_with_the_whole_message(
    field_name: str, value: Any, message: str
) -> None:
    saved = learned()
    saved["state"][field_name] = value
    with pytest.raises(StateError) as info:
        LinUCB(key_buckets=0).load_state_dict(saved)
    assert str(info.value) == message


def test_a_state_without_the_shared_head_starts_it_at_the_ridge_prior() -> None:
    reg = 2.0
    policy = LinUCB(key_buckets=0, shared_prior=True, prior_mean=0.5, regularization=reg)
    pool = (A, B, Candidate(name="dear", input_price=3.0, output_price=3.0))
    rng = np.random.default_rng(0)
    for _ in range(10):
        d = policy.select(Context(features=(float(rng.random()),), candidates=pool[:2]))
        policy.update(d, float(rng.random()))
    saved = policy.state_dict()
    for name in ("shared_A", "shared_A_inv", "shared_b", "shared_s", "shared_s_model"):
        del saved["state"][name]
    fresh = LinUCB(key_buckets=0, shared_prior=True, prior_mean=0.5, regularization=reg)
    fresh.load_state_dict(saved)
    st = state(fresh)
    np.testing.assert_allclose(st["shared_A"], reg * np.eye(3))
    np.testing.assert_allclose(st["shared_A_inv"], np.eye(3) / reg)
    # What the shared head learns from then on is the ridge fit of the new rewards alone.
    zs, rs = [], []
    for _ in range(8):
        f = float(rng.random())
        d = fresh.select(Context(features=(f,), candidates=pool[:2]))
        r = float(rng.random())
        fresh.update(d, r)
        zs.append((1.0, f, 0.0 if d.candidate.name == "a" else 1.0))
        rs.append(r)
    z, r_arr = np.array(zs), np.array(rs)
    w = np.linalg.solve(reg * np.eye(3) + z.T @ z, z.T @ (r_arr - 0.5))
    x = np.array([1.0, 0.4])
    mean, _ = fresh.predict(Context(features=(0.4,), candidates=pool))["dear"]
    assert mean == pytest.approx(0.5 + x @ w[:2] + w[2] * 1.0, abs=1e-9)


# ================================================================ an unknown decision's model
def test_a_model_first_seen_in_a_reward_has_relative_price_zero() -> None:
    policy = LinUCB(key_buckets=0, shared_prior=True, prior_mean=0.5)
    policy.update(policy.select(ctx((1.0,), A)), 0.5)
    foreign = LinUCB(key_buckets=0).select(ctx((1.0,), B))  # b never offered here
    policy.update(foreign, 0.25)
    st = state(policy)
    assert dict(zip(st["models"], st["price"], strict=True)) == {"a": 0.0, "b": 0.0}
    x = np.array([1.0, 1.0])  # the mean of the features learned
    np.testing.assert_allclose(st["shared_s"], 2 * np.append(x, 0.0))
    np.testing.assert_allclose(row(policy, "shared_s_model", "b"), np.append(x, 0.0))


# ================================================================ the shared head's shares
def test_each_models_share_of_the_shared_head_is_discounted_and_kept_like_it() -> None:
    g, keep = 0.8, 0.5
    policy = LinUCB(
        key_buckets=0,
        shared_prior=True,
        prior_mean=0.5,
        discount=g,
        change_threshold=0.3,
        change_delta=0.0,
        change_keep=keep,
    )
    rng = np.random.default_rng(1)
    share = {"a": np.zeros(3), "b": np.zeros(3)}
    for _ in range(40):
        f = float(rng.random())
        d = policy.select(ctx((f,)))
        changes = policy.changes
        policy.update(d, float(rng.random() < 0.5))
        share = {m: g * v for m, v in share.items()}
        share[d.candidate.name] += np.array([1.0, f, 0.0 if d.candidate.name == "a" else 1.0])
        if policy.changes > changes:
            share = {m: keep * v for m, v in share.items()}
        for m, expected in share.items():
            np.testing.assert_allclose(row(policy, "shared_s_model", m), expected, atol=1e-12)
        np.testing.assert_allclose(state(policy)["shared_s"], share["a"] + share["b"], atol=1e-12)
    assert policy.changes >= 3


# ================================================================ change detection
@dataclass
class Reference:
    """One head at ``x = (1, 0)`` (prior_mean ``c``, change_shift, keep 1), by its definitions.

    The head's prediction is ``c + (b - c n) / (reg + n)`` (``b`` its first coordinate,
    ``n`` its count); the Page-Hinkley statistics and their runs follow the module's
    documented recursion.
    """

    threshold: float
    delta: float
    two_sided: bool
    standardized: bool
    reg: float = 1.0
    c: float = 0.5
    b: float = 0.0
    n: float = 0.0
    ph: float = 0.0
    run: list[float] = field(default_factory=list)
    up: float = 0.0
    up_run: list[float] = field(default_factory=list)
    res_sum: float = 0.0
    res_n: float = 0.0
    sq: float = 0.0
    sq_n: float = 0.0
    changes: int = 0

    def predicted(self) -> float:
        return self.c + (self.b - self.c * self.n) / (self.reg + self.n)

    def learn(self, residual: float, reward: float) -> None:
        self.b += reward
        self.n += 1.0
        if self.standardized:
            centred = residual - self.res_sum / (self.res_n + 10.0)
            z = centred / math.sqrt((self.sq + 10.0 / 12.0) / (self.sq_n + 10.0))
            self.res_sum += residual
            self.res_n += 1.0
            self.sq += centred * centred
            self.sq_n += 1.0
        else:
            centred = z = residual
        self.ph = max(0.0, self.ph + z - self.delta)
        self.run = [*self.run, centred] if self.ph > 0.0 else []
        if self.two_sided:
            self.up = max(0.0, self.up - z - self.delta)
            self.up_run = [*self.up_run, centred] if self.up > 0.0 else []
        if self.ph > self.threshold:
            shift = sum(self.run) / len(self.run)
        elif self.up > self.threshold:
            shift = sum(self.up_run) / len(self.up_run)
        else:
            return
        self.changes += 1
        self.b -= shift * self.n
        self.ph = self.up = 0.0
        self.run, self.up_run = [], []
        self.res_sum = self.res_n = 0.0


CHANGE_CASES = {
    # A drop from the first reward on: the run starts with the head.
    "drop": ([0.0] * 6, 0.6, 0.0, False, False),
    # A rise from the first reward on (two-sided).
    "rise": ([1.0] * 6, 0.6, 0.0, True, False),
    # A reward exactly as predicted (both statistics at 0), then a rise over three calls.
    "rise_after_zero": ([0.5] + [1.0] * 8, 1.0, 0.0, True, False),
    # Standardized and two-sided: a good model that fails, then recovers.
    "standardized": ([1.0] * 25 + [0.0] * 25 + [1.0] * 25, 2.5, 0.25, True, True),
}


@pytest.mark.parametrize("case", list(CHANGE_CASES))
def test_the_change_tests_follow_their_recursion_and_shift_by_the_runs_mean(case: str) -> None:
    rewards, threshold, delta, two_sided, standardized = CHANGE_CASES[case]
    policy = LinUCB(
        key_buckets=0,
        prior_mean=0.5,
        change_threshold=threshold,
        change_delta=delta,
        change_keep=1.0,
        change_shift=True,
        change_two_sided=two_sided,
        change_standardized=standardized,
    )
    ref = Reference(threshold, delta, two_sided, standardized)
    one = ctx((0.0,), A)
    for reward in rewards:
        predicted = policy.predict(one)["a"][0]
        assert predicted == pytest.approx(ref.predicted(), abs=1e-9)
        policy.update(policy.select(one), reward)
        ref.learn(predicted - reward, reward)
        st = state(policy)
        assert policy.changes == st["changes"] == ref.changes
        got = {
            "b": st["b"][0][0],
            "page_hinkley": st["page_hinkley"][0],
            "run_sum": st["run_sum"][0],
            "run_n": st["run_n"][0],
            "page_hinkley_up": st["page_hinkley_up"][0],
            "up_sum": st["up_sum"][0],
            "up_n": st["up_n"][0],
            "residual_sum": st["residual_sum"][0],
            "residual_n": st["residual_n"][0],
        }
        expected = {
            "b": ref.b,
            "page_hinkley": ref.ph,
            "run_sum": sum(ref.run),
            "run_n": len(ref.run),
            "page_hinkley_up": ref.up,
            "up_sum": sum(ref.up_run),
            "up_n": len(ref.up_run),
            "residual_sum": ref.res_sum,
            "residual_n": ref.res_n,
        }
        assert got == pytest.approx(expected, abs=1e-9)
    assert ref.changes >= 1


def test_a_rise_that_reaches_the_threshold_exactly_is_no_change() -> None:
    policy = LinUCB(
        key_buckets=0,
        prior_mean=0.5,
        change_threshold=0.5,
        change_delta=0.0,
        change_two_sided=True,
    )
    policy.update(policy.select(ctx((0.0,), A)), 1.0)  # predicted 0.5: a rise of 0.5
    assert state(policy)["page_hinkley_up"] == [0.5]
    assert policy.changes == 0


def test_a_restarting_change_clears_the_prior_sums_and_shrinks_the_others() -> None:
    # 'b' earns exactly its prior twice (no residual); 'a' then earns 0 against its
    # prior 0.5: a drop of 0.5 > 0.3. 'a' starts again, 'b' keeps half of its evidence.
    policy = LinUCB(
        key_buckets=0,
        regularization=2.0,
        change_threshold=0.3,
        change_delta=0.0,
        change_keep=0.5,
    )
    policy.set_prior(lambda context: {"a": 0.5, "b": 0.5})
    for _ in range(2):
        policy.update(policy.select(ctx((2.0,), B)), 0.5)
    policy.update(policy.select(ctx((1.0,), A)), 0.0)
    assert policy.changes == 1
    xb = np.array([1.0, 2.0])
    np.testing.assert_allclose(row(policy, "prior_s", "a"), 0.0)
    np.testing.assert_allclose(row(policy, "A", "a"), 2.0 * np.eye(2))
    np.testing.assert_allclose(row(policy, "prior_s", "b"), 0.5 * 2 * xb)
    np.testing.assert_allclose(row(policy, "A", "b"), 2.0 * np.eye(2) + np.outer(xb, xb))
    st = state(policy)
    assert st["page_hinkley_up"] == st["up_sum"] == st["up_n"] == [0.0, 0.0]
    assert st["residual_sum"] == st["residual_n"] == [0.0, 0.0]


def _names(seq: Sequence[Candidate]) -> list[str]:
    return [c.name for c in seq]


def test_the_prior_of_a_subset_of_the_heads_is_read_per_offered_candidate() -> None:
    # Offered in another order than the heads: each offered candidate gets its own value.
    policy = LinUCB(key_buckets=0)
    values: Mapping[str, float] = {"a": 0.2, "b": 0.9}
    policy.set_prior(lambda context: values)
    policy.predict(ctx((0.0,), A, B))  # heads a, b
    reordered = ctx((0.0,), B, A)
    means = {n: m for n, (m, _) in policy.predict(reordered).items()}
    assert means == values
    assert _names(policy.select(reordered).ranking) == ["b", "a"]
