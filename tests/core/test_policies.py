"""Behaviour of each built-in policy: update rules, tie rules, changing pools, state checks."""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any

import numpy as np
import pytest

from pickllm import policies
from pickllm.errors import ConfigError, NoCandidateError, StateError
from pickllm.objective import Objective, PriceRange
from pickllm.policies import (
    UCB1,
    Cheapest,
    Choice,
    EpsilonGreedyQ,
    Fixed,
    LearningAutomaton,
    PerContext,
    Policy,
    Random,
    ThompsonSampling,
)
from pickllm.registry import available_policies, make_policy
from pickllm.types import Candidate, Context, Decision, Feedback

A = Candidate(name="a", input_price=1.0, output_price=2.0)
B = Candidate(name="b", input_price=0.5, output_price=1.0)
C = Candidate(name="c", input_price=3.0, output_price=6.0)
D = Candidate(name="d", input_price=0.5, output_price=1.0)
POOL = (A, B, C)


def ctx(*cands: Candidate, key: str | None = None, input_tokens: int | None = None) -> Context:
    return Context(candidates=cands or POOL, key=key, input_tokens=input_tokens)


def decision_for(
    policy: Policy, cand: Candidate, offered: tuple[Candidate, ...] = POOL
) -> Decision:
    """A decision for ``cand`` over ``offered``, as a router retargeting to it would pass."""
    others = tuple(c for c in offered if c != cand)
    return Decision(
        decision_id="test",
        candidate=cand,
        ranking=(cand, *others),
        probability=1.0,
        policy=policy.name,
    )


# ---------------------------------------------------------------------------- package
def test_package_exports_are_pinned() -> None:
    assert policies.__all__ == [
        "UCB1",
        "Cheapest",
        "Choice",
        "EpsilonGreedyQ",
        "Fixed",
        "LearningAutomaton",
        "LinUCB",
        "LinearThompson",
        "PerContext",
        "Policy",
        "Random",
        "ThompsonSampling",
    ]


@pytest.mark.parametrize(
    ("name", "cls", "params"),
    [
        ("learning_automaton", LearningAutomaton, {}),
        ("epsilon_greedy_q", EpsilonGreedyQ, {}),
        ("ucb1", UCB1, {}),
        ("thompson", ThompsonSampling, {}),
        ("fixed", Fixed, {"model": "a"}),
        ("random", Random, {}),
        ("cheapest", Cheapest, {}),
        ("per_context", PerContext, {"policy": UCB1()}),
    ],
)
def test_make_policy_builds_every_builtin(name: str, cls: type[Policy], params: Any) -> None:
    assert name in available_policies()
    policy = make_policy(name, seed=3, **params)
    assert type(policy) is cls
    assert policy.name == name
    assert policy.seed == 3
    assert make_policy(name.upper().replace("_", "-"), **params).name == name


@pytest.mark.parametrize(("name", "argument"), [("fixed", "'model'"), ("per_context", "'policy'")])
def test_a_policy_by_name_names_the_argument_it_needs(name: str, argument: str) -> None:
    with pytest.raises(ConfigError, match=f"policy {name!r} needs the argument {argument}"):
        make_policy(name, seed=0)


def test_an_unknown_policy_name_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown policy 'nope'; available: cheapest, "):
        make_policy("nope")


def test_the_registry_finds_named_subclasses_and_keeps_builtin_names() -> None:
    class Mine(UCB1):
        """A policy of the user's own.

        Args:
            seed: seed.

        Examples:
            >>> Mine().name
            'test_mine'
        """

        name = "test_mine"

    class Shadow(UCB1):
        """Claims a built-in name.

        Args:
            seed: seed.

        Examples:
            >>> Shadow().name
            'ucb1'
        """

        name = "ucb1"

    class Inherits(Mine):
        """Inherits its parent's name without claiming it.

        Args:
            seed: seed.

        Examples:
            >>> Inherits().name
            'test_mine'
        """

    assert type(make_policy("test_mine", seed=0)) is Mine
    assert type(make_policy("ucb1")) is UCB1
    assert Shadow.name == "ucb1"
    assert Inherits.name == "test_mine"
    # The list names the built-in policies only; yours are found by make_policy.
    assert "test_mine" not in available_policies()
    assert available_policies().count("ucb1") == 1


