"""PickLLM: route every LLM call to the best model of a pool, and learn from each call."""

from pickllm._version import __version__
from pickllm.errors import (
    ConfigError,
    DataError,
    ExecutionError,
    NoCandidateError,
    PickLLMError,
    StateError,
    UnknownDecisionError,
)
from pickllm.executor import ExecutionResult, Executor, MemoryRecorder, Recorder, RetryConfig
from pickllm.objective import Objective, PriceRange
from pickllm.policies import Policy, available_policies, make_policy
from pickllm.pricing import PriceTable, Usage, estimate_tokens, make_feedback
from pickllm.router import CandidateStats, Router
from pickllm.types import Candidate, Context, Decision, Feedback, Plan

__all__ = [
    "Candidate",
    "CandidateStats",
    "ConfigError",
    "Context",
    "DataError",
    "Decision",
    "ExecutionError",
    "ExecutionResult",
    "Executor",
    "Feedback",
    "MemoryRecorder",
    "NoCandidateError",
    "Objective",
    "PickLLMError",
    "Plan",
    "Policy",
    "PriceRange",
    "PriceTable",
    "Recorder",
    "RetryConfig",
    "Router",
    "StateError",
    "UnknownDecisionError",
    "Usage",
    "__version__",
    "available_policies",
    "estimate_tokens",
    "make_feedback",
    "make_policy",
]
