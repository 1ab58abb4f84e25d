"""A RouterQueryEngine whose PickLLMSelector learns which query engine answers best, offline.

Run it: ``python examples/llamaindex_router.py``. Two query engines answer questions about
capital cities: one over an up-to-date fact sheet, one over an outdated one (it still says
Bonn). Both describe themselves the same way, so an LLM selector could not tell them apart;
the PickLLMSelector learns it from feedback. The answers come from a small extractive
stand-in LLM (it returns the context sentence that best matches the question) and
``MockEmbedding``: nothing touches the network.

What it shows:

* ``PickLLMSelector`` as the ``selector`` of ``RouterQueryEngine``: each selection's reason
  names the policy and the probability;
* feedback by response (``selector.feedback(response, score)``), with the score from a
  reference-based evaluator of ``pickllm.evaluation``;
* the share of queries routed to the up-to-date engine rising as it learns;
* the selector's state saved and loaded.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from llama_index.core import Document, VectorStoreIndex
from llama_index.core.base.llms.types import CompletionResponse, CompletionResponseGen, LLMMetadata
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import CustomLLM, MockLLM
from llama_index.core.llms.callbacks import llm_completion_callback
from llama_index.core.query_engine import RouterQueryEngine
from llama_index.core.tools import QueryEngineTool

from llamaindex_pickllm import PickLLMSelector
from pickllm.evaluation import Contains

CURRENT = [
    "The capital of Germany is Berlin.",
    "The capital of Kazakhstan is Astana.",
    "The capital of Myanmar is Naypyidaw.",
]
OUTDATED = [
    "The capital of Germany is Bonn.",
    "The capital of Kazakhstan is Almaty.",
    "The capital of Myanmar is Yangon.",
]
QUESTIONS = {
    "What is the capital of Germany?": "Berlin",
    "What is the capital of Kazakhstan?": "Astana",
    "What is the capital of Myanmar?": "Naypyidaw",
}
_WORD = re.compile(r"[a-z]+")


class ExtractiveLLM(CustomLLM):
    """Stand-in LLM: answers with the context sentence sharing most words with the query."""

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name="extractive")

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        del formatted, kwargs  # the stand-in only reads the prompt
        context, _, query = prompt.rpartition("Query:")
        words = set(_WORD.findall(query.lower()))
        sentences = [s.strip() for s in re.split(r"(?<=\.)\s+", context) if s.strip()]
        best = max(sentences, key=lambda s: len(words & set(_WORD.findall(s.lower()))))
        return CompletionResponse(text=best.splitlines()[-1])

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        response = self.complete(prompt, formatted=formatted, **kwargs)

        def gen() -> CompletionResponseGen:
            yield CompletionResponse(text=response.text, delta=response.text)

        return gen()


def engine(name: str, facts: list[str]) -> QueryEngineTool:
    index = VectorStoreIndex.from_documents(
        [Document(text=fact) for fact in facts], embed_model=MockEmbedding(embed_dim=8)
    )
    return QueryEngineTool.from_defaults(
        index.as_query_engine(llm=ExtractiveLLM(), similarity_top_k=len(facts)),
        name=name,
        description="Facts about the capital cities of the world.",
    )


def main() -> dict[str, object]:
    selector = PickLLMSelector(policy="thompson", seed=0)
    router = RouterQueryEngine(
        selector=selector,
        query_engine_tools=[engine("outdated", OUTDATED), engine("current", CURRENT)],
        llm=MockLLM(),  # only for summarising multi-selections, which this policy never makes
    )
    right = Contains()
    picks: list[str] = []
    questions = list(QUESTIONS)
    for i in range(60):
        question = questions[i % len(questions)]
        response = router.query(question)
        assert response.metadata is not None
        selection = response.metadata["selector_result"].selections[0]
        picks.append(selection.choice)
        if i < 3:
            print(f"{question} -> {response} ({selection.reason})")
        score = right(question, str(response), reference=QUESTIONS[question])
        selector.feedback(response, score or 0.0)

    first, last = picks[:20].count("current"), picks[-20:].count("current")
    print(f"routed to the up-to-date engine: {first}/20 at first, {last}/20 at the end")
    for name, s in selector.stats().items():
        print(f"  {name:<9} scored selections {s.calls:>3}, mean score {s.mean_reward:.2f}")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "selector.json"
        selector.save(path)
        restored = PickLLMSelector.load(path)
    return {
        "current_first_20": first,
        "current_last_20": last,
        "mean_score": {name: s.mean_reward for name, s in selector.stats().items()},
        "restored_calls": {name: s.calls for name, s in restored.stats().items()},
    }


if __name__ == "__main__":
    main()