def test_only_baselines_are_not_learning() -> None:
    assert not Fixed.learning
    assert not Random.learning
    assert not Cheapest.learning
    assert LearningAutomaton.learning
    assert EpsilonGreedyQ.learning
    assert PerContext.contextual
    assert not UCB1.contextual


# ---------------------------------------------------------------------------- base
class _Scored(Policy):
    """Picks index 0 with given scores.

    Args:
        seed: seed.

    Examples:
        >>> _Scored().name
        ''
    """

    scores: tuple[float, ...] = ()

    def _select(self, context: Context) -> Choice:
        return Choice(0, 1.0, self.scores)

    def _update(self, decision: Decision, reward: float) -> None:
        pass


def test_ranking_sorts_by_score_then_price_then_offered_order() -> None:
    policy = _Scored()
    policy.scores = (0.1, 0.5, 0.5, 0.9, 0.5)
    e = Candidate(name="e", input_price=0.5, output_price=1.0)
    decision = policy.select(ctx(A, C, B, D, e))
    assert [c.name for c in decision.ranking] == ["a", "d", "b", "e", "c"]
    assert decision.scores == (0.1, 0.9, 0.5, 0.5, 0.5)
    # Each pool is priced as given: a cheaper "c" now wins its tie.
    cheap_c = Candidate(name="c", input_price=0.0, output_price=0.0)
    decision = policy.select(ctx(A, cheap_c, B, D, e))
    assert [c.name for c in decision.ranking] == ["a", "d", "c", "b", "e"]


def test_select_without_candidates_raises() -> None:
    with pytest.raises(NoCandidateError, match="at least one candidate"):
        UCB1().select(Context())


@pytest.mark.parametrize("reward", [-0.1, 1.5, math.nan, math.inf])
def test_update_rejects_rewards_outside_unit_interval(reward: float) -> None:
    policy = UCB1()
    with pytest.raises(ConfigError, match=r"reward must be a finite number in \[0, 1\], got"):
        policy.update(policy.select(ctx()), reward)
    assert policy.means == {}


def test_update_takes_a_reward_not_a_feedback() -> None:
    policy = UCB1()
    decision = decision_for(policy, A)
    feedback = Feedback(quality=0.25, latency_s=0.3, cost_usd=1e-6, input_tokens=10)
    with pytest.raises(TypeError, match="reward must be a number, got Feedback"):
        policy.update(decision, feedback)  # type: ignore[arg-type]
    # The caller owns the objective and converts explicitly.
    reward = Objective().reward(feedback, PriceRange.of(decision.ranking))
    policy.update(decision, reward)
    assert policy.means == {"a": pytest.approx(reward)}


