"""Policy details pinned down for mutation testing (see [tool.mutmut] in pyproject.toml).

Exact messages, tie-breaking rules, scores and saved-state validation of the baseline and
bandit policies. Every policy here is deterministic or seeded.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from pickllm import Candidate, ConfigError, Context, Decision, NoCandidateError, StateError
from pickllm.policies.cheapest import Cheapest
from pickllm.policies.epsilon_greedy_q import EpsilonGreedyQ
from pickllm.policies.fixed import Fixed
from pickllm.policies.learning_automaton import LearningAutomaton
from pickllm.policies.per_context import PerContext
from pickllm.policies.thompson_sampling import ThompsonSampling
from pickllm.policies.ucb1 import UCB1

A = Candidate(name="a", input_price=1.0, output_price=2.0)
B = Candidate(name="b", input_price=3.0, output_price=4.0)


def ctx(*pool: Candidate, **kwargs: Any) -> Context:
    return Context(candidates=pool, **kwargs)


# ================================================================ Fixed
@pytest.mark.parametrize("model", ["", 3, None])
def test_fixed_needs_a_model_name(model: Any) -> None:
    with pytest.raises(ConfigError) as info:
        Fixed(model=model)
    assert str(info.value) == f"Fixed model must be a non-empty candidate name, got {model!r}"


def test_fixed_chooses_its_model_and_ranks_the_others_in_order() -> None:
    c = Candidate(name="c")
    decision = Fixed(model="b").select(ctx(A, c, B))
    assert decision.candidate == B
    assert decision.probability == 1.0
    assert decision.ranking == (B, A, c)
    assert decision.scores is None
    with pytest.raises(ConfigError) as info:
        Fixed(model="z").select(ctx(A, B))
    assert str(info.value) == "Fixed model 'z' is not among the offered candidates ['a', 'b']"


def test_fixed_ignores_feedback() -> None:
    policy = Fixed(model="a")
    decision = policy.select(ctx(A, B))
    policy.update(decision, 0.0)
    assert policy.select(ctx(A, B)).candidate == A
    assert policy.get_params()["model"] == "a"


# ================================================================ Cheapest
def test_cheapest_checks_output_tokens() -> None:
    with pytest.raises(TypeError) as info:
        Cheapest(output_tokens=True)
    assert str(info.value) == "Cheapest output_tokens must be an int, got True"
    with pytest.raises(TypeError, match=r"got 1\.5$"):
        Cheapest(output_tokens=1.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as err:
        Cheapest(output_tokens=-1)
    assert str(err.value) == "Cheapest output_tokens must be >= 0, got -1"
    assert Cheapest(output_tokens=0).output_tokens == 0
    assert Cheapest().output_tokens == 256


def test_cheapest_by_list_price_scores_and_ties() -> None:
    x = Candidate(name="x", input_price=1.0, output_price=1.0)
    y = Candidate(name="y", input_price=0.5, output_price=1.5)
    z = Candidate(name="z", input_price=3.0, output_price=0.0)
    decision = Cheapest().select(ctx(y, x, z))
    assert decision.candidate == x  # tie at 2.0 with y: the first name wins
    assert decision.probability == 1.0
    assert decision.scores == (-2.0, -2.0, -3.0)
    assert decision.ranking == (x, y, z)
    assert Cheapest().select(ctx(x, y)).candidate == x
    assert Cheapest().select(ctx(z, x)).candidate == x


def test_cheapest_prices_the_call_when_the_prompt_size_is_known() -> None:
    long_in = Candidate(name="long", input_price=0.5, output_price=5.0)
    chatty = Candidate(name="chatty", input_price=1.0, output_price=2.0)
    # 1000 in + 256 out: long = 0.5e-3 + 1.28e-3, chatty = 1e-3 + 0.512e-3.
    assert Cheapest().select(ctx(long_in, chatty, input_tokens=1000)).candidate == chatty
    # With no output expected, the prompt alone counts.
    decision = Cheapest(output_tokens=0).select(ctx(long_in, chatty, input_tokens=1000))
    assert decision.candidate == long_in
    assert decision.scores == pytest.approx((-0.0005, -0.001))
    # 10 in + 1000 out.
    big_out = Cheapest(output_tokens=1000).select(ctx(long_in, chatty, input_tokens=10))
    assert big_out.candidate == chatty
    assert big_out.scores == pytest.approx(
        (-(10 * 1.0 + 1000 * 2.0) / 1e6, -(10 * 0.5 + 1000 * 5.0) / 1e6)
    )


# ================================================================ UCB1
def test_ucb1_tries_untried_candidates_cheapest_then_first_name() -> None:
    cheap = Candidate(name="m", input_price=0.1)
    twin = Candidate(name="k", input_price=0.1)
    dear = Candidate(name="d", input_price=5.0)
    policy = UCB1()
    decision = policy.select(ctx(dear, cheap, twin))
    assert decision.candidate == twin
    assert decision.probability == 1.0
    assert decision.scores == (math.inf, math.inf, math.inf)
    assert [c.name for c in decision.ranking] == ["k", "m", "d"]


def test_ucb1_exploration_error_names_the_policy() -> None:
    with pytest.raises(ConfigError) as info:
        UCB1(exploration=-1.0)
    assert str(info.value) == "UCB1 exploration must be a finite number in [0, inf), got -1.0"


def test_ucb1_bounds_follow_the_formula() -> None:
    policy = UCB1(exploration=0.5)
    pool = (A, B)
    for cand, reward in [(A, 0.2), (A, 0.4), (B, 0.9)]:
        policy.update(policy.select(ctx(cand)), reward)
    assert policy.counts == {"a": 2, "b": 1}
    assert policy.means == {"a": pytest.approx(0.3), "b": pytest.approx(0.9)}
    decision = policy.select(ctx(*pool))
    log_n = math.log(3)
    bound_a = 0.3 + 0.5 * math.sqrt(log_n / 2)
    bound_b = 0.9 + 0.5 * math.sqrt(log_n / 1)
    assert decision.candidate == B
    assert decision.scores == pytest.approx((bound_b, bound_a))


def test_ucb1_with_one_reward_has_no_exploration_bonus() -> None:
    policy = UCB1(exploration=5.0)
    policy.update(policy.select(ctx(A)), 0.25)
    decision = policy.select(ctx(A, B))
    assert decision.candidate == B  # untried first
    assert decision.scores == (math.inf, 0.25)


def test_ucb1_equal_bounds_go_to_the_cheaper_then_the_first_name() -> None:
    twin = Candidate(name="aa", input_price=1.0, output_price=2.0)
    dear = Candidate(name="c", input_price=9.0, output_price=9.0)
    policy = UCB1(exploration=0.0)
    policy.load_state_dict(
        {
            **policy.state_dict(),
            "state": {
                "counts": {"a": 1, "aa": 1, "c": 1},
                "means": {"a": 0.5, "aa": 0.5, "c": 0.5},
                "total": 3,
            },
        }
    )
    assert policy.select(ctx(dear, twin, A)).candidate == A
    assert policy.select(ctx(dear, A, twin)).candidate == A
    assert policy.select(ctx(A, dear)).candidate == A
    assert policy.select(ctx(dear, A)).candidate == A


def test_ucb1_state_validation_messages() -> None:
    policy = UCB1()
    base = policy.state_dict()

    def load(state: dict[str, Any]) -> str:
        with pytest.raises(StateError) as info:
            UCB1().load_state_dict({**base, "state": state})
        return str(info.value)

    assert load({"counts": {"a": 1}, "means": {"b": 0.5}, "total": 1}) == (
        "state of policy 'ucb1': counts and means must name the same candidates, "
        "got ['a'] and ['b']"
    )
    assert load({"counts": {"a": 0}, "means": {"a": 0.5}, "total": 0}) == (
        "state of policy 'ucb1': a candidate with a mean needs a count >= 1, got {'a': 0}"
    )
    assert load({"counts": {"a": 2}, "means": {"a": 0.5}, "total": 3}) == (
        "state of policy 'ucb1': total must be the sum of the counts (2), got 3"
    )
    good = UCB1()
    good.load_state_dict({**base, "state": {"counts": {"a": 2}, "means": {"a": 0.5}, "total": 2}})
    assert good.counts == {"a": 2}
    assert good.means == {"a": 0.5}


def test_ucb1_explores_with_the_log_of_two_rewards() -> None:
    policy = UCB1(exploration=1.0)
    policy.update(policy.select(ctx(A)), 0.5)
    policy.update(policy.select(ctx(B)), 0.25)
    decision = policy.select(ctx(A, B))
    bonus = math.sqrt(math.log(2))
    assert decision.scores == pytest.approx((0.5 + bonus, 0.25 + bonus))


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"means": {}, "total": 0}, "state of policy 'ucb1' has no 'counts' (it has ['means', "),
        ({"counts": {}, "total": 0}, "state of policy 'ucb1' has no 'means' (it has ['counts', "),
        ({"counts": {}, "means": {}}, "state of policy 'ucb1' has no 'total' (it has ['counts', "),
        (
            {"counts": [], "means": {}, "total": 0},
            "state of policy 'ucb1': counts must be a mapping keyed by candidate names, got []",
        ),
        (
            {"counts": {}, "means": [], "total": 0},
            "state of policy 'ucb1': means must be a mapping keyed by candidate names, got []",
        ),
        (
            {"counts": {"a": -1}, "means": {"a": 0.5}, "total": 0},
            "state of policy 'ucb1': counts['a'] must be an int >= 0, got -1",
        ),
        (
            {"counts": {"a": 1}, "means": {"a": -0.5}, "total": 1},
            "state of policy 'ucb1': means['a'] must be a finite number in [0, 1], got -0.5",
        ),
        (
            {"counts": {"a": 1}, "means": {"a": 0.5}, "total": -1},
            "state of policy 'ucb1': total must be an int >= 0, got -1",
        ),
    ],
)
def test_ucb1_state_field_messages(state: dict[str, Any], message: str) -> None:
    policy = UCB1()
    with pytest.raises(StateError) as info:
        policy.load_state_dict({**policy.state_dict(), "state": state})
    assert str(info.value).startswith(message)


def test_fixed_conformance_parameters_name_the_offered_model() -> None:
    params = Fixed._unit_test_params()
    assert params == {"model": "m0"}
    assert Fixed(**params).select(ctx(Candidate(name="x"), Candidate(name="m0"))).probability == 1.0


def test_cheapest_default_prices_256_output_tokens() -> None:
    decision = Cheapest().select(ctx(A, B, input_tokens=1000))
    assert decision.scores == pytest.approx(
        ((-1000 * 1.0 - 256 * 2.0) / 1e6, (-1000 * 3.0 - 256 * 4.0) / 1e6), rel=1e-9
    )


# ================================================================ LearningAutomaton
C = Candidate(name="c", input_price=5.0, output_price=6.0)


def over(chosen: Candidate, *ranking: Candidate) -> Decision:
    return Decision(
        decision_id="d",
        candidate=chosen,
        ranking=ranking,
        probability=0.5,
        policy="learning_automaton",
    )


def test_automaton_parameters_are_checked() -> None:
    for rate in (0.0, 1.0):
        with pytest.raises(ConfigError) as info:
            LearningAutomaton(learning_rate=rate)
        assert str(info.value) == (
            f"LearningAutomaton learning_rate must be a finite number in (0, 1), got {rate!r}"
        )
    with pytest.raises(ConfigError) as info:
        LearningAutomaton(lock_in=0.0)
    assert str(info.value) == "LearningAutomaton lock_in must be a finite number in (0, 1], got 0.0"
    assert LearningAutomaton(lock_in=1.0).lock_in == 1.0
    assert LearningAutomaton._unit_test_params() == {"learning_rate": 0.1}


def test_automaton_updates_follow_reward_inaction() -> None:
    policy = LearningAutomaton(learning_rate=0.5, lock_in=None, seed=0)
    policy.select(ctx(A, B))
    assert policy.probabilities == {"a": 0.5, "b": 0.5}
    policy.update(over(A, A, B), 1.0)
    assert policy.probabilities == {"a": 0.75, "b": 0.25}
    policy.update(over(B, A, B), 0.5)
    assert policy.probabilities == {"a": 0.5625, "b": 0.4375}
    policy.select(ctx(A, B, C))  # c joins with 1/3, the others keep their ratio
    p = policy.probabilities
    assert p == pytest.approx({"a": 0.375, "b": 0.4375 * 2 / 3, "c": 1 / 3})
    policy.update(over(A, A, C), 0.0)
    assert policy.probabilities == p
    policy.update(over(A, A, C), 1.0)  # only the ranked candidates share their mass
    mass = p["a"] + p["c"]
    assert policy.probabilities == pytest.approx(
        {"a": p["a"] + 0.5 * (mass - p["a"]), "b": p["b"], "c": p["c"] * 0.5}
    )
    assert policy.locked is None


def test_automaton_learns_a_chosen_candidate_missing_from_the_ranking() -> None:
    # A decision made elsewhere (a fallback) may name a candidate its ranking leaves out.
    policy = LearningAutomaton(learning_rate=0.5, lock_in=None, seed=0)
    policy.select(ctx(A, B))
    policy.update(over(A, B), 1.0)
    assert policy.probabilities == {"a": 0.75, "b": 0.25}


def test_automaton_locks_and_unlocks_above_half() -> None:
    policy = LearningAutomaton(learning_rate=0.5, lock_in=0.7, seed=0)
    policy.select(ctx(A, B))
    assert policy.locked is None
    policy.update(over(A, A, B), 1.0)
    assert policy.locked == "a"
    decision = policy.select(ctx(B, A))
    assert (decision.candidate, decision.probability) == (A, 1.0)
    policy.update(over(B, A, B), 1.0)
    assert policy.probabilities == {"a": 0.375, "b": 0.625}
    assert policy.locked is None


def test_automaton_locks_at_or_below_half_on_the_largest() -> None:
    policy = LearningAutomaton(lock_in=0.5, seed=0)
    policy.select(ctx(A, B))
    assert policy.locked == "a"
    assert policy.select(ctx(B, A)).probability == 1.0
    policy.select(ctx(A, B, C))
    assert policy.locked is None


def test_automaton_samples_uniformly_when_the_offered_hold_nothing() -> None:
    policy = LearningAutomaton(lock_in=None, seed=0)
    base = policy.state_dict()
    policy.load_state_dict(
        {**base, "state": {"probabilities": {"a": 1.0, "b": 0.0, "c": 0.0}, "locked": None}}
    )
    decisions = [policy.select(ctx(B, C)) for _ in range(20)]
    assert {d.probability for d in decisions} == {0.5}
    assert {d.candidate.name for d in decisions} == {"b", "c"}


def test_automaton_probability_is_its_share_of_the_offered_mass() -> None:
    policy = LearningAutomaton(lock_in=None, seed=0)
    policy.load_state_dict(
        {
            **policy.state_dict(),
            "state": {"probabilities": {"a": 0.6, "b": 0.3, "c": 0.1}, "locked": None},
        }
    )
    decisions = [policy.select(ctx(B, C)) for _ in range(30)]
    seen = {d.candidate.name: round(d.probability, 9) for d in decisions}
    assert seen == {"b": 0.75, "c": 0.25}


@pytest.mark.parametrize(
    ("state", "lock_in", "message"),
    [
        (
            {"probabilities": {"a": 0.5, "b": 0.4}},
            0.99,
            "state of policy 'learning_automaton': probabilities must sum to 1, got 0.9",
        ),
        (
            {"probabilities": {"a": 0.5, "b": 0.5}, "locked": "z"},
            0.99,
            (
                "state of policy 'learning_automaton': locked candidate 'z' has no probability "
                "(known: ['a', 'b'])"
            ),
        ),
        (
            {"probabilities": {"a": 0.6, "b": 0.4}, "locked": "b"},
            0.99,
            (
                "state of policy 'learning_automaton': locked candidate 'b' has probability 0.4, "
                "below lock_in=0.99"
            ),
        ),
        (
            {"probabilities": {"a": 1.0}, "locked": "a"},
            None,
            (
                "state of policy 'learning_automaton': locked candidate 'a' has probability 1.0, "
                "below lock_in=None"
            ),
        ),
        (
            {"probabilities": {"a": 1.5}},
            0.99,
            (
                "state of policy 'learning_automaton': probabilities['a'] must be a finite number "
                "in [0, 1], got 1.5"
            ),
        ),
        (
            {"locked": None},
            0.99,
            "state of policy 'learning_automaton' has no 'probabilities'",
        ),
        (
            {"probabilities": [1.0]},
            0.99,
            "state of policy 'learning_automaton': probabilities must be a mapping",
        ),
    ],
)
def test_automaton_state_messages(state: dict[str, Any], lock_in: Any, message: str) -> None:
    policy = LearningAutomaton(lock_in=lock_in)
    with pytest.raises(StateError) as info:
        policy.load_state_dict({**policy.state_dict(), "state": state})
    assert str(info.value).startswith(message)


def test_automaton_state_relocks_on_load() -> None:
    policy = LearningAutomaton(lock_in=0.9)
    state = {"probabilities": {"a": 0.05, "b": 0.95}}
    policy.load_state_dict({**policy.state_dict(), "state": state})
    assert policy.locked == "b"
    policy = LearningAutomaton(lock_in=0.9)
    state = {"probabilities": {"a": 0.15, "b": 0.85}}
    policy.load_state_dict({**policy.state_dict(), "state": state})
    assert policy.locked is None
    assert policy.probabilities == {"a": 0.15, "b": 0.85}


# ================================================================ EpsilonGreedyQ
def egq_state(policy: EpsilonGreedyQ, **state: Any) -> None:
    policy.load_state_dict({**policy.state_dict(), "state": state})


def test_egq_parameters_are_checked() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"alpha": 0.0}, "EpsilonGreedyQ alpha must be a finite number in (0, 1], got 0.0"),
        ({"alpha": 1.5}, "EpsilonGreedyQ alpha must be a finite number in (0, 1], got 1.5"),
        ({"epsilon": -0.1}, "EpsilonGreedyQ epsilon must be a finite number in [0, 1], got -0.1"),
        ({"epsilon": 1.1}, "EpsilonGreedyQ epsilon must be a finite number in [0, 1], got 1.1"),
        (
            {"epsilon_decay": 0.0},
            "EpsilonGreedyQ epsilon_decay must be a finite number in (0, 1], got 0.0",
        ),
        (
            {"epsilon_decay": 1.5},
            "EpsilonGreedyQ epsilon_decay must be a finite number in (0, 1], got 1.5",
        ),
        (
            {"epsilon": 0.5, "epsilon_min": 0.6},
            "EpsilonGreedyQ epsilon_min must be a finite number in [0, 0.5], got 0.6",
        ),
        (
            {"epsilon_min": -0.1},
            "EpsilonGreedyQ epsilon_min must be a finite number in [0, 1], got -0.1",
        ),
        (
            {"initial_q": math.inf},
            "EpsilonGreedyQ initial_q must be a finite number in (-inf, inf), got inf",
        ),
    ]
    for kwargs, message in cases:
        with pytest.raises(ConfigError) as info:
            EpsilonGreedyQ(**kwargs)
        assert str(info.value) == message
    ok = EpsilonGreedyQ(alpha=1.0, epsilon=0.0, epsilon_decay=1.0, epsilon_min=0.0)
    assert (ok.alpha, ok.epsilon, ok.epsilon_decay, ok.epsilon_min) == (1.0, 0.0, 1.0, 0.0)
    assert EpsilonGreedyQ(epsilon=0.5, epsilon_min=0.5).current_epsilon == 0.5
    assert EpsilonGreedyQ._unit_test_params() == {"alpha": None, "epsilon_decay": 0.98}


def test_egq_defaults() -> None:
    policy = EpsilonGreedyQ()
    assert (policy.alpha, policy.epsilon, policy.epsilon_decay) == (0.1, 1.0, 0.95)
    assert (policy.epsilon_min, policy.initial_q) == (0.0, 0.0)
    policy.update(Fixed(model="a").select(ctx(A)), 1.0)
    assert policy.q_values == {"a": pytest.approx(0.1)}
    assert policy.current_epsilon == pytest.approx(0.95)


def test_egq_learns_with_a_constant_step_or_sample_averages() -> None:
    policy = EpsilonGreedyQ(alpha=0.5, epsilon=0.8, epsilon_decay=0.5, epsilon_min=0.3)
    decision = Fixed(model="a").select(ctx(A))
    policy.update(decision, 1.0)
    policy.update(decision, 0.0)
    assert policy.q_values == {"a": 0.25}
    assert policy.counts == {"a": 2}
    assert policy.current_epsilon == 0.3  # 0.8 -> 0.4 -> max(0.3, 0.2)
    averages = EpsilonGreedyQ(alpha=None, initial_q=0.5)
    for reward in (1.0, 0.0, 0.5):
        averages.update(decision, reward)
    assert averages.q_values == {"a": pytest.approx(0.5)}


def test_egq_greedy_choice_ties_and_probabilities() -> None:
    dear = Candidate(name="a2", input_price=9.0, output_price=9.0)
    twin = Candidate(name="aa", input_price=1.0, output_price=2.0)
    policy = EpsilonGreedyQ(epsilon=0.0, initial_q=0.5)
    decision = policy.select(ctx(dear, twin, A))
    assert decision.candidate == A  # tied at 0.5: cheaper first, then the first name
    assert decision.probability == 1.0
    assert decision.scores == (0.5, 0.5, 0.5)
    assert policy.select(ctx(dear, A, twin)).candidate == A
    assert policy.select(ctx(dear, A)).candidate == A  # two tied: the later, cheaper one
    egq_state(policy, q_values={"a2": 0.9}, counts={"a2": 1}, epsilon=0.0)
    assert policy.select(ctx(A, dear)).candidate == dear


def test_egq_explores_with_probability_epsilon_over_k() -> None:
    policy = EpsilonGreedyQ(epsilon=0.6, seed=3)
    egq_state(policy, q_values={"a": 0.9}, counts={"a": 1}, epsilon=0.6)
    seen: dict[str, set[float]] = {}
    for _ in range(60):
        d = policy.select(ctx(A, B, C))
        seen.setdefault(d.candidate.name, set()).add(round(d.probability, 9))
        assert d.scores is not None  # an explored decision keeps the Q-values too
        assert dict(zip([c.name for c in d.ranking], d.scores, strict=True)) == {
            "a": 0.9,
            "b": policy.initial_q,
            "c": policy.initial_q,
        }
    assert seen == {"a": {round(0.4 + 0.2, 9)}, "b": {0.2}, "c": {0.2}}


def test_egq_state_messages() -> None:
    policy = EpsilonGreedyQ()
    with pytest.raises(StateError) as info:
        egq_state(policy, q_values={"a": 0.5}, counts={"b": 1}, epsilon=0.5)
    assert str(info.value) == (
        "state of policy 'epsilon_greedy_q': q_values and counts must name the same "
        "candidates, got ['a'] and ['b']"
    )
    bad: list[tuple[dict[str, Any], str]] = [
        ({"counts": {}, "epsilon": 0.5}, "state of policy 'epsilon_greedy_q' has no 'q_values'"),
        ({"q_values": {}, "epsilon": 0.5}, "state of policy 'epsilon_greedy_q' has no 'counts'"),
        ({"q_values": {}, "counts": {}}, "state of policy 'epsilon_greedy_q' has no 'epsilon'"),
        (
            {"q_values": [], "counts": {}, "epsilon": 0.5},
            "state of policy 'epsilon_greedy_q': q_values must be a mapping",
        ),
        (
            {"q_values": {}, "counts": [], "epsilon": 0.5},
            "state of policy 'epsilon_greedy_q': counts must be a mapping",
        ),
        (
            {"q_values": {"a": "x"}, "counts": {"a": 1}, "epsilon": 0.5},
            "state of policy 'epsilon_greedy_q': q_values['a'] must be a number, got 'x'",
        ),
        (
            {"q_values": {"a": 0.5}, "counts": {"a": -1}, "epsilon": 0.5},
            "state of policy 'epsilon_greedy_q': counts['a'] must be an int >= 0, got -1",
        ),
        (
            {"q_values": {}, "counts": {}, "epsilon": 1.5},
            (
                "state of policy 'epsilon_greedy_q': epsilon must be a finite number in [0, 1], "
                "got 1.5"
            ),
        ),
        (
            {"q_values": {}, "counts": {}, "epsilon": -0.5},
            (
                "state of policy 'epsilon_greedy_q': epsilon must be a finite number in [0, 1], "
                "got -0.5"
            ),
        ),
    ]
    for state, message in bad:
        with pytest.raises(StateError) as info:
            egq_state(policy, **state)
        assert str(info.value).startswith(message)
    egq_state(policy, q_values={"a": -2.5}, counts={"a": 3}, epsilon=0.25)
    assert (policy.q_values, policy.counts, policy.current_epsilon) == ({"a": -2.5}, {"a": 3}, 0.25)


# ================================================================ ThompsonSampling
def ts_state(policy: ThompsonSampling, **state: Any) -> None:
    policy.load_state_dict({**policy.state_dict(), "state": state})


def test_thompson_parameters_and_updates() -> None:
    kwargs: dict[str, Any]
    for key in ("prior_alpha", "prior_beta"):
        kwargs = {key: 0.0}
        with pytest.raises(ConfigError) as info:
            ThompsonSampling(**kwargs)
        assert str(info.value) == (
            f"ThompsonSampling {key} must be a finite number in (0, inf), got 0.0"
        )
    policy = ThompsonSampling(prior_alpha=2.0, prior_beta=3.0, seed=0)
    decision = Fixed(model="a").select(ctx(A))
    policy.update(decision, 0.25)
    policy.update(decision, 1.0)
    assert policy.posteriors == {"a": (3.25, 3.75)}


def test_thompson_picks_the_highest_draw_and_reports_its_chance() -> None:
    policy = ThompsonSampling(seed=0)
    decision = policy.select(ctx(A))
    assert (decision.candidate, decision.probability) == (A, 1.0)
    draws: list[tuple[str, float, tuple[float, ...]]] = []
    for _ in range(30):
        d = policy.select(ctx(A, B))
        assert d.scores is not None
        draws.append((d.candidate.name, d.probability, d.scores))
    assert {name for name, _, _ in draws} == {"a", "b"}
    for _, probability, scores in draws:
        assert probability == pytest.approx(0.5)
        assert scores[0] >= scores[1]
    three = [policy.select(ctx(A, B, C)).probability for _ in range(5)]
    assert three == pytest.approx([1 / 3] * 5, abs=0.03)


def test_thompson_chance_of_a_clear_winner_and_loser() -> None:
    policy = ThompsonSampling(seed=0)
    ts_state(policy, alpha={"a": 90.0, "b": 10.0}, beta={"a": 10.0, "b": 90.0})
    decision = policy.select(ctx(A, B))
    assert decision.candidate == A
    assert decision.probability == 1.0
    ts_state(policy, alpha={"a": 3.0, "b": 1.0, "c": 1.0}, beta={"a": 1.0, "b": 1.0, "c": 3.0})
    chances = {}
    for _ in range(200):
        d = policy.select(ctx(A, B, C))
        chances[d.candidate.name] = d.probability
    assert chances["a"] > chances["b"] > chances["c"] > 0.0
    assert sum(chances.values()) == pytest.approx(1.0, abs=0.1)


def test_thompson_state_messages() -> None:
    policy = ThompsonSampling()
    bad: list[tuple[dict[str, Any], str]] = [
        (
            {"alpha": {"a": 1.0}, "beta": {"b": 1.0}},
            (
                "state of policy 'thompson': alpha and beta must name the same candidates, "
                "got ['a'] and ['b']"
            ),
        ),
        (
            {"alpha": {"a": 0.0}, "beta": {"a": 1.0}},
            "state of policy 'thompson': alpha and beta of 'a' must be > 0, got 0.0, 1.0",
        ),
        (
            {"alpha": {"a": 1.0}, "beta": {"a": 0.0}},
            "state of policy 'thompson': alpha and beta of 'a' must be > 0, got 1.0, 0.0",
        ),
        (
            {"alpha": {"a": -1.0}, "beta": {"a": 1.0}},
            "state of policy 'thompson': alpha['a'] must be a finite number in [0, inf]",
        ),
        (
            {"alpha": {"a": 1.0}, "beta": {"a": -1.0}},
            "state of policy 'thompson': beta['a'] must be a finite number in [0, inf]",
        ),
        ({"beta": {}}, "state of policy 'thompson' has no 'alpha'"),
        ({"alpha": {}}, "state of policy 'thompson' has no 'beta'"),
        ({"alpha": [], "beta": {}}, "state of policy 'thompson': alpha must be a mapping"),
        ({"alpha": {}, "beta": []}, "state of policy 'thompson': beta must be a mapping"),
    ]
    for state, message in bad:
        with pytest.raises(StateError) as info:
            ts_state(policy, **state)
        assert str(info.value).startswith(message)
    ts_state(policy, alpha={"a": 2.0}, beta={"a": 0.5})
    assert policy.posteriors == {"a": (2.0, 0.5)}


# ================================================================ PerContext
def test_per_context_arguments_are_checked() -> None:
    ucb = UCB1()
    cases: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"policy": "ucb1"}, TypeError, "PerContext policy must be a Policy instance, got 'ucb1'"),
        (
            {"policy": ucb, "shared_prior": 1},
            TypeError,
            "PerContext shared_prior must be a bool, got 1",
        ),
        (
            {"policy": ucb, "max_keys": True},
            TypeError,
            "PerContext max_keys must be an int, got True",
        ),
        ({"policy": ucb, "max_keys": 0}, ConfigError, "PerContext max_keys must be >= 1, got 0"),
    ]
    for kwargs, kind, message in cases:
        with pytest.raises(kind) as info:
            PerContext(**kwargs)
        assert str(info.value) == message
    assert PerContext(policy=ucb, max_keys=1).max_keys == 1
    defaults = PerContext(policy=ucb)
    assert (defaults.shared_prior, defaults.max_keys) == (True, 10_000)


def test_per_context_keeps_the_most_recent_keys_and_a_shared_prior() -> None:
    policy = PerContext(policy=UCB1(), max_keys=2, seed=0)
    for key in ("x", "y", "x", "z"):
        decision = policy.select(ctx(A, key=key))
        policy.update(decision, 0.5)
    assert policy.keys == ["x", "z"]
    shared = policy.shared
    assert isinstance(shared, UCB1)
    assert shared.counts == {"a": 4}
    x = policy.learner("x")
    assert isinstance(x, UCB1)
    assert x.counts == {"a": 2}
    # A new key starts from the shared learner's state.
    policy.select(ctx(A, key="w"))
    w = policy.learner("w")
    assert isinstance(w, UCB1)
    assert w.counts == {"a": 4}
    assert policy.learner(None) is None
    policy.update(policy.select(ctx(A)), 1.0)
    default = policy.learner(None)
    assert isinstance(default, UCB1)
    assert default.counts == {"a": 5}


def test_per_context_without_a_shared_prior_starts_keys_fresh() -> None:
    policy = PerContext(policy=UCB1(), shared_prior=False, seed=0)
    policy.update(policy.select(ctx(A, key="x")), 0.5)
    assert policy.shared is None
    policy.select(ctx(A, key="y"))
    y = policy.learner("y")
    assert isinstance(y, UCB1)
    assert y.counts == {}


def test_automaton_scores_state_and_exact_lock_threshold() -> None:
    policy = LearningAutomaton(learning_rate=0.5, lock_in=0.75, seed=0)
    policy.select(ctx(A, B))
    policy.update(over(A, A, B), 1.0)  # a reaches exactly 0.75
    assert policy.locked == "a"
    assert policy.state_dict()["state"]["locked"] == "a"
    decision = policy.select(ctx(B, A))
    assert decision.scores == (0.75, 0.25)
    loaded = LearningAutomaton(lock_in=0.75)
    state: dict[str, Any] = {"probabilities": {"a": 0.75, "b": 0.25}, "locked": "a"}
    loaded.load_state_dict({**loaded.state_dict(), "state": state})
    assert loaded.locked == "a"
    uniform = LearningAutomaton(lock_in=None, seed=0)
    state = {"probabilities": {"a": 1.0, "b": 0.0, "c": 0.0}, "locked": None}
    uniform.load_state_dict({**uniform.state_dict(), "state": state})
    assert uniform.select(ctx(B, C)).scores == (0.0, 0.0)


# ================================================================ Policy base
@pytest.mark.parametrize("bit_generator", [np.random.MT19937, np.random.Philox, np.random.SFC64])
def test_state_dict_is_json_ready_for_any_bit_generator(
    bit_generator: type[np.random.BitGenerator],
) -> None:
    # Regression: these generators keep numpy arrays in their state, which state_dict()
    # returned as is (json.dumps failed).
    policy = EpsilonGreedyQ(seed=np.random.Generator(bit_generator(0)))
    for _ in range(5):
        policy.update(policy.select(ctx(A, B)), 1.0)
    state = json.loads(json.dumps(policy.state_dict()))
    other = EpsilonGreedyQ(seed=np.random.Generator(bit_generator(1)))
    other.load_state_dict(state)
    picks = [policy.select(ctx(A, B)).candidate.name for _ in range(30)]
    assert [other.select(ctx(A, B)).candidate.name for _ in range(30)] == picks


def test_saved_states_refuse_an_empty_candidate_name() -> None:
    state = EpsilonGreedyQ().state_dict()
    state["state"]["q_values"] = {"": 0.5}
    with pytest.raises(StateError) as info:
        EpsilonGreedyQ().load_state_dict(state)
    assert str(info.value) == (
        "state of policy 'epsilon_greedy_q': q_values must be a mapping keyed by candidate "
        "names, got {'': 0.5}"
    )


def test_decision_ids_are_128_bits_in_hex() -> None:
    ids = {UCB1().select(ctx(A, B)).decision_id for _ in range(50)}
    assert len(ids) == 50
    for did in ids:
        assert len(did) == 32
        int(did, 16)  # hexadecimal


def test_select_without_candidates_and_update_with_a_bad_reward_say_why() -> None:
    policy = UCB1()
    with pytest.raises(NoCandidateError) as no_candidate:
        policy.select(Context())
    assert str(no_candidate.value) == (
        "select() needs at least one candidate in context.candidates, got none"
    )
    decision = policy.select(ctx(A, B))
    with pytest.raises(ConfigError) as out_of_range:
        policy.update(decision, 1.5)
    assert str(out_of_range.value) == (
        "Policy.update reward must be a finite number in [0, 1], got 1.5"
    )
    with pytest.raises(TypeError) as not_a_number:
        policy.update(decision, "1")  # type: ignore[arg-type]
    assert str(not_a_number.value) == "Policy.update reward must be a number, got '1'"


def test_per_context_state_messages_name_the_policy_and_the_field() -> None:
    shared = PerContext(policy=UCB1(), seed=0)
    shared.update(shared.select(ctx(A, key="x")), 0.5)
    good = json.loads(json.dumps(shared.state_dict()))["state"]
    cases: list[tuple[PerContext, dict[str, Any], str]] = [
        (
            shared,
            {k: v for k, v in good.items() if k != "keys"},
            "state of policy 'per_context' has no 'keys' (it has ['default', 'global'])",
        ),
        (
            shared,
            {k: v for k, v in good.items() if k != "global"},
            "state of policy 'per_context' has no 'global' (it has ['default', 'keys'])",
        ),
        (
            shared,
            {k: v for k, v in good.items() if k != "default"},
            "state of policy 'per_context' has no 'default' (it has ['global', 'keys'])",
        ),
        (
            shared,
            {**good, "global": None},
            "state of policy 'per_context': a global learner is missing but shared_prior=True",
        ),
        (
            PerContext(policy=UCB1(), shared_prior=False, seed=0),
            good,
            "state of policy 'per_context': a global learner is present but shared_prior=False",
        ),
    ]
    for policy, state, message in cases:
        with pytest.raises(StateError) as info:
            policy.load_state_dict({**policy.state_dict(), "state": state})
        assert str(info.value) == message


def test_thompson_chance_of_two_is_the_normal_approximation_of_their_beta_draws() -> None:
    # Two Beta draws: the chance is Phi(gap of the means / sd of the difference), with the
    # Beta moments m = a / (a + b) and v = a b / ((a + b)^2 (a + b + 1)).
    def moments(a: float, b: float) -> tuple[float, float]:
        return a / (a + b), a * b / ((a + b) ** 2 * (a + b + 1.0))

    policy = ThompsonSampling(seed=0)
    ts_state(policy, alpha={"a": 3.0, "b": 1.0}, beta={"a": 1.0, "b": 1.0})
    (m_a, v_a), (m_b, v_b) = moments(3.0, 1.0), moments(1.0, 1.0)
    p_a = 0.5 * math.erfc(-(m_a - m_b) / math.sqrt(v_a + v_b) / math.sqrt(2.0))
    seen = {}
    for _ in range(40):
        d = policy.select(ctx(A, B))
        seen[d.candidate.name] = d.probability
    assert seen == {"a": pytest.approx(p_a, abs=1e-12), "b": pytest.approx(1.0 - p_a, abs=1e-12)}


def test_generator_states_are_written_with_builtin_types() -> None:
    # numpy's own bit generators hold ints and arrays; another BitGenerator may hold numpy
    # scalars or sequences, which json cannot write.
    from pickllm.policies.base import _jsonable

    value = {1: (np.int64(2), [np.float32(0.5), np.arange(2)]), "s": "t"}
    out = _jsonable(value)
    assert out == {"1": [2, [0.5, [0, 1]]], "s": "t"}
    assert [type(v) for v in out["1"][1]] == [float, list]
    assert type(out["1"][0]) is int
    assert json.loads(json.dumps(out)) == out
