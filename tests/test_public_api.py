"""The top-level public surface of ``pickllm`` is pinned: a change here is a deliberate one."""

from __future__ import annotations

import subprocess
import sys

import pickllm

EXPECTED_ALL = [
    "Belief",
    "Explanation",
    "StatsTable",
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
    "ThompsonSampling",
    "UCB1",
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


def test_all_is_pinned() -> None:
    assert sorted(pickllm.__all__) == sorted(EXPECTED_ALL)
    for name in pickllm.__all__:
        assert hasattr(pickllm, name), name


def test_errors_inherit_the_builtin_they_refine() -> None:
    assert issubclass(pickllm.ConfigError, ValueError)
    assert issubclass(pickllm.StateError, ValueError)
    assert issubclass(pickllm.DataError, ValueError)
    assert issubclass(pickllm.NoCandidateError, LookupError)
    assert issubclass(pickllm.UnknownDecisionError, KeyError)
    assert issubclass(pickllm.ExecutionError, RuntimeError)
    for err in (pickllm.ConfigError, pickllm.StateError, pickllm.ExecutionError):
        assert issubclass(err, pickllm.PickLLMError)


def test_importing_pickllm_loads_no_framework_and_does_no_io() -> None:
    code = (
        "import sys, pickllm, pickllm.learn, pickllm.bench;"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('langchain_core', 'llama_index', 'matplotlib', 'langchain', 'genai_prices')];"
        "print(','.join(bad))"
    )
    out = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""