def test_a_bad_rng_state_leaves_the_policy_untouched() -> None:
    policy = UCB1(seed=0)
    policy.update(decision_for(policy, A), 1.0)
    good = policy.state_dict()
    bad = {**good, "state": {"counts": {}, "means": {}, "total": 0}, "rng": {"nonsense": 1}}
    with pytest.raises(StateError, match="malformed"):
        policy.load_state_dict(bad)
    assert policy.state_dict() == good


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (
            lambda: LearningAutomaton(learning_rate=0.0),
            r"learning_rate must be .*\(0, 1\), got 0.0",
        ),
        (lambda: LearningAutomaton(learning_rate=1.0), r"learning_rate must be .* got 1.0"),
        (lambda: LearningAutomaton(lock_in=0.0), r"lock_in must be .*\(0, 1\], got 0.0"),
        (lambda: LearningAutomaton(lock_in=math.nan), r"lock_in .* got nan"),
        (lambda: EpsilonGreedyQ(alpha=0.0), r"alpha must be .*\(0, 1\], got 0.0"),
        (lambda: EpsilonGreedyQ(epsilon=1.5), r"epsilon must be .*\[0, 1\], got 1.5"),
        (lambda: EpsilonGreedyQ(epsilon_decay=0.0), r"epsilon_decay must be .* got 0.0"),
        (lambda: EpsilonGreedyQ(epsilon=0.2, epsilon_min=0.5), r"epsilon_min .*0.2\], got 0.5"),
        (lambda: EpsilonGreedyQ(initial_q=math.inf), r"initial_q must be a finite .* got inf"),
        (lambda: UCB1(exploration=-1.0), r"exploration must be .*\[0, inf\), got -1.0"),
        (lambda: ThompsonSampling(prior_alpha=0.0), r"prior_alpha must be .* got 0.0"),
        (lambda: ThompsonSampling(prior_beta=-1), r"prior_beta must be .* got -1"),
        (lambda: Fixed(model=""), r"model must be a non-empty candidate name, got ''"),
        (lambda: Cheapest(output_tokens=-1), r"output_tokens must be >= 0, got -1"),
        (lambda: PerContext(policy=UCB1(), max_keys=0), r"max_keys must be >= 1, got 0"),
    ],
)
def test_bad_hyperparameters_raise_config_error_naming_them(factory: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        factory()


@pytest.mark.parametrize(
    "factory",
    [
        lambda: LearningAutomaton(learning_rate="0.1"),  # type: ignore[arg-type]
        lambda: EpsilonGreedyQ(epsilon=True),
        lambda: Cheapest(output_tokens=1.5),  # type: ignore[arg-type]
        lambda: PerContext(policy="ucb1"),  # type: ignore[arg-type]
        lambda: PerContext(policy=UCB1(), shared_prior=1),  # type: ignore[arg-type]
        lambda: UCB1(seed="0"),  # type: ignore[arg-type]
    ],
)
def test_wrong_types_raise_type_error(factory: Any) -> None:
    with pytest.raises(TypeError):
        factory()


def test_hyperparameters_are_stored_as_given() -> None:
    policy = EpsilonGreedyQ(alpha=None, epsilon=1, epsilon_decay=0.5, seed=4)
    assert policy.get_params() == {
        "alpha": None,
        "epsilon": 1,
        "epsilon_decay": 0.5,
        "epsilon_min": 0.0,
        "initial_q": 0.0,
        "seed": 4,
    }
    assert repr(LearningAutomaton(lock_in=None)).startswith("LearningAutomaton(learning_rate=0.1")


# ---------------------------------------------------------------------------- automaton
def test_automaton_starts_uniform_and_applies_linear_reward_inaction() -> None:
    policy = LearningAutomaton(learning_rate=0.2, seed=0)
    policy.select(ctx())
    assert policy.probabilities == pytest.approx({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})
    policy.update(decision_for(policy, B), 0.5)
    # P_b += 0.2*0.5*(1 - 1/3); P_j -= 0.2*0.5*P_j
    assert policy.probabilities == pytest.approx({"a": 0.3, "b": 0.4, "c": 0.3})
    policy.update(decision_for(policy, A), 0.0)  # inaction
    assert policy.probabilities == pytest.approx({"a": 0.3, "b": 0.4, "c": 0.3})
    assert math.fsum(policy.probabilities.values()) == pytest.approx(1.0, abs=1e-15)


def test_automaton_samples_in_proportion_to_the_probabilities() -> None:
    policy = LearningAutomaton(learning_rate=0.5, seed=1)
    policy.select(ctx())
    policy.update(decision_for(policy, C), 1.0)  # P = (1/6, 1/6, 2/3)
    n = 4000
    counts = Counter(policy.select(ctx()).candidate.name for _ in range(n))
    assert counts["c"] / n == pytest.approx(2 / 3, abs=0.03)
    assert counts["a"] / n == pytest.approx(1 / 6, abs=0.03)
    decision = policy.select(ctx(A, C))  # restricted to a and c and renormalised
    assert decision.probability == pytest.approx({"a": 0.2, "c": 0.8}[decision.candidate.name])
    assert decision.scores is not None
    assert dict(zip([c.name for c in decision.ranking], decision.scores, strict=True)) == (
        pytest.approx({"a": 1 / 6, "c": 2 / 3})
    )


def test_automaton_newcomer_gets_one_over_k_plus_one_and_others_keep_their_ratios() -> None:
    policy = LearningAutomaton(learning_rate=0.5, seed=0)
    policy.select(ctx(A, B))
    policy.update(decision_for(policy, A, (A, B)), 1.0)  # P = (0.75, 0.25)
    policy.select(ctx(A, B, C))
    assert policy.probabilities == pytest.approx({"a": 0.5, "b": 1 / 6, "c": 1 / 3})


def test_automaton_update_among_a_subset_leaves_the_others_untouched() -> None:
    policy = LearningAutomaton(learning_rate=0.5, seed=0)
    policy.select(ctx())
    policy.update(decision_for(policy, A, (A, B)), 1.0)
    p = policy.probabilities
    assert p["c"] == pytest.approx(1 / 3)  # not offered: kept
    # a and b share their 2/3 of the mass: a gets half of b's share.
    assert p["a"] == pytest.approx(1 / 3 + 0.5 * 1 / 3)
    assert p["b"] == pytest.approx(1 / 6)


def test_automaton_locks_in_and_a_newcomer_unlocks_it() -> None:
    policy = LearningAutomaton(learning_rate=0.5, lock_in=0.9, seed=0)
    policy.select(ctx(A, B))
    # P_b: 0.5 -> 0.75 -> 0.875 -> 0.9375, so it locks on the third reward, not before.
    for _ in range(2):
        policy.update(decision_for(policy, B, (A, B)), 1.0)
        assert policy.locked is None
    policy.update(decision_for(policy, B, (A, B)), 1.0)
    assert policy.locked == "b"
    assert policy.probabilities["b"] == pytest.approx(0.9375)
    decisions = [policy.select(ctx(A, B)) for _ in range(20)]
    assert {d.candidate.name for d in decisions} == {"b"}
    assert {d.probability for d in decisions} == {1.0}
    # Not offered: the others are sampled among themselves.
    assert policy.select(ctx(A)).candidate.name == "a"
    # A newcomer rescales b below lock_in, so it gets tried.
    policy.select(ctx(A, B, C))
    assert policy.locked is None
    assert policy.probabilities["c"] == pytest.approx(1 / 3)


def test_automaton_without_lock_in_never_locks() -> None:
    policy = LearningAutomaton(learning_rate=0.9, lock_in=None, seed=0)
    policy.select(ctx(A, B))
    for _ in range(30):
        policy.update(decision_for(policy, A, (A, B)), 1.0)
    assert policy.locked is None
    assert policy.probabilities["a"] > 0.999


def test_automaton_low_lock_in_locks_on_the_argmax() -> None:
    policy = LearningAutomaton(learning_rate=0.1, lock_in=0.4, seed=0)
    policy.select(ctx())
    assert policy.locked is None
    policy.update(decision_for(policy, C), 1.0)
    assert policy.locked == "c"


def test_automaton_offered_candidates_without_mass_are_sampled_uniformly() -> None:
    policy = LearningAutomaton(seed=0)
    policy.load_state_dict(
        {"policy": policy.name, "state": {"probabilities": {"a": 1.0, "b": 0.0, "c": 0.0}}}
    )
    assert policy.locked == "a"
    decision = policy.select(ctx(B, C))
    assert decision.probability == 0.5
    policy.update(decision, 1.0)  # no mass to move among b and c
    assert policy.probabilities == {"a": 1.0, "b": 0.0, "c": 0.0}


def test_automaton_probabilities_property_is_a_copy() -> None:
    policy = LearningAutomaton(seed=0)
    policy.select(ctx())
    policy.probabilities["a"] = 5.0
    assert policy.probabilities["a"] == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"probabilities": {"a": 0.5, "b": 0.4}}, "must sum to 1, got 0.9"),
        ({"probabilities": {"a": 1.5, "b": -0.5}}, r"probabilities\['a'\] must be a finite"),
        ({"probabilities": {"a": math.nan, "b": 1.0}}, "got nan"),
        ({"probabilities": {"a": "x"}}, "must be a number"),
        ({"probabilities": [0.5, 0.5]}, "mapping keyed by candidate names"),
        ({}, "has no 'probabilities'"),
        ({"probabilities": {"a": 0.5, "b": 0.5}, "locked": "a"}, "below lock_in=0.99"),
        ({"probabilities": {"a": 1.0}, "locked": "z"}, "'z' has no probability"),
    ],
)
def test_automaton_rejects_bad_states(state: dict[str, Any], message: str) -> None:
    policy = LearningAutomaton(seed=0)
    with pytest.raises(StateError, match=message):
        policy.load_state_dict({"policy": policy.name, "state": state})


