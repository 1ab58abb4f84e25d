"""PickLLM for LlamaIndex: a routed, learning ``PickLLM`` LLM and ``PickLLMSelector``.

Install with ``pip install "pickllm[llamaindex]"``. The routing logic lives in
:mod:`pickllm`; this package only translates between LlamaIndex and it.
"""

try:
    import llama_index.core  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    msg = (
        "llamaindex_pickllm needs llama-index-core, which is not installed; install it "
        'with: pip install "pickllm[llamaindex]"'
    )
    raise ImportError(msg) from exc

from llamaindex_pickllm.evaluators import LlamaIndexEvaluator, evaluation_score
from llamaindex_pickllm.llm import PickLLM, PickLLMRouteEvent, TrackedCalls
from llamaindex_pickllm.replay import ReplayLLM
from llamaindex_pickllm.selector import PickLLMSelection, PickLLMSelector, choice_names

__all__ = [
    "LlamaIndexEvaluator",
    "PickLLM",
    "PickLLMRouteEvent",
    "PickLLMSelection",
    "PickLLMSelector",
    "ReplayLLM",
    "TrackedCalls",
    "choice_names",
    "evaluation_score",
]
