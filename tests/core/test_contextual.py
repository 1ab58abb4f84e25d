"""The contextual linear policies, their features and the bench's whole-stream option."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pickllm import ConfigError
from pickllm.bench import run_bench
from pickllm.policies import LinearThompson, LinUCB, ThompsonSampling
from pickllm.policies.features import (
    FEATURE_NAMES,
    MAX_CHARS,
    structural_features,
    structural_values,
)
from pickllm.policies.linear import LinearPolicy
from pickllm.policies.linear_thompson import probability_highest
from pickllm.types import Candidate, Context

from .test_bench import synthetic

POOL = (Candidate(name="coder"), Candidate(name="writer"), Candidate(name="generalist"))
QUERIES = {
    "coder": ("def f(x):\n    return x + 1;", "import os\nprint(os.listdir())"),
    "writer": ("Write a poem about the sea", "Tell me a story about a cat"),
}


def _feature(query: str, name: str) -> float:
    return float(structural_features(query)[FEATURE_NAMES.index(name)])


# ---------------------------------------------------------------- features
def test_structural_features_see_options_code_digits_and_questions() -> None:
    assert _feature("Which? A) 1 B) 2 C) 3 D) 4", "options") == 1.0
    assert _feature("Tell me about Paris", "options") == 0.0
    assert _feature("def f():\n    return 1", "code") == 1.0
    assert _feature("Tell me about Paris", "code") == 0.0
    assert _feature("1234", "digit_share") == 1.0
    assert _feature("why? how? what?", "questions") == 1.0
    assert _feature("a\nb\nc", "lines") > _feature("a b c", "lines")
    x = structural_features("x" * 100)
    assert x.shape == (len(FEATURE_NAMES),)
    assert x[0] == 1.0
    assert (x >= 0).all()


def test_long_queries_are_scanned_only_up_to_the_cap_but_their_length_counts() -> None:
    short = structural_features("7" * MAX_CHARS)
    long = structural_features("7" * MAX_CHARS + "a" * 50_000)
    assert long[FEATURE_NAMES.index("digit_share")] == 1.0  # only the first MAX_CHARS
    assert long[FEATURE_NAMES.index("log_length")] > short[FEATURE_NAMES.index("log_length")]
    assert (long <= 1.5).all()


@pytest.mark.parametrize(
    ("query", "markers"),
    [
        ("A) yes B) no", 2),  # at the start of the text
        ("Pick one:\n(A) red\n(B) blue\nc. green\nD: none", 4),
        ("The answer is e. Then a.", 1),  # "e." before a blank; "a." ends the text
        ("x(A) y", 0),  # glued to a word: not a marker
        ("Plan A) and B)", 1),  # "B)" ends the text: no blank after it
    ],
)
def test_option_markers_start_the_text_or_follow_a_blank(query: str, markers: int) -> None:
    assert _feature(query, "options") == min(markers / 4, 1.0)


def test_shares_count_ascii_characters_in_any_text() -> None:
    # Non-ASCII letters, emoji and a lone surrogate count in the length, never as digits,
    # capitals or math symbols.
    query = "É9€A+😀\ud800x"
    n = len(query)
    assert _feature(query, "digit_share") == pytest.approx(1 / n)
    assert _feature(query, "upper_share") == pytest.approx(1 / n)
    assert _feature(query, "math_share") == pytest.approx(min(10 / n, 1.0))
    assert structural_values(query) == tuple(structural_features(query).tolist())


# ---------------------------------------------------------------- learning
def _route_by_query(policy: LinearPolicy, steps: int) -> float:
    """Two kinds of query, each best served by its own model; share routed right at the end."""
    rng = np.random.default_rng(7)
    right = 0
    for t in range(steps):
        best = ("coder", "writer")[t % 2]
        query = QUERIES[best][int(rng.integers(2))]
        decision = policy.select(Context(query=query, candidates=POOL))
        name = decision.candidate.name
        mean = 0.9 if name == best else 0.6 if name == "generalist" else 0.2
        policy.update(decision, float(rng.random() < mean))
        if t >= steps - 200:
            right += name == best
    return right / 200


@pytest.mark.parametrize("cls", [LinearThompson, LinUCB])
def test_contextual_policies_route_each_kind_of_query_to_its_best_model(
    cls: type[LinearPolicy],
) -> None:
    assert _route_by_query(cls(exploration=0.3, seed=0), 800) >= 0.85


def test_a_context_free_policy_cannot_do_that() -> None:
    # The best single model earns 0.6; only routing by query earns 0.9.
    policy = ThompsonSampling(seed=0)
    rng = np.random.default_rng(7)
    right = 0
    for t in range(800):
        best = ("coder", "writer")[t % 2]
        decision = policy.select(Context(query=QUERIES[best][0], candidates=POOL))
        name = decision.candidate.name
        policy.update(decision, float(rng.random() < (0.9 if name == best else 0.6)))
        right += t >= 600 and name == best
    assert right / 200 < 0.7


def test_heads_are_the_ridge_regression_of_the_centred_rewards() -> None:
    policy = LinUCB(regularization=2.0, prior_mean=0.5, key_buckets=0, seed=0)
    rng = np.random.default_rng(1)
    xs, rs = [], []
    for _ in range(60):
        ctx = Context(features=tuple(rng.random(3).tolist()), candidates=POOL[:1])
        decision = policy.select(ctx)
        reward = float(rng.random())
        policy.update(decision, reward)
        xs.append((1.0, *ctx.features))  # type: ignore[misc]
        rs.append(reward)
    x, r = np.array(xs), np.array(rs)
    theta = np.linalg.solve(2.0 * np.eye(4) + x.T @ x, x.T @ (r - 0.5))
    probe = Context(features=(0.2, 0.4, 0.6), candidates=POOL[:1])
    mean, width = policy.predict(probe)["coder"]
    z = np.array([1.0, 0.2, 0.4, 0.6])
    assert mean == pytest.approx(0.5 + z @ theta, abs=1e-9)
    a_inv = np.linalg.inv(2.0 * np.eye(4) + x.T @ x)
    assert width == pytest.approx(0.3 * np.sqrt(z @ a_inv @ z), abs=1e-9)


def test_an_untried_model_is_predicted_at_the_running_mean_reward() -> None:
    policy = LinUCB(seed=0)
    ctx = Context(query="hello", candidates=POOL[:2])
    for _ in range(30):
        decision = policy.select(Context(query="hello", candidates=POOL[:1]))
        policy.update(decision, 0.8)
    mean, _ = policy.predict(ctx)["writer"]
    assert policy.centre == pytest.approx(0.8)
    assert mean == pytest.approx(0.8)


def test_uncentred_lock_in_does_not_happen() -> None:
    # The first model tried earns 0.5; the others 0.8. Centred heads find the better ones.
    policy = LinUCB(seed=0)
    chosen = []
    for _ in range(100):
        decision = policy.select(Context(query="q", candidates=POOL))
        chosen.append(decision.candidate.name)
        policy.update(decision, 0.5 if decision.candidate.name == "coder" else 0.8)
    assert chosen[0] == "coder"
    assert chosen[-50:].count("coder") <= 2


def test_lin_ucb_ties_go_to_the_cheaper_candidate() -> None:
    # Untried heads have equal bounds: the cheapest wins, wherever it stands in the pool.
    pool = tuple(
        Candidate(name=name, input_price=price, output_price=price)
        for name, price in (("dear", 3.0), ("cheap", 1.0), ("mid", 2.0))
    )
    decision = LinUCB(seed=0).select(Context(query="q", candidates=pool))
    assert decision.candidate.name == "cheap"
    assert decision.probability == 1.0
    assert decision.scores is not None
    assert len(set(decision.scores)) == 1  # the bounds tied


def test_linear_thompson_reports_the_chance_of_its_choice() -> None:
    policy = LinearThompson(exploration=0.3, seed=0)
    ctx = Context(query="What is 2 + 2?", candidates=POOL)
    rng = np.random.default_rng(0)
    for _ in range(40):
        decision = policy.select(ctx)
        policy.update(decision, float(rng.random() < 0.5))
    state = policy.state_dict()
    counts: dict[str, int] = {}
    reported: dict[str, float] = {}
    for s in range(2000):
        probe = policy.clone(seed=s)
        probe.load_state_dict({**state, "rng": None})
        decision = probe.select(ctx)
        counts[decision.candidate.name] = counts.get(decision.candidate.name, 0) + 1
        reported[decision.candidate.name] = decision.probability
    for name, count in counts.items():
        assert reported[name] == pytest.approx(count / 2000, abs=0.03)


def test_probability_highest_matches_monte_carlo() -> None:
    rng = np.random.default_rng(3)
    mean, sd = rng.random(6), 0.05 + 0.3 * rng.random(6)
    draws = mean + sd * rng.standard_normal((200_000, 6))
    wins = np.bincount(draws.argmax(axis=1), minlength=6) / 200_000
    for i in range(6):
        assert probability_highest(mean, sd, i) == pytest.approx(wins[i], abs=0.005)
    assert probability_highest(mean[:1], sd[:1], 0) == 1.0


def test_probability_highest_of_two_is_the_normal_cdf_of_their_gap() -> None:
    # P(X_0 > X_1) = Phi((m_0 - m_1) / sqrt(s_0^2 + s_1^2)) for independent normals. With
    # equal sds the 16-node quadrature is exact to 1e-7: what is left is the CDF's error.
    rng = np.random.default_rng(4)
    for _ in range(50):
        mean, sd = rng.random(2), np.full(2, 0.01 + 0.3 * rng.random())
        gap = (mean[0] - mean[1]) / math.hypot(sd[0], sd[1])
        exact = 0.5 * math.erfc(-gap / math.sqrt(2.0))
        assert probability_highest(mean, sd, 0) == pytest.approx(max(exact, 1e-9), abs=1e-6)


def test_a_candidate_far_below_the_others_never_counts() -> None:
    mean, sd = np.array([0.5, 0.5, -100.0]), np.array([0.1, 0.1, 0.1])
    assert probability_highest(mean, sd, 0) == pytest.approx(0.5, abs=1e-6)
    assert probability_highest(mean, sd, 2) == 1e-9  # the floor of a reported chance


@pytest.mark.parametrize("discount", [1.0, 0.9])
def test_every_head_keeps_its_inverse_and_sums_exact(discount: float) -> None:
    # A (and its inverse, maintained by Sherman-Morrison or recomputed when discounting),
    # b, s and n follow their definitions for every head after many updates.
    policy = LinUCB(regularization=0.5, discount=discount, seed=0)
    rng = np.random.default_rng(2)
    d = len(FEATURE_NAMES) + policy.key_buckets
    expect: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, float]] = {
        c.name: (0.5 * np.eye(d), np.zeros(d), np.zeros(d), 0.0) for c in POOL
    }
    for t in range(300):
        ctx = Context(query=f"q{t} " * int(rng.integers(1, 9)), key=f"k{t % 5}", candidates=POOL)
        decision = policy.select(ctx)
        reward = float(rng.random())
        policy.update(decision, reward)
        x = policy._features(ctx)
        a, b, s, n = expect[decision.candidate.name]
        prior = (1.0 - discount) * 0.5 * np.eye(d)
        expect[decision.candidate.name] = (
            discount * a + prior + np.outer(x, x),
            discount * b + reward * x,
            discount * s + x,
            discount * n + 1.0,
        )
    state = policy.state_dict()["state"]
    for i, name in enumerate(state["models"]):
        a, b, s, n = expect[name]
        np.testing.assert_allclose(state["A"][i], a, atol=1e-9)
        np.testing.assert_allclose(state["A_inv"][i], np.linalg.inv(a), atol=1e-9)
        np.testing.assert_allclose(state["b"][i], b, atol=1e-9)
        np.testing.assert_allclose(state["s"][i], s, atol=1e-9)
        assert state["n"][i] == pytest.approx(n)


# ---------------------------------------------------------------- drift
def _drift(policy: LinearPolicy) -> list[str]:
    """'coder' is best (0.9 vs 0.6) for 400 calls, then falls to 0.2; picks after the drop."""
    rng = np.random.default_rng(5)
    chosen = []
    for t in range(700):
        decision = policy.select(Context(query="q", candidates=POOL[::2]))
        name = decision.candidate.name
        mean = (0.9 if t < 400 else 0.2) if name == "coder" else 0.6
        policy.update(decision, float(rng.random() < mean))
        if t >= 400:
            chosen.append(name)
    return chosen


def test_discount_and_change_detection_recover_from_a_drop() -> None:
    plain = _drift(LinUCB(seed=0))
    aware = LinUCB(discount=0.98, change_threshold=2.0, seed=0)
    adapted = _drift(aware)
    assert aware.changes >= 1
    assert adapted[:150].count("generalist") > plain[:150].count("generalist") + 30
    assert adapted[-100:].count("generalist") >= 90


# ---------------------------------------------------------------- bookkeeping
def test_feature_size_changes_are_refused() -> None:
    policy = LinUCB(seed=0)
    policy.select(Context(features=(0.1, 0.2), candidates=POOL))
    with pytest.raises(ConfigError, match="features"):
        policy.select(Context(features=(0.1, 0.2, 0.3), candidates=POOL))


def test_a_reward_for_an_unknown_decision_is_learned_at_the_mean_features() -> None:
    policy = LinUCB(seed=0)
    other = policy.clone()
    decision = other.select(Context(query="q", candidates=POOL))
    policy.update(decision, 1.0)
    assert policy.counts[decision.candidate.name] == 1.0


def test_pending_features_are_bounded() -> None:
    policy = LinearThompson(max_pending=3, seed=0)
    decisions = [policy.select(Context(query="q", candidates=POOL)) for _ in range(5)]
    assert len(policy._pending) == 3
    assert decisions[0].decision_id not in policy._pending


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"exploration": 0}, ConfigError),
        ({"discount": 0}, ConfigError),
        ({"discount": 1.5}, ConfigError),
        ({"change_threshold": -1}, ConfigError),
        ({"key_buckets": -1}, ConfigError),
        ({"key_buckets": 2.0}, TypeError),
        ({"max_pending": 0}, ConfigError),
        ({"prior_mean": 2}, ConfigError),
        ({"price_prior": -0.1}, ConfigError),
    ],
)
def test_hyperparameters_are_validated(kwargs: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error, match=next(iter(kwargs))):
        LinUCB(**kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------- bench
def test_bench_can_stream_the_whole_data_set_or_the_train_rows() -> None:
    table = synthetic(n=40)
    whole = run_bench(table, policies=["lin_ucb"], seeds=1, stream="all")
    assert whole.n_test == 40
    assert "whole data set" in whole.split
    assert whole.results["lin_ucb"].online is not None
    assert whole.results["lin_ucb"].online.steps == 40
    train = run_bench(table, policies=[], seeds=1, stream="train")
    assert train.n_test == 20
    assert "train rows" in train.split
    with pytest.raises(ConfigError, match="stream"):
        run_bench(table, policies=[], stream="everything")  # type: ignore[arg-type]


def test_the_drift_scenario_degrades_the_best_model_and_scores_the_window_after() -> None:
    from pickllm.bench.drift import render_drift, run_drift
    from pickllm.policies import Fixed

    table = synthetic(n=80)
    degraded, results = run_drift(
        table,
        {
            "mid": lambda seed: Fixed(model="mid", seed=seed),
            "aware": lambda seed: LinUCB(discount=0.9, change_threshold=1.0, seed=seed),
        },
        stream="all",
        drop=1.0,
        window=30,
        seeds=2,
    )
    assert degraded == "mid"  # the best by reward (dear costs too much)
    fixed, aware = results
    assert fixed.old_best == pytest.approx(fixed.after)  # it keeps the degraded model
    assert fixed.recovery is None
    assert aware.after > fixed.after
    assert "recovery" in render_drift("synthetic", degraded, results, drop=1.0, window=30)
    with pytest.raises(ConfigError, match="drop"):
        run_drift(table, {}, drop=0.0)


def test_a_warm_start_from_predicted_rewards_routes_well_from_the_first_call() -> None:
    queries = [q for qs in QUERIES.values() for q in qs]
    contexts = [Context(query=q, candidates=POOL) for q in queries]
    predicted = np.array([[0.9, 0.2, 0.6]] * 2 + [[0.2, 0.9, 0.6]] * 2)
    warm = LinUCB(seed=0)
    warm.warm_start(contexts, predicted, [c.name for c in POOL], weight=5.0)
    picks = [warm.select(c).candidate.name for c in contexts]
    assert picks == ["coder", "coder", "writer", "writer"]
    cold = LinUCB(seed=0)
    assert _route_by_query(warm, 400) >= _route_by_query(cold, 400)
    with pytest.raises(ConfigError, match="shape"):
        warm.warm_start(contexts, predicted[:, :2], [c.name for c in POOL])
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        warm.warm_start(contexts, predicted + 1.0, [c.name for c in POOL])


def test_a_warm_start_from_a_trained_query_scorer() -> None:
    from pickllm.learn import SelectLLM

    texts = [q for qs in QUERIES.values() for q in qs] * 10
    quality = np.array([[1, 0, 0.5], [1, 0, 0.5], [0, 1, 0.5], [0, 1, 0.5]] * 10, dtype=float)
    scorer = SelectLLM(learner="logistic", learning_rate=0.1, seed=0)
    scorer.fit(texts, quality, [c.name for c in POOL])
    policy = LinearThompson(seed=0)
    contexts = [Context(query=q, candidates=POOL) for q in texts[:4]]
    policy.warm_start(contexts, scorer.predict_quality(texts[:4]), scorer.models, weight=10.0)
    assert [policy.select(c).candidate.name for c in contexts] == [
        "coder",
        "coder",
        "writer",
        "writer",
    ]


@pytest.mark.parametrize("cls", [LinUCB, LinearThompson])
def test_the_shared_head_learns_each_reward_at_the_price_of_its_own_offer(
    cls: type[LinUCB | LinearThompson],
) -> None:
    # The same model is the cheapest of one offer and the dearest of another; offers
    # repeat (the cache) and come between a choice and its reward.
    a = Candidate(name="a", input_price=1.0, output_price=1.0)
    b = Candidate(name="b", input_price=2.0, output_price=2.0)
    z = Candidate(name="z", input_price=0.5, output_price=0.5)
    dearer_z = Candidate(name="z", input_price=5.0, output_price=5.0)  # z's price rose
    policy = cls(shared_prior=True, key_buckets=0, prior_mean=0.5, seed=0)
    offers = [(a, b), (z, a), (a, b), (z, a), (dearer_z, a), (z, a, b)]
    rng = np.random.default_rng(3)
    expected = 0.0
    waiting = []
    for step in range(60):
        pool = offers[step % len(offers)]
        decision = policy.select(Context(features=(float(step % 3),), candidates=pool))
        totals = [c.input_price + c.output_price for c in pool]
        mine = decision.candidate.input_price + decision.candidate.output_price
        expected += (mine - min(totals)) / (max(totals) - min(totals))
        waiting.append(decision)
        if step % 2:  # rewards come late, in another order
            for d in reversed(waiting):
                policy.update(d, float(rng.random()))
            waiting.clear()
    shared_s = policy.state_dict()["state"]["shared_s"]
    assert shared_s[-1] == pytest.approx(expected)