# ---------------------------------------------------------------------------- Q-learning
def test_q_learning_update_and_epsilon_decay() -> None:
    policy = EpsilonGreedyQ(alpha=0.5, epsilon=0.8, epsilon_decay=0.5, epsilon_min=0.3)
    policy.update(decision_for(policy, A), 1.0)
    policy.update(decision_for(policy, A), 0.0)
    assert policy.q_values == {"a": 0.25}
    assert policy.counts == {"a": 2}
    assert policy.current_epsilon == 0.3  # 0.8 -> 0.4 -> floor 0.3
    assert policy.epsilon == 0.8  # the hyperparameter is unchanged


def test_q_learning_sample_average() -> None:
    policy = EpsilonGreedyQ(alpha=None)
    for r in (1.0, 0.0, 0.5, 0.5):
        policy.update(decision_for(policy, B), r)
    assert policy.q_values["b"] == pytest.approx(0.5)


def test_q_learning_greedy_ties_go_to_the_cheapest_then_the_name() -> None:
    policy = EpsilonGreedyQ(epsilon=0.0)
    # b and d are equally cheap: b wins by name whether it comes first or last, so neither
    # "first tie wins" nor "last tie wins" passes.
    assert policy.select(ctx(A, C, D, B)).candidate.name == "b"
    assert policy.select(ctx(B, D, A, C)).candidate.name == "b"
    assert policy.select(ctx(D, A, B, C)).candidate.name == "b"
    policy.update(decision_for(policy, C), 0.6)
    decision = policy.select(ctx(A, C, D, B))
    assert decision.candidate.name == "c"
    assert decision.probability == 1.0


