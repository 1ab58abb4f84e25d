"""Every registered policy, and PerContext around every learning one, passes the suite."""

from __future__ import annotations

import pytest

from pickllm.learn import LearnedPolicy
from pickllm.policies import Choice, PerContext, Policy
from pickllm.registry import available_policies, policy_class
from pickllm.testing import PolicyCheck, check_policy, policy_checks, tiny_scorer_dir
from pickllm.types import Context, Decision, SeedLike


def _build(cls: type[Policy]) -> Policy:
    if cls is LearnedPolicy:
        # Its configuration must be JSON: the suite's scorer comes saved in a directory.
        return LearnedPolicy(scorer=tiny_scorer_dir())
    return cls(**cls._unit_test_params())


def _policies() -> list[Policy]:
    # Policies that tests define for themselves are found too; only the library's are checked.
    classes = [policy_class(name) for name in available_policies()]
    policies = [_build(cls) for cls in classes if cls.__module__.startswith("pickllm.")]
    learners = [p for p in policies if type(p).learning and not isinstance(p, PerContext)]
    wrapped: list[Policy] = [PerContext(policy=p) for p in learners]
    wrapped.append(PerContext(policy=learners[0], shared_prior=False, max_keys=2))
    return policies + wrapped


CHECKS = [check for policy in _policies() for check in policy_checks(policy)]


@pytest.mark.parametrize("check", CHECKS, ids=str)
def test_policy_conformance(check: PolicyCheck) -> None:
    check()


def test_every_builtin_policy_is_covered() -> None:
    names = {check.policy.name for check in CHECKS}
    assert names >= {
        "cheapest",
        "epsilon_greedy_q",
        "fixed",
        "learning_automaton",
        "lin_ucb",
        "linear_thompson",
        "per_context",
        "random",
        "thompson",
        "ucb1",
    }


def test_learning_policies_get_the_learning_checks() -> None:
    by_policy: dict[str, set[str]] = {}
    for check in CHECKS:
        by_policy.setdefault(str(check).rsplit("-", 1)[0], set()).add(check.name)
    assert "better_than_random" in by_policy["UCB1"]
    assert "arm_set_change" in by_policy["PerContext[ThompsonSampling]"]
    assert "better_than_random" not in by_policy["Fixed"]
    assert "better_than_random" not in by_policy["Random"]


class _Forgetful(Policy):
    """Claims to learn but always picks the first candidate.

    Args:
        seed: seed.

    Examples:
        >>> _Forgetful()
        _Forgetful(seed=None)
    """

    def _select(self, context: Context) -> Choice:
        return Choice(0, 1.0)

    def _update(self, decision: Decision, reward: float) -> None:
        pass


class _Undocumented(_Forgetful):
    pass


_Undocumented.__doc__ = None


def test_a_policy_that_does_not_learn_fails_better_than_random() -> None:
    checks = {c.name: c for c in policy_checks(_Forgetful(seed=0))}
    with pytest.raises(AssertionError, match=r"_Forgetful-better_than_random failed: mean reward"):
        checks["better_than_random"]()
    with pytest.raises(AssertionError, match=r"_Forgetful-arm_set_change failed"):
        checks["arm_set_change"]()
    checks["select_offered"]()
    checks["seeded_determinism"]()


def test_check_policy_raises_the_first_failing_check() -> None:
    with pytest.raises(AssertionError, match=r"_Undocumented-docstring failed: .* no docstring"):
        check_policy(_Undocumented(seed=0))


def test_a_mutable_default_is_caught() -> None:
    class Listy(_Forgetful):
        """A policy with a list default.

        Args:
            arms: arms.
            seed: seed.

        Examples:
            >>> Listy().arms
            []
        """

        def __init__(self, *, arms: list[str] = [], seed: SeedLike = None) -> None:  # noqa: B006
            super().__init__(seed=seed)
            self.arms = arms

    checks = {c.name: c for c in policy_checks(Listy(seed=0))}
    with pytest.raises(AssertionError, match="mutable default"):
        checks["init_params"]()
