"""PerContext under key churn: bounded, least recently used out, new keys start from the prior."""

from __future__ import annotations

import pytest

from pickllm.policies import PerContext
from pickllm.policies.learning_automaton import LearningAutomaton
from pickllm.types import Candidate, Context

POOL = (Candidate(name="a"), Candidate(name="b"), Candidate(name="c"))


def _touch(policy: PerContext, key: str, reward: float = 1.0) -> str:
    decision = policy.select(Context(candidates=POOL, key=key))
    policy.update(decision, reward)
    return decision.candidate.name


@pytest.mark.parametrize("shared_prior", [True, False])
def test_the_count_stays_at_max_keys_and_the_least_recently_used_key_goes(
    shared_prior: bool,
) -> None:
    policy = PerContext(policy=LearningAutomaton(), shared_prior=shared_prior, max_keys=3, seed=0)
    for key in ("k0", "k1", "k2"):
        _touch(policy, key)
    _touch(policy, "k0")  # k1 is now the least recently used
    _touch(policy, "k3")
    assert policy.keys == ["k2", "k0", "k3"]
    for i in range(4, 50):
        _touch(policy, f"k{i}")
        assert len(policy.keys) == 3
    assert policy.keys == ["k47", "k48", "k49"]


@pytest.mark.parametrize("shared_prior", [True, False])
def test_a_key_that_takes_an_evicted_learner_starts_from_the_prior(shared_prior: bool) -> None:
    policy = PerContext(policy=LearningAutomaton(), shared_prior=shared_prior, max_keys=2, seed=0)
    for _ in range(30):
        _touch(policy, "old", reward=1.0)
    _touch(policy, "other")
    evicted = policy.learner("old")
    assert evicted is not None
    learned = evicted.state_dict()["state"]
    prior = policy.shared if policy.shared is not None else LearningAutomaton()
    reference = LearningAutomaton()
    reference.load_state_dict(prior.state_dict())
    context = Context(candidates=POOL, key="new")
    reference.select(context)
    assert policy.select(context).key == "new"  # evicts "old"
    assert "old" not in policy.keys
    fresh = policy.learner("new")
    assert fresh is not None
    assert fresh.state_dict()["state"] == reference.state_dict()["state"]
    assert fresh.state_dict()["state"] != learned


def test_churn_is_reproducible_from_the_seed() -> None:
    def run() -> list[str]:
        policy = PerContext(policy=LearningAutomaton(), max_keys=5, seed=3)
        return [_touch(policy, f"u{i % 17}", reward=float(i % 3 == 0)) for i in range(300)]

    assert run() == run()