def test_q_learning_reported_probabilities() -> None:
    policy = EpsilonGreedyQ(epsilon=0.6, epsilon_decay=1.0, seed=0)
    policy.update(decision_for(policy, A), 1.0)
    seen: dict[str, set[float]] = {}
    for _ in range(200):
        d = policy.select(ctx())
        seen.setdefault(d.candidate.name, set()).add(round(d.probability, 12))
    assert seen == {"a": {0.6}, "b": {0.2}, "c": {0.2}}


def test_q_learning_explores_uniformly_and_exploits_otherwise() -> None:
    policy = EpsilonGreedyQ(epsilon=0.3, epsilon_decay=1.0, seed=2)
    policy.update(decision_for(policy, C), 1.0)
    n = 3000
    counts = Counter(policy.select(ctx()).candidate.name for _ in range(n))
    assert counts["c"] / n == pytest.approx(0.7 + 0.1, abs=0.03)
    assert counts["a"] / n == pytest.approx(0.1, abs=0.03)


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"q_values": {"a": 0.5}, "counts": {"a": -1}, "epsilon": 0.5}, r"counts\['a'\] must be"),
        ({"q_values": {"a": 0.5}, "counts": {"a": 1.5}, "epsilon": 0.5}, "an int >= 0"),
        ({"q_values": {"a": math.nan}, "counts": {"a": 1}, "epsilon": 0.5}, "got nan"),
        ({"q_values": {"a": 0.5}, "counts": {"b": 1}, "epsilon": 0.5}, "same candidates"),
        ({"q_values": {}, "counts": {}, "epsilon": 1.5}, r"epsilon must be .*\[0, 1\]"),
        ({"q_values": {}, "counts": {}}, "has no 'epsilon'"),
    ],
)
def test_q_learning_rejects_bad_states(state: dict[str, Any], message: str) -> None:
    policy = EpsilonGreedyQ()
    with pytest.raises(StateError, match=message):
        policy.load_state_dict({"policy": policy.name, "state": state})


# ---------------------------------------------------------------------------- UCB1
def test_ucb1_tries_untried_candidates_cheapest_first() -> None:
    policy = UCB1()
    order = []
    for _ in range(4):
        d = policy.select(ctx(A, C, D, B))
        order.append(d.candidate.name)
        policy.update(d, 0.5)
    assert order == ["b", "d", "a", "c"]
    # The name breaks price ties wherever the winner stands in the offer.
    for offer in ((B, D, A, C), (D, B, C, A)):
        assert UCB1().select(ctx(*offer)).candidate.name == "b"
    # Among equal bounds, the cheapest wins, then the first name.
    tied = UCB1(exploration=0.0)
    for cand in (A, B, C, D):
        tied.update(decision_for(tied, cand), 0.5)
    offers: list[tuple[Candidate, ...]] = [(A, C, D, B), (B, D, A, C), (C, A)]
    for tie in offers:
        expected = "a" if tie == (C, A) else "b"
        assert tied.select(ctx(*tie)).candidate.name == expected


