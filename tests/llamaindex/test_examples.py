"""The LlamaIndex examples run offline, in-process, and do what they say."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_main(name: str) -> Any:
    return runpy.run_path(str(EXAMPLES / name))["main"]()


def test_rag_example() -> None:
    result = run_main("llamaindex_rag.py")
    assert sum(result["calls"].values()) == 22  # 20 rated queries, 1 streamed, 1 async
    assert result["restored_calls"] == result["calls"]
    assert result["mean_reward"]["large"] > result["mean_reward"]["small"]
    assert result["streamed"].startswith("text")


# FunctionAgent construction reads deprecated pydantic attributes inside llama-index-workflows.
@pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecationWarning")
def test_agent_example() -> None:
    result = run_main("llamaindex_agent.py")
    assert [a.rsplit(" ", 1)[-1] for a in result["answers"]] == ["5.", "42."]
    assert result["predict_and_call"] == "42"
    assert result["mixed_served_by"] == ["tools"] * 5
    assert result["mixed_is_function_calling"] is False


def test_router_example() -> None:
    result = run_main("llamaindex_router.py")
    assert result["current_last_20"] == 20
    assert result["mean_score"] == {"outdated": 0.0, "current": 1.0}
    assert sum(result["restored_calls"].values()) == 60
