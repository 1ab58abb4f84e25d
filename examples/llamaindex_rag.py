"""A RAG pipeline answering through PickLLM, offline.

Run it: ``python examples/llamaindex_rag.py``. The two candidate "models" are LlamaIndex
mocks (``MockLLM``) standing in for a small and a large LLM with real-world prices; the
embeddings are ``MockEmbedding``. Nothing touches the network.

What it shows:

* a ``VectorStoreIndex`` query engine whose every LLM call is routed by PickLLM (sync,
  streaming and async queries);
* where the routing facts are: the LLM response's ``additional_kwargs["pickllm"]``,
  here seen through ``llm.track()``, which collects the decisions of one query;
* delayed feedback: a (simulated) user rates each answer afterwards and
  ``llm.feedback(calls, score)`` joins the rating to the calls of that query;
* the learned state saved to JSON and loaded back.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from llama_index.core import Document, VectorStoreIndex
from llama_index.core.base.response.schema import StreamingResponse
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import MockLLM

from llamaindex_pickllm import PickLLM

DOCUMENTS = [
    Document(text="Paris is the capital of France. It lies on the Seine."),
    Document(text="Berlin is the capital of Germany. It lies on the Spree."),
    Document(text="Madrid is the capital of Spain. It lies on the Manzanares."),
]
QUESTIONS = [
    "What is the capital of France?",
    "Which river flows through Berlin?",
    "What is the capital of Spain?",
]
# USD per 1M (input, output) tokens, as a provider's price list would give them.
PRICES = {"small": (0.15, 0.6), "large": (2.5, 10.0)}


def rating(answer: str) -> float:
    """The simulated user: wants complete answers, so rates long answers higher."""
    return min(len(answer.split()) / 12, 1.0)


def main() -> dict[str, object]:
    llm = PickLLM(
        # MockLLM(max_tokens=n) answers with n words: the "small" model answers tersely.
        models={"small": MockLLM(max_tokens=4), "large": MockLLM(max_tokens=12)},
        prices=PRICES,
        policy="thompson",
        quality=1.0,
        cost=0.3,
        latency=0.0,
        seed=0,
        await_feedback=True,  # the rating comes after the answer
    )
    index = VectorStoreIndex.from_documents(DOCUMENTS, embed_model=MockEmbedding(embed_dim=8))
    engine = index.as_query_engine(llm=llm)

    for round_ in range(20):
        question = QUESTIONS[round_ % len(QUESTIONS)]
        with llm.track() as calls:
            answer = str(engine.query(question))
        llm.feedback(calls, rating(answer))

    streaming = index.as_query_engine(llm=llm, streaming=True)
    with llm.track() as calls:
        stream = streaming.query(QUESTIONS[0])
        assert isinstance(stream, StreamingResponse)
        streamed = "".join(stream.response_gen)
    llm.feedback(calls, rating(streamed))

    async def ask() -> str:
        with llm.track() as async_calls:
            response = await engine.aquery(QUESTIONS[1])
        llm.feedback(async_calls, rating(str(response)))
        return str(response)

    asked = asyncio.run(ask())

    print(f"{'model':<8}{'calls':>6}{'mean reward':>13}{'cost USD':>12}")
    for name, s in llm.stats().items():
        print(f"{name:<8}{s.calls:>6}{s.mean_reward:>13.3f}{s.total_cost_usd:>12.2e}")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pickllm-rag.json"
        llm.save(path)
        restored = PickLLM.load(
            path, {"small": MockLLM(max_tokens=4), "large": MockLLM(max_tokens=12)}
        )
    stats = llm.stats()
    return {
        "calls": {name: s.calls for name, s in stats.items()},
        "mean_reward": {name: s.mean_reward for name, s in stats.items()},
        "streamed": streamed,
        "async_answer": asked,
        "restored_calls": {name: s.calls for name, s in restored.stats().items()},
    }


if __name__ == "__main__":
    main()