def test_ucb1_index() -> None:
    policy = UCB1(exploration=0.5)
    for cand, rewards in ((A, [1.0, 0.0]), (B, [0.25] * 6)):
        for r in rewards:
            policy.update(decision_for(policy, cand), r)
    decision = policy.select(ctx(A, B))
    log_n = math.log(8)
    expected = {"a": 0.5 + 0.5 * math.sqrt(log_n / 2), "b": 0.25 + 0.5 * math.sqrt(log_n / 6)}
    assert decision.candidate.name == "a"
    assert decision.probability == 1.0
    assert decision.scores == pytest.approx((expected["a"], expected["b"]))
    untried = policy.select(ctx(A, B, C))
    assert untried.candidate.name == "c"
    assert untried.scores is not None
    assert untried.scores[0] == math.inf


def test_ucb1_without_exploration_is_greedy() -> None:
    policy = UCB1(exploration=0.0)
    policy.update(decision_for(policy, A), 0.9)
    policy.update(decision_for(policy, B), 0.1)
    assert {policy.select(ctx(A, B)).candidate.name for _ in range(5)} == {"a"}


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"counts": {"a": 1}, "means": {"a": 0.5}, "total": 3}, "total must be the sum"),
        ({"counts": {"a": 0}, "means": {"a": 0.5}, "total": 0}, "count >= 1"),
        ({"counts": {"a": 1}, "means": {"a": 1.5}, "total": 1}, r"means\['a'\] must be"),
        ({"counts": {"a": 1}, "means": {}, "total": 1}, "same candidates"),
        ({"counts": {"a": -2}, "means": {"a": 0.5}, "total": -2}, "an int >= 0"),
    ],
)
def test_ucb1_rejects_bad_states(state: dict[str, Any], message: str) -> None:
    policy = UCB1()
    with pytest.raises(StateError, match=message):
        policy.load_state_dict({"policy": policy.name, "state": state})


# ---------------------------------------------------------------------------- Thompson
def test_thompson_posteriors_take_fractional_rewards() -> None:
    policy = ThompsonSampling(prior_alpha=2.0, prior_beta=1.0)
    policy.update(decision_for(policy, A), 0.25)
    policy.update(decision_for(policy, A), 1.0)
    assert policy.posteriors == {"a": (3.25, 1.75)}


def test_thompson_picks_the_highest_draw_and_scores_are_the_draws() -> None:
    policy = ThompsonSampling(seed=5)
    for _ in range(20):
        d = policy.select(ctx())
        assert d.scores is not None
        assert d.scores[0] == max(d.scores)
        assert all(0.0 <= s <= 1.0 for s in d.scores)


def test_thompson_large_pools_draw_in_one_vectorised_call_and_still_learn() -> None:
    pool = tuple(Candidate(name=f"m{i:02d}") for i in range(30))

    def run(seed: int) -> list[str]:
        policy = ThompsonSampling(seed=seed)
        names = []
        for _ in range(300):
            d = policy.select(ctx(*pool))
            assert d.scores is not None
            assert d.scores[0] == max(d.scores)
            assert 0.0 < d.probability <= 1.0
            names.append(d.candidate.name)
            policy.update(d, 1.0 if d.candidate.name == "m17" else 0.0)
        return names

    names = run(0)
    assert names == run(0)
    assert names[-50:].count("m17") >= 45


