"""Linear contextual policies pinned down for mutation testing (see [tool.mutmut]).

Every expected number is recomputed here from the formulas of ``pickllm.policies.linear``
(ridge heads ``A = reg * I + sum w x x^T``, ``b = sum w x r``, ``s = sum w x``, prediction
``c + x^T A^-1 (b - c s)``, width ``exploration * sqrt(x^T A^-1 x)``), with numpy's
``inv`` rather than the policies' rank-one updates. Contexts carry explicit features, so
``x = (1, *features)`` (``key_buckets=0``: no key part).
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np
import pytest

from pickllm import Candidate, ConfigError, Context, StateError
from pickllm.policies.base import Choice
from pickllm.policies.features import FEATURE_NAMES, MAX_CHARS, N_STRUCTURAL, structural_values
from pickllm.policies.lin_ucb import LinUCB
from pickllm.policies.linear import LinearPolicy
from pickllm.policies.linear_thompson import LinearThompson

A = Candidate(name="a", input_price=1.0, output_price=1.0)
B = Candidate(name="b", input_price=2.0, output_price=2.0)


def ctx(features: tuple[float, ...], *pool: Candidate) -> Context:
    return Context(candidates=pool or (A, B), features=features)


def state(policy: LinearPolicy) -> dict[str, Any]:
    inner: dict[str, Any] = policy.state_dict()["state"]
    return inner


def head(policy: LinearPolicy, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """``(A, b, s, n)`` of ``name``'s head, from the policy's saved state."""
    st = state(policy)
    i = st["models"].index(name)
    return np.array(st["A"][i]), np.array(st["b"][i]), np.array(st["s"][i]), st["n"][i]


# ================================================================ defaults
@pytest.mark.parametrize("cls", [LinUCB, LinearThompson])
def test_subclasses_keep_the_base_defaults(cls: type[LinUCB | LinearThompson]) -> None:
    base = inspect.signature(LinearPolicy.__init__).parameters
    params = cls().get_params()
    # LinearThompson's own prior strength was chosen on the train rows (its docstring).
    own = {"exploration"} | ({"regularization"} if cls is LinearThompson else set())
    for name, value in params.items():
        if name not in own:
            assert value == base[name].default, name
    if cls is LinearThompson:
        assert params["regularization"] == 10.0


@pytest.mark.parametrize("cls", [LinUCB, LinearThompson])
def test_subclasses_pass_every_argument_on(cls: type[LinUCB | LinearThompson]) -> None:
    given: dict[str, Any] = {
        "exploration": 0.7,
        "regularization": 2.5,
        "prior_mean": 0.25,
        "discount": 0.9,
        "change_threshold": 3.0,
        "change_delta": 0.2,
        "change_keep": 0.25,
        "change_shift": True,
        "change_standardized": True,
        "change_two_sided": True,
        "price_prior": 0.5,
        "key_buckets": 3,
        "shared_prior": True,
        "max_pending": 7,
        "seed": 11,
    }
    assert cls(**given).get_params() == given


# ================================================================ warm start
def test_warm_start_adds_weighted_pseudo_observations() -> None:
    policy = LinUCB(key_buckets=0, regularization=2.0)
    contexts = [ctx((0.5,)), ctx((2.0,))]
    rewards = np.array([[0.2, 0.8], [0.4, 1.0]])
    x = np.array([[1.0, 0.5], [1.0, 2.0]])
    for _ in range(2):  # twice: the pseudo-observations accumulate
        policy.warm_start(contexts, rewards, ["a", "b"], weight=0.5)
    for col, name in enumerate(("a", "b")):
        a, b, s, n = head(policy, name)
        np.testing.assert_allclose(a, 2.0 * np.eye(2) + 2 * 0.5 * x.T @ x)
        np.testing.assert_allclose(b, 2 * 0.5 * x.T @ rewards[:, col])
        np.testing.assert_allclose(s, 2 * 0.5 * x.sum(axis=0))
        assert n == pytest.approx(2 * 0.5 * 2)
    st = state(policy)
    assert st["reward_sum"] == pytest.approx(2 * 0.5 * rewards.sum())
    assert st["reward_n"] == pytest.approx(2 * 0.5 * 4)
    np.testing.assert_allclose(st["x_sum"], 2 * x.sum(axis=0))
    assert st["x_n"] == 4
    assert policy.centre == pytest.approx(rewards.mean())
    assert policy.counts == {"a": pytest.approx(2.0), "b": pytest.approx(2.0)}
    # The prediction from the warm heads, recomputed from the formula.
    probe = np.array([1.0, 1.0])
    c = rewards.mean()
    for name in ("a", "b"):
        a, b, s, _ = head(policy, name)
        inv = np.linalg.inv(a)
        mean = c + probe @ inv @ (b - c * s)
        width = 0.3 * math.sqrt(probe @ inv @ probe)
        got = policy.predict(ctx((1.0,)))[name]
        assert got == pytest.approx((mean, width), rel=1e-9)


def test_warm_start_weight_defaults_to_one_and_must_be_positive() -> None:
    policy = LinUCB(key_buckets=0)
    policy.warm_start([ctx((0.5,))], np.array([[0.0, 1.0]]), ["a", "b"])
    assert policy.counts == {"a": 1.0, "b": 1.0}
    for bad in (0.0, -1.0):
        with pytest.raises(ConfigError) as info:
            policy.warm_start([ctx((0.5,))], np.array([[0.5, 0.5]]), ["a", "b"], weight=bad)
        assert str(info.value) == f"LinUCB weight must be a finite number in (0, inf), got {bad!r}"


@pytest.mark.parametrize("bad", [-0.1, 1.1, math.nan, math.inf])
def test_warm_start_refuses_rewards_outside_the_unit_interval(bad: float) -> None:
    policy = LinUCB(key_buckets=0)
    with pytest.raises(ConfigError) as info:
        policy.warm_start([ctx((0.5,))], np.array([[0.5, bad]]), ["a", "b"])
    assert str(info.value) == "rewards must be finite numbers in [0, 1]"
    assert policy.counts == {}


# ================================================================ ties
def test_lin_ucb_breaks_an_exact_tie_to_the_cheaper_candidate() -> None:
    policy = LinUCB(key_buckets=0)
    # Both untried: equal bounds. The dearer one is offered first.
    decision = policy.select(ctx((0.5,), B, A))
    assert decision.candidate.name == "a"


# ================================================================ Thompson draws
def test_linear_thompson_draws_mean_plus_width_times_a_standard_normal() -> None:
    policy = LinearThompson(key_buckets=0, seed=5, exploration=0.4)
    policy.warm_start([ctx((0.5,)), ctx((2.0,))], np.array([[0.2, 0.9], [0.3, 0.8]]), ["a", "b"])
    probe = ctx((1.5,))
    predicted = policy.predict(probe)
    z = np.random.default_rng(5).standard_normal(2)
    expected = {n: m + w * z[j] for j, (n, (m, w)) in enumerate(predicted.items())}
    decision = policy.select(probe)
    assert decision.scores is not None
    drawn = {c.name: s for c, s in zip(decision.ranking, decision.scores, strict=True)}
    assert drawn == pytest.approx(expected, rel=1e-12)
    assert decision.candidate.name == max(expected, key=expected.__getitem__)


# ================================================================ change detection
def two_heads(threshold: float) -> LinUCB:
    """``b`` rewarded 1 twice at ``x = (1, 2)``, then ``a`` rewarded 0 once at ``(1, 1)``.

    With ``prior_mean=0.5`` an untried head predicts 0.5; ``b``'s residuals are negative
    (no drop), ``a``'s is 0.5, so ``a``'s Page-Hinkley statistic becomes 0.5 - delta = 0.45.
    """
    policy = LinUCB(
        key_buckets=0,
        prior_mean=0.5,
        regularization=2.0,
        change_threshold=threshold,
        change_delta=0.05,
    )
    for _ in range(2):
        d = policy.select(ctx((2.0,), B))
        policy.update(d, 1.0)
    d = policy.select(ctx((1.0,), A))
    policy.update(d, 0.0)
    return policy


def test_page_hinkley_accumulates_the_drop_minus_the_tolerance() -> None:
    policy = two_heads(threshold=0.5 - 0.05)  # reached, not exceeded: no change
    st = state(policy)
    ph = dict(zip(st["models"], st["page_hinkley"], strict=True))
    assert ph == {"b": 0.0, "a": pytest.approx(0.45)}
    assert policy.changes == 0
    a, _, _, n = head(policy, "a")
    np.testing.assert_allclose(a, 2.0 * np.eye(2) + np.ones((2, 2)))
    assert n == 1.0


def test_a_change_resets_the_model_and_halves_the_others() -> None:
    policy = two_heads(threshold=0.3)
    assert policy.changes == 1
    x = np.array([1.0, 2.0])
    st = state(policy)
    i, j = st["models"].index("a"), st["models"].index("b")
    np.testing.assert_allclose(st["A"][i], 2.0 * np.eye(2))
    np.testing.assert_allclose(st["A_inv"][i], np.eye(2) / 2.0)
    np.testing.assert_allclose(st["b"][i], 0.0)
    np.testing.assert_allclose(st["s"][i], 0.0)
    assert st["n"][i] == 0.0
    # b's evidence, two rewards of 1 at x, halved: A = 2I + (2 x x^T) / 2, b = s = x, n = 1.
    shrunk = 2.0 * np.eye(2) + np.outer(x, x)
    np.testing.assert_allclose(st["A"][j], shrunk)
    np.testing.assert_allclose(st["A_inv"][j], np.linalg.inv(shrunk))
    np.testing.assert_allclose(st["b"][j], x)
    np.testing.assert_allclose(st["s"][j], x)
    assert st["n"][j] == 1.0
    assert st["page_hinkley"] == [0.0, 0.0]
    # The reset head predicts the prior again: the same drop is a second change.
    d = policy.select(ctx((1.0,), A))
    policy.update(d, 0.0)
    assert policy.changes == 2


def test_a_malformed_linear_state_names_the_policy_and_the_field() -> None:
    policy = LinUCB(key_buckets=0)
    saved = policy.state_dict()
    saved["state"]["dim"] = -1
    with pytest.raises(StateError) as info:
        LinUCB(key_buckets=0).load_state_dict(saved)
    assert str(info.value) == "state of policy 'lin_ucb': dim must be an int >= 0, got -1"


# ================================================================ structural features
def by_name(query: str) -> dict[str, float]:
    return dict(zip(FEATURE_NAMES, structural_values(query), strict=True))


def test_structural_features_of_a_multiple_choice_question() -> None:
    q = "Which is prime? A) 4 B) 6 C) 7 D) 9\nx = 2^3 + 1?"
    n = len(q)
    digits = sum(ch.isdigit() for ch in q)  # 4, 6, 7, 9, 2, 3, 1
    upper = sum(ch.isupper() for ch in q)  # W, A, B, C, D
    maths = sum(ch in "=+*/^<>\\$%" for ch in q)  # =, ^, +
    words = q.count(" ") + q.count("\n") + 1
    assert (digits, upper, maths) == (7, 5, 3)
    assert by_name(q) == pytest.approx(
        {
            "bias": 1.0,
            "log_length": math.log1p(n) / 10.0,
            "digit_share": digits / n,
            "upper_share": upper / n,
            "math_share": maths * 10.0 / n,
            "code": 0.0,
            "options": 1.0,  # four markers: A) B) C) D)
            "questions": 2 / 3,
            "lines": math.log1p(1) / 5.0,
            "word_length": n / words / 10.0,
        },
        rel=1e-12,
    )


def test_structural_features_saturate_at_one() -> None:
    assert by_name("=" * 8)["math_share"] == 1.0
    assert by_name("????")["questions"] == 1.0
    assert by_name("a) b) c) d) e) f)")["options"] == 1.0
    assert by_name("a) x b) y")["options"] == 0.5  # a marker is followed by a blank
    assert by_name("x\n" * 200)["lines"] == 1.0
    assert by_name("a" * 200)["word_length"] == 1.0
    assert by_name("def f(x): return x")["code"] == 1.0


def test_only_the_first_characters_are_scanned_but_the_length_counts_in_full() -> None:
    q = "a" * MAX_CHARS + "1?" * 500
    f = by_name(q)
    assert (f["digit_share"], f["questions"]) == (0.0, 0.0)
    assert f["log_length"] == pytest.approx(math.log1p(len(q)) / 10.0, rel=1e-12)
    assert f["word_length"] == 1.0


def test_shares_are_per_character_for_non_ascii_text() -> None:
    f = by_name("ÉA1é")  # 4 characters (6 UTF-8 bytes): one ASCII capital, one digit
    assert (f["upper_share"], f["digit_share"]) == (0.25, 0.25)


def test_the_empty_query_is_the_bias_alone() -> None:
    assert structural_values("") == (1.0,) + (0.0,) * (N_STRUCTURAL - 1)
    assert N_STRUCTURAL == len(FEATURE_NAMES) == 10


def test_the_documented_default_explorations() -> None:
    # The class docstrings: LinUCB's default exploration is 0.3, LinearThompson's 0.1.
    assert LinUCB().exploration == 0.3
    assert LinearThompson().exploration == 0.1


def learned_state() -> dict[str, Any]:
    policy = LinUCB(key_buckets=0)
    policy.update(policy.select(ctx((0.5,))), 0.7)  # two heads "a", "b" over 2 features
    saved: dict[str, Any] = policy.state_dict()
    return saved


def set_field(field: str, value: Any) -> Any:
    def edit(inner: dict[str, Any]) -> None:
        inner[field] = value

    return edit


def drop_field(field: str) -> Any:
    def edit(inner: dict[str, Any]) -> None:
        del inner[field]

    return edit


P = "state of policy 'lin_ucb'"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (drop_field("dim"), f"{P} has no 'dim' (it has ["),
        (drop_field("models"), f"{P} has no 'models' (it has ["),
        (drop_field("changes"), f"{P} has no 'changes' (it has ["),
        (drop_field("A"), f"{P} has no 'A' (it has ["),
        (set_field("models", "ab"), f"{P}: models must be a list of names, got 'ab'"),
        (set_field("models", ["a", ""]), f"{P}: models must be a list of names, got ['a', '']"),
        (set_field("models", ["a", "a"]), f"{P}: models ['a', 'a'] repeat a name"),
        (set_field("A", [[1.0]]), f"{P}: A must have shape (2, 2, 2), got (1, 1)"),
        (set_field("A_inv", [[1.0]]), f"{P}: A_inv must have shape (2, 2, 2), got (1, 1)"),
        (set_field("b", [1.0]), f"{P}: b must have shape (2, 2), got (1,)"),
        (set_field("s", [1.0]), f"{P}: s must have shape (2, 2), got (1,)"),
        (set_field("n", [1.0]), f"{P}: n must have shape (2,), got (1,)"),
        (set_field("page_hinkley", [1.0]), f"{P}: page_hinkley must have shape (2,), got (1,)"),
        (set_field("x_sum", [1.0]), f"{P}: x_sum must have shape (2,), got (1,)"),
        (set_field("reward_sum", "x"), f"{P}: reward_sum must be numbers, got 'x'"),
        (set_field("changes", -1), f"{P}: changes must be an int >= 0, got -1"),
        (set_field("A", []), f"{P}: A must have shape (2, 2, 2), got (0,)"),
        (set_field("reward_sum", True), f"{P}: reward_sum must have shape (), got ()"),
        (set_field("reward_sum", math.nan), f"{P}: reward_sum must be finite numbers"),
        (set_field("n", [-1.0, 0.0]), f"{P}: counts must be >= 0"),
        (set_field("page_hinkley", [0.0, -1.0]), f"{P}: counts must be >= 0"),
        (set_field("reward_n", -1.0), f"{P}: counts must be >= 0"),
        (set_field("x_n", -1.0), f"{P}: counts must be >= 0"),
    ],
)
def test_malformed_linear_states_are_refused_with_the_field(edit: Any, message: str) -> None:
    saved = learned_state()
    edit(saved["state"])
    with pytest.raises(StateError) as info:
        LinUCB(key_buckets=0).load_state_dict(saved)
    assert str(info.value).startswith(message)
    if not message.endswith("["):
        assert str(info.value) == message


def test_a_learned_linear_state_loads_back() -> None:
    saved = learned_state()
    again = LinUCB(key_buckets=0)
    again.load_state_dict(saved)
    assert again.state_dict() == saved


# ================================================================ rewards of unknown decisions
def test_a_reward_for_an_unknown_decision_is_learned_at_the_mean_features() -> None:
    policy = LinUCB(key_buckets=0)
    policy.update(policy.select(ctx((3.0,), A)), 1.0)  # learned features: x = (1, 3)
    foreign = policy.clone().select(ctx((0.0,), B))  # a clone's decision: unknown here
    policy.update(foreign, 0.5)
    x = np.array([1.0, 3.0])
    a, b, s, n = head(policy, "b")
    np.testing.assert_allclose(a, np.eye(2) + np.outer(x, x))
    np.testing.assert_allclose(b, 0.5 * x)
    np.testing.assert_allclose(s, x)
    assert n == 1.0


def test_a_first_reward_for_an_unknown_decision_uses_the_empty_query() -> None:
    policy = LinUCB(key_buckets=0)
    foreign = LinUCB(key_buckets=0).select(Context(candidates=(A, B)))
    policy.update(foreign, 1.0)
    x = np.array(structural_values(""))  # the bias alone
    st = state(policy)
    assert st["dim"] == N_STRUCTURAL
    a, _, _, _ = head(policy, foreign.candidate.name)
    np.testing.assert_allclose(a, np.eye(N_STRUCTURAL) + np.outer(x, x))


def test_an_unknown_decision_feeds_change_detection_with_the_heads_prediction() -> None:
    policy = LinUCB(key_buckets=0, prior_mean=0.5, change_threshold=10.0, change_delta=0.05)
    policy.update(policy.select(ctx((1.0,), A)), 0.5)  # no drop
    foreign = policy.clone().select(ctx((1.0,), B))
    policy.update(foreign, 0.0)  # b untried: predicted 0.5, a drop of 0.5
    st = state(policy)
    ph = dict(zip(st["models"], st["page_hinkley"], strict=True))
    assert ph["b"] == pytest.approx(0.5 - 0.05)


# ================================================================ price prior and arguments
def test_the_price_prior_lowers_dearer_candidates_linearly_in_price() -> None:
    cheap = Candidate(name="cheap", input_price=0.1, output_price=0.3)  # 0.4 per 1M
    mid = Candidate(name="mid", input_price=0.2, output_price=0.4)  # 0.6
    dear = Candidate(name="dear", input_price=0.1, output_price=0.7)  # 0.8
    policy = LinUCB(key_buckets=0, prior_mean=0.5, price_prior=0.4)
    means = {n: m for n, (m, _) in policy.predict(ctx((1.0,), dear, cheap, mid)).items()}
    # Spread 0.4: the dearest is 0.4 lower than the cheapest, the middle one 0.2.
    assert means == pytest.approx({"cheap": 0.5, "mid": 0.3, "dear": 0.1}, rel=1e-9)


def test_the_price_prior_ignores_a_pool_of_equal_prices() -> None:
    policy = LinUCB(key_buckets=0, prior_mean=0.5, price_prior=0.4)
    twins = (Candidate(name="x", input_price=1.0), Candidate(name="y", input_price=1.0))
    means = {n: m for n, (m, _) in policy.predict(ctx((1.0,), *twins)).items()}
    assert means == {"x": 0.5, "y": 0.5}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"exploration": 0}, "LinUCB exploration must be a finite number in (0, inf), got 0"),
        (
            {"regularization": 0.0},
            "LinUCB regularization must be a finite number in (0, inf), got 0.0",
        ),
        ({"prior_mean": 1.5}, "LinUCB prior_mean must be a finite number in [0, 1], got 1.5"),
        ({"discount": 0.0}, "LinUCB discount must be a finite number in (0, 1], got 0.0"),
        (
            {"change_threshold": 0.0},
            "LinUCB change_threshold must be a finite number in (0, inf), got 0.0",
        ),
        (
            {"change_delta": -1.0},
            "LinUCB change_delta must be a finite number in [0, inf), got -1.0",
        ),
        ({"price_prior": 1.5}, "LinUCB price_prior must be a finite number in [0, 1], got 1.5"),
        ({"max_pending": 0}, "LinUCB max_pending must be >= 1, got 0"),
        ({"key_buckets": -1}, "LinUCB key_buckets must be >= 0, got -1"),
    ],
)
def test_linear_arguments_are_checked_by_name(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        LinUCB(**kwargs)
    assert str(info.value) == message


class Minimal(LinearPolicy):
    """A third-party linear policy that relies on the base class's defaults."""

    name = "test_minimal_linear"

    def _choose(self, mean: np.ndarray, width: np.ndarray, context: Context) -> Choice:
        return Choice(0, 1.0)


