"""Routing policies: one module per algorithm, all behind :class:`Policy`.

``pickllm.make_policy`` (:mod:`pickllm.registry`) builds any of them by its ``name``.
"""

from pickllm.policies.base import Choice, Policy
from pickllm.policies.cheapest import Cheapest
from pickllm.policies.epsilon_greedy_q import EpsilonGreedyQ
from pickllm.policies.fixed import Fixed
from pickllm.policies.learning_automaton import LearningAutomaton
from pickllm.policies.lin_ucb import LinUCB
from pickllm.policies.linear_thompson import LinearThompson
from pickllm.policies.per_context import PerContext
from pickllm.policies.thompson_sampling import ThompsonSampling
from pickllm.policies.ucb1 import UCB1
from pickllm.policies.uniform_random import Random

__all__ = [
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