def _monte_carlo_win_rates(posteriors: list[tuple[float, float]], draws: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    a = np.array([p[0] for p in posteriors])
    b = np.array([p[1] for p in posteriors])
    samples = rng.beta(a, b, size=(draws, len(posteriors)))
    return np.bincount(samples.argmax(axis=1), minlength=len(posteriors)) / draws


@pytest.mark.parametrize(
    "posteriors",
    [
        [(1.0, 1.0)] * 4,
        [(1.0, 1.0)] * 16,
        [(3.0, 7.0), (5.0, 5.0)],
        [(40.0, 10.0), (35.0, 15.0), (2.0, 2.0), (1.0, 1.0)],
        [(200.0, 100.0), (5.0, 3.0), (1.0, 4.0)],
    ],
)
def test_thompson_reported_probability_approximates_the_win_rate(
    posteriors: list[tuple[float, float]],
) -> None:
    names = [f"m{i}" for i in range(len(posteriors))]
    policy = ThompsonSampling(seed=0)
    policy.load_state_dict(
        {
            "policy": "thompson",
            "state": {
                "alpha": {n: p[0] for n, p in zip(names, posteriors, strict=True)},
                "beta": {n: p[1] for n, p in zip(names, posteriors, strict=True)},
            },
        }
    )
    context = Context(candidates=tuple(Candidate(name=n) for n in names))
    truth = _monte_carlo_win_rates(posteriors, 200_000)
    reported: dict[str, float] = {}
    for _ in range(400):
        d = policy.select(context)
        reported[d.candidate.name] = d.probability
    for name, p in reported.items():
        # The documented accuracy of the closed-form approximation.
        assert p == pytest.approx(truth[names.index(name)], abs=0.05), name


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"alpha": {"a": 0.0}, "beta": {"a": 1.0}}, "must be > 0"),
        ({"alpha": {"a": 1.0}, "beta": {"a": math.inf}}, "finite"),
        ({"alpha": {"a": 1.0}, "beta": {}}, "same candidates"),
        ({"alpha": {"a": 1.0}}, "has no 'beta'"),
    ],
)
def test_thompson_rejects_bad_states(state: dict[str, Any], message: str) -> None:
    policy = ThompsonSampling()
    with pytest.raises(StateError, match=message):
        policy.load_state_dict({"policy": policy.name, "state": state})


# ---------------------------------------------------------------------------- baselines
def test_fixed_always_picks_its_model_and_names_the_offer_when_missing() -> None:
    policy = Fixed(model="c")
    decision = policy.select(ctx(A, B, C))
    assert decision.candidate.name == "c"
    assert [x.name for x in decision.ranking] == ["c", "a", "b"]
    policy.update(decision, 1.0)
    assert policy.state_dict()["state"] == {}
    with pytest.raises(ConfigError, match=r"Fixed model 'c' is not among .*\['a', 'b'\]"):
        policy.select(ctx(A, B))


def test_random_is_uniform() -> None:
    policy = Random(seed=0)
    n = 6000
    decisions = [policy.select(ctx()) for _ in range(n)]
    counts = Counter(d.candidate.name for d in decisions)
    for name in "abc":
        assert counts[name] / n == pytest.approx(1 / 3, abs=0.02)
    assert {d.probability for d in decisions} == {1 / 3}


def test_cheapest_prices_the_call_when_it_knows_the_prompt() -> None:
    long_prompt = Candidate(name="long", input_price=0.5, output_price=5.0)
    chatty = Candidate(name="chatty", input_price=1.0, output_price=2.0)
    policy = Cheapest(output_tokens=1000)
    assert policy.select(ctx(long_prompt, chatty)).candidate.name == "chatty"
    # 5000 in + 1000 out: long costs 7.5e-3, chatty 7e-3
    assert policy.select(ctx(long_prompt, chatty, input_tokens=5000)).candidate.name == "chatty"
    # 10000 in: long 1e-2, chatty 1.2e-2
    decision = policy.select(ctx(long_prompt, chatty, input_tokens=10_000))
    assert decision.candidate.name == "long"
    assert decision.scores == pytest.approx((-0.01, -0.012))


def test_cheapest_ties_go_to_the_first_name_and_the_ranking_is_by_price() -> None:
    decision = Cheapest().select(ctx(C, D, A, B))
    assert [x.name for x in decision.ranking] == ["b", "d", "a", "c"]
    assert decision.probability == 1.0
    # b first or last among the ties: it wins by name either way.
    assert Cheapest().select(ctx(B, D, A, C)).candidate.name == "b"
    assert Cheapest().select(ctx(C, B, D)).candidate.name == "b"


# ---------------------------------------------------------------------------- PerContext
def test_per_context_learns_each_key_separately_and_decisions_carry_the_key() -> None:
    policy = PerContext(policy=UCB1(), shared_prior=False, seed=0)
    for _ in range(30):
        for key, best in (("code", "a"), ("prose", "b"), (None, "c")):
            d = policy.select(ctx(key=key))
            assert d.key == key
            assert d.policy == "per_context"
            policy.update(d, 1.0 if d.candidate.name == best else 0.2)
    for key, best in (("code", "a"), ("prose", "b"), (None, "c")):
        assert policy.select(ctx(key=key)).candidate.name == best
    assert policy.keys == ["code", "prose"]
    default = policy.learner(None)
    assert isinstance(default, UCB1)
    assert sum(default.counts.values()) == 30
    assert policy.shared is None


