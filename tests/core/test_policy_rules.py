"""Policy base rules through ``select`` and ``update`` (float rewards): rankings, plans, state."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from pickllm.errors import ConfigError, StateError
from pickllm.policies import UCB1, Choice, EpsilonGreedyQ, Policy, Random
from pickllm.registry import make_policy
from pickllm.types import Candidate, Context, Decision

A = Candidate(name="a", input_price=1.0, output_price=2.0)
B = Candidate(name="b", input_price=0.5, output_price=1.0)
C = Candidate(name="c", input_price=3.0, output_price=6.0)


class Scripted(Policy):
    """Returns the choice it is given and keeps the rewards it gets (a test double)."""

    name = "test_rules_scripted"

    def __init__(self, *, seed: Any = None) -> None:
        super().__init__(seed=seed)
        self.choice = Choice(0, 1.0)
        self.rewards: list[tuple[str, float]] = []

    def _select(self, context: Context) -> Choice:
        return self.choice

    def _update(self, decision: Decision, reward: float) -> None:
        self.rewards.append((decision.candidate.name, reward))


def ctx(*cands: Candidate, key: str | None = None) -> Context:
    return Context(candidates=cands, key=key)


def test_a_single_candidate_is_its_own_ranking_with_a_float_score() -> None:
    policy = Scripted()
    policy.choice = Choice(0, 1.0, [np.float32(0.25)])  # type: ignore[list-item]
    d = policy.select(ctx(A, key="k"))
    assert d.ranking == (A,)
    assert d.scores == (0.25,)
    assert type(d.scores[0]) is float
    assert (d.key, d.policy, d.probability, d.plan) == ("k", "test_rules_scripted", 1.0, None)
    policy.choice = Choice(0, 1.0)
    assert policy.select(ctx(A)).scores is None


def test_without_scores_the_others_follow_in_offered_order() -> None:
    policy = Scripted()
    policy.choice = Choice(1, 0.5)
    d = policy.select(ctx(C, A, B))
    assert [c.name for c in d.ranking] == ["a", "c", "b"]
    assert d.scores is None
    assert d.probability == 0.5


def test_two_candidates_keep_their_scores_in_ranking_order() -> None:
    policy = Scripted()
    policy.choice = Choice(1, 1.0, [np.float64(0.1), 0.9])
    d = policy.select(ctx(A, B))
    assert [c.name for c in d.ranking] == ["b", "a"]
    assert d.scores == (0.9, 0.1)
    policy.choice = Choice(0, 1.0, [0.3, 0.7])
    d = policy.select(ctx(A, B))
    assert [c.name for c in d.ranking] == ["a", "b"]
    assert d.scores == (0.3, 0.7)


def test_larger_pools_rank_by_score_then_price() -> None:
    policy = Scripted()
    d_ = Candidate(name="d", input_price=0.1, output_price=0.1)
    policy.choice = Choice(2, 1.0, [0.5, 0.5, 0.0, 0.8])
    d = policy.select(ctx(C, A, B, d_))
    assert [c.name for c in d.ranking] == ["b", "d", "a", "c"]
    assert d.scores == (0.0, 0.8, 0.5, 0.5)
    assert all(type(s) is float for s in d.scores)


def test_a_plan_lists_its_members() -> None:
    policy = Scripted()
    policy.choice = Choice(0, 1.0, None, members=[0, 2], kind="ensemble")
    d = policy.select(ctx(A, B, C))
    assert d.plan is not None
    assert d.plan.kind == "ensemble"
    assert d.plan.members == (A, C)


def test_decision_ids_are_unique() -> None:
    policy = Scripted()
    ids = {policy.select(ctx(A)).decision_id for _ in range(100)}
    assert len(ids) == 100


@pytest.mark.parametrize("reward", [0.0, 1.0, 0.5])
def test_float_rewards_in_the_unit_interval_reach_the_hook(reward: float) -> None:
    policy = Scripted()
    d = policy.select(ctx(A, B))
    policy.update(d, reward)
    assert policy.rewards == [("a", reward)]


@pytest.mark.parametrize("reward", [1, np.float64(0.5)])
def test_other_numbers_are_converted(reward: Any) -> None:
    policy = Scripted()
    policy.update(policy.select(ctx(A)), reward)
    assert policy.rewards == [("a", float(reward))]
    assert type(policy.rewards[0][1]) is float


@pytest.mark.parametrize("reward", [-1e-9, 1.0000001, 2, np.float64(-0.5)])
def test_rewards_outside_the_unit_interval_are_refused(reward: Any) -> None:
    policy = Scripted()
    with pytest.raises(
        ConfigError,
        match=r"reward must be a finite number in \[0, 1\], got " + re.escape(repr(reward)),
    ):
        policy.update(policy.select(ctx(A)), reward)
    assert policy.rewards == []


def test_get_params_and_clone_with_a_generator_seed() -> None:
    policy = Random(seed=np.random.default_rng(7))
    assert policy.get_params() == {"seed": None}
    clone = policy.clone()
    assert [clone.select(ctx(A, B, C)).candidate.name for _ in range(20)] == [
        policy.select(ctx(A, B, C)).candidate.name for _ in range(20)
    ]
    assert policy.clone(seed=3).seed == 3
    assert UCB1(exploration=0.5).clone().exploration == 0.5


def test_load_state_dict_refuses_other_policies_and_malformed_states() -> None:
    policy = UCB1()
    with pytest.raises(StateError, match="state is for policy 'thompson', not 'ucb1'"):
        policy.load_state_dict({"policy": "thompson", "state": {}})
    with pytest.raises(StateError, match="state is for policy 'list', not 'ucb1'"):
        policy.load_state_dict([])  # type: ignore[arg-type]
    with pytest.raises(StateError, match="has no 'state' mapping"):
        policy.load_state_dict({"policy": "ucb1", "state": []})
    good = {"counts": {}, "means": {}, "total": 0}
    with pytest.raises(StateError, match="'rng' must be a mapping, got list"):
        policy.load_state_dict({"policy": "ucb1", "state": good, "rng": []})


def test_a_state_without_rng_keeps_the_generator() -> None:
    policy = EpsilonGreedyQ(epsilon=1.0, epsilon_decay=1.0, seed=1)
    twin = EpsilonGreedyQ(epsilon=1.0, epsilon_decay=1.0, seed=1)
    state = policy.state_dict()
    state.pop("rng")
    policy.load_state_dict(state)
    picks = [policy.select(ctx(A, B, C)).candidate.name for _ in range(10)]
    assert picks == [twin.select(ctx(A, B, C)).candidate.name for _ in range(10)]


def test_seeds_must_be_ints_or_generators() -> None:
    for bad in (True, 1.5, "1"):
        with pytest.raises(TypeError, match="seed must be an int, a numpy Generator or None"):
            UCB1(seed=bad)  # type: ignore[arg-type]


def test_make_policy_lists_the_known_names() -> None:
    with pytest.raises(ConfigError, match=r"unknown policy 'nope'; available: .*epsilon_greedy_q"):
        make_policy("nope")
    assert make_policy(" UCB1 ").name == "ucb1"


def test_repr_lists_the_hyperparameters() -> None:
    assert repr(UCB1(exploration=0.5, seed=2)) == "UCB1(exploration=0.5, seed=2)"
