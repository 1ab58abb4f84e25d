"""PickLLM: route every LLM call to the best model of a pool, and learn from each call."""

from pickllm._version import __version__
from pickllm.beliefs import Belief, Explanation
from pickllm.data import OutcomeTable, load_outcomes
from pickllm.engine import ExecutionResult, Executor, MemoryRecorder, Recorder, RetryConfig
from pickllm.errors import (
    ConfigError,
    DataError,
    ExecutionError,
    NoCandidateError,
    PickLLMError,
    StateError,
    UnknownDecisionError,
)
from pickllm.objective import Objective, PriceRange
from pickllm.policies import (
    UCB1,
    Cheapest,
    EpsilonGreedyQ,
    Fixed,
    LearningAutomaton,
    PerContext,
    Policy,
    Random,
    ThompsonSampling,
)
from pickllm.price_db import CatalogPrice, lookup_price
from pickllm.pricing import PriceTable, Usage, estimate_tokens, make_feedback
from pickllm.registry import available_policies, make_policy
from pickllm.router import CandidateStats, Router, StatsTable
from pickllm.types import Candidate, Context, Decision, Feedback, Plan

__all__ = [
    "UCB1",
    "Belief",
    "Candidate",
    "CandidateStats",
    "CatalogPrice",
    "Cheapest",
    "ConfigError",
    "Context",
    "DataError",
    "Decision",
    "EpsilonGreedyQ",
    "ExecutionError",
    "ExecutionResult",
    "Executor",
    "Explanation",
    "Feedback",
    "Fixed",
    "LearningAutomaton",
    "MemoryRecorder",
    "NoCandidateError",
    "Objective",
    "OutcomeTable",
    "PerContext",
    "PickLLMError",
    "Plan",
    "Policy",
    "PriceRange",
    "PriceTable",
    "Random",
    "Recorder",
    "RetryConfig",
    "Router",
    "StateError",
    "StatsTable",
    "ThompsonSampling",
    "UnknownDecisionError",
    "Usage",
    "__version__",
    "available_policies",
    "estimate_tokens",
    "load_outcomes",
    "lookup_price",
    "make_feedback",
    "make_policy",
]