def test_the_base_class_defaults_are_its_documented_signature() -> None:
    base = inspect.signature(LinearPolicy.__init__).parameters
    params = Minimal(exploration=0.5).get_params()
    assert params["exploration"] == 0.5
    for name, value in params.items():
        if name != "exploration":
            assert value == base[name].default, name


@pytest.mark.parametrize("name", ["max_pending", "key_buckets"])
def test_linear_counts_must_be_ints(name: str) -> None:
    bad: dict[str, Any] = {name: "3"}
    with pytest.raises(TypeError) as info:
        LinUCB(**bad)
    assert str(info.value) == f"LinUCB {name} must be an int, got '3'"
    assert LinUCB(max_pending=1).max_pending == 1  # the smallest allowed


def test_unknown_decisions_learn_at_the_mean_of_all_learned_features() -> None:
    policy = LinUCB(key_buckets=0)
    for f in (1.0, 3.0):
        policy.update(policy.select(ctx((f,), A)), 1.0)
    policy.update(policy.clone().select(ctx((0.0,), B)), 0.5)  # unknown: x = (1, 2)
    x = np.array([1.0, 2.0])
    a, _, _, _ = head(policy, "b")
    np.testing.assert_allclose(a, np.eye(2) + np.outer(x, x))


def test_a_change_of_feature_size_is_refused_with_both_sizes() -> None:
    policy = LinUCB(key_buckets=0)
    policy.select(ctx((1.0,)))
    with pytest.raises(ConfigError) as info:
        policy.select(ctx((1.0, 2.0)))
    assert str(info.value) == (
        "LinUCB learned on 2 features, got a context with 3 (Context.features changed size)"
    )


def test_loading_a_state_of_another_size_forgets_the_pending_features() -> None:
    policy = LinUCB(key_buckets=0)
    decision = policy.select(ctx((1.0,)))  # pending at 2 features
    other = LinUCB(key_buckets=0)
    other.update(other.select(ctx((1.0, 2.0))), 1.0)  # 3 features
    policy.load_state_dict(other.state_dict())
    policy.update(decision, 0.5)  # learned at the mean of the loaded features
    assert state(policy)["dim"] == 3
