"""LangChain integration of PickLLM: ``ChatPickLLM`` routes every call and learns from it.

* :class:`ChatPickLLM`: a chat model over several chat models, routed per call.
* :class:`ReplayChatModel`: answers bundled benchmark prompts with recorded responses.
* :class:`LLMJudge` and the adapters in :mod:`langchain_pickllm.evaluators`: evaluators.
* :class:`FakeToolChatModel` (:mod:`langchain_pickllm.testing`): an offline model that can
  call tools, for tests and examples.
* :class:`PickLLMMiddleware` (:mod:`langchain_pickllm.middleware`): routes each model call
  of a ``create_agent`` agent; imported on first use (it needs the ``langchain`` package).

Needs the ``langchain`` extra: ``pip install "pickllm[langchain]"``.
"""

try:
    import langchain_core  # noqa: F401 - only checks that the extra is installed
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    msg = (
        "langchain_pickllm needs langchain-core, which is not installed; install the extra "
        'with: pip install "pickllm[langchain]"'
    )
    raise ImportError(msg) from exc

from typing import TYPE_CHECKING

from langchain_pickllm.chat_models import ChatPickLLM
from langchain_pickllm.evaluators import LLMJudge, from_langsmith, from_messages
from langchain_pickllm.replay import ReplayChatModel
from langchain_pickllm.testing import FakeToolChatModel

if TYPE_CHECKING:
    from langchain_pickllm.middleware import PickLLMMiddleware

__all__ = [
    "ChatPickLLM",
    "FakeToolChatModel",
    "LLMJudge",
    "PickLLMMiddleware",
    "ReplayChatModel",
    "from_langsmith",
    "from_messages",
]


def __getattr__(name: str) -> object:
    # The middleware needs langchain (agents, langgraph): imported only when asked for.
    if name == "PickLLMMiddleware":
        try:
            from langchain_pickllm.middleware import PickLLMMiddleware
        except ImportError as exc:  # pragma: no cover - depends on the environment
            msg = (
                "PickLLMMiddleware needs the langchain package (create_agent); install it "
                'with: pip install "pickllm[langchain]"'
            )
            raise ImportError(msg) from exc
        return PickLLMMiddleware
    msg = f"module 'langchain_pickllm' has no attribute {name!r}"
    raise AttributeError(msg)
