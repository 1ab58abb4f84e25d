"""The LangChain examples run offline, in-process, and do what they say."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_chain_example(capsys: pytest.CaptureFixture[str]) -> None:
    result = load("langchain_chain").main(n_questions=120)
    assert sum(result["calls"].values()) == 120
    # Routing answers nearly as well as always asking GPT-4, for a fraction of the cost.
    assert result["cost_usd"] < 0.5 * result["gpt4_cost_usd"]
    assert result["accuracy"] > 0.6
    assert "always GPT-4" in capsys.readouterr().out


def test_agent_example(capsys: pytest.CaptureFixture[str]) -> None:
    result = load("langchain_agent").main()
    assert result["answer"] == result["async_answer"] == "The tool said: 6"
    assert result["steps"][0].endswith("calls add")
    assert result["tokens"] == ["The ", "tool ", "said: ", "6"]
    assert result["calls"]["gpt-4-1106-preview"] == 0  # cannot call tools
    assert "usage by model" in capsys.readouterr().out


def test_delayed_feedback_example(capsys: pytest.CaptureFixture[str]) -> None:
    result = load("langchain_delayed_feedback").main(n_questions=40)
    assert result["user"]["rated"] == 40
    assert result["user"]["by_run_id"] == 20
    assert result["background"] == {"scored": 40, "errors": 0}
    assert "background evaluator" in capsys.readouterr().out