def test_per_context_new_keys_start_from_the_shared_prior() -> None:
    policy = PerContext(policy=EpsilonGreedyQ(alpha=None), seed=0)
    for _ in range(40):
        d = policy.select(ctx(key="seen"))
        policy.update(d, 1.0 if d.candidate.name == "c" else 0.0)
    shared = policy.shared
    assert isinstance(shared, EpsilonGreedyQ)
    assert shared.q_values == policy.learner("seen").q_values  # type: ignore[union-attr]
    policy.select(ctx(key="new"))
    new = policy.learner("new")
    assert isinstance(new, EpsilonGreedyQ)
    assert new.q_values == shared.q_values
    assert new.current_epsilon == shared.current_epsilon
    # Without the shared prior, a new key starts fresh.
    fresh = PerContext(policy=EpsilonGreedyQ(alpha=None), shared_prior=False, seed=0)
    fresh.select(ctx(key="new"))
    assert fresh.learner("new").q_values == {}  # type: ignore[union-attr]


def test_per_context_drops_the_least_recently_used_key() -> None:
    policy = PerContext(policy=UCB1(), shared_prior=False, max_keys=2, seed=0)
    for key in ("k1", "k2"):
        policy.update(policy.select(ctx(key=key)), 1.0)
    policy.select(ctx(key="k1"))  # k1 is now more recent than k2
    policy.select(ctx(key="k3"))
    assert policy.keys == ["k1", "k3"]
    assert policy.learner("k2") is None
    policy.select(ctx())  # the default learner does not count
    assert policy.keys == ["k1", "k3"]
    assert policy.learner(None) is not None


def test_per_context_learners_do_not_share_random_streams() -> None:
    policy = PerContext(policy=Random(), seed=0)
    picks = {key: [policy.select(ctx(key=key)).candidate.name for _ in range(30)] for key in "xy"}
    assert picks["x"] != picks["y"]


def test_per_context_never_trains_the_template() -> None:
    template = UCB1()
    policy = PerContext(policy=template, seed=0)
    policy.update(policy.select(ctx(key="k")), 1.0)
    assert template.counts == {}
    assert policy.clone().policy is template


def test_per_context_state_nests_the_learners() -> None:
    policy = PerContext(policy=ThompsonSampling(), seed=0)
    for key in ("k1", "k2", None):
        policy.update(policy.select(ctx(key=key)), 1.0)
    state = json.loads(json.dumps(policy.state_dict()))
    assert [k for k, _ in state["state"]["keys"]] == ["k1", "k2"]
    assert state["state"]["global"]["policy"] == "thompson"
    assert state["state"]["default"]["policy"] == "thompson"
    restored = PerContext(policy=ThompsonSampling(), seed=1)
    restored.load_state_dict(state)
    assert restored.keys == ["k1", "k2"]
    assert restored.learner("k1").posteriors == policy.learner("k1").posteriors  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: s["keys"].__setitem__(1, s["keys"][0]), "appears twice"),
        (lambda s: s.update(keys={}), "must be a list"),
        (lambda s: s["keys"].append(["k9", {"policy": "ucb1", "state": {}}]), "more than max_keys"),
        (lambda s: s["keys"].__setitem__(0, ["k1"]), r"must be \[key, state\]"),
        (lambda s: s.update(**{"global": None}), "global learner is missing"),
        (lambda s: s["keys"][0][1].update(policy="ucb1"), "not 'thompson'"),
    ],
)
def test_per_context_rejects_bad_states(mutate: Any, message: str) -> None:
    policy = PerContext(policy=ThompsonSampling(), max_keys=2, seed=0)
    for key in ("k1", "k2"):
        policy.update(policy.select(ctx(key=key)), 1.0)
    state = json.loads(json.dumps(policy.state_dict()))
    before = json.dumps(state)
    mutate(state["state"])
    with pytest.raises(StateError, match=message):
        policy.load_state_dict(state)
    assert json.dumps(policy.state_dict()) == before
