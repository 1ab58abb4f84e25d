"""langchain-tests standard suites for ChatPickLLM over tool-calling fake chat models.

Skips (each holds for any router over any models; see the closing notes of issue #4):
langchain-tests skips them itself unless the class claims the feature.
"""

from __future__ import annotations

from typing import Any

from langchain_tests.integration_tests import ChatModelIntegrationTests
from langchain_tests.unit_tests import ChatModelUnitTests

from langchain_pickllm import ChatPickLLM, FakeToolChatModel


class _Params:
    @property
    def chat_model_class(self) -> type[ChatPickLLM]:
        return ChatPickLLM

    @property
    def chat_model_params(self) -> dict[str, Any]:
        # A property, so every test gets fresh children.
        return {
            "model": "pickllm-test",
            "models": {
                "small": FakeToolChatModel(
                    model="small-fake", answer="Hello from the small model."
                ),
                "large": FakeToolChatModel(
                    model="large-fake", answer="Hello from the large model."
                ),
            },
            "prices": {"small": (0.1, 0.4), "large": (2.5, 10.0)},
            "policy": "epsilon_greedy_q",
            "seed": 0,
        }


class TestChatPickLLMUnit(_Params, ChatModelUnitTests):
    pass


class TestChatPickLLMIntegration(_Params, ChatModelIntegrationTests):
    @property
    def supports_model_override(self) -> bool:
        return True

    @property
    def model_override_value(self) -> str:
        return "large"
