"""Recorded LLM outcomes: the bundled data sets and a loader for your own.

Bundled (see ``SOURCES.md`` in this folder for origin and licences):

* ``routerbench_subset``: 11 LLMs on 3,150 ARC-Challenge, MBPP and Winogrande prompts from
  RouterBench, with the real dollar cost and response text of every call (the default).
* ``llmrouter_9llm``: 9 open LLMs on 5,989 prompts of 14 tasks from LLMRouter, with a price
  table; costs are estimated from it.
"""

from pickllm.data.loader import (
    DEFAULT_OUTPUT_TOKENS,
    FALLBACK_OUTPUT_TOKENS,
    CostUnavailableWarning,
    PriceTableLike,
    as_price_table,
    available_datasets,
    bundled_prices,
    load_outcomes,
)
from pickllm.data.table import OutcomeTable

__all__ = [
    "DEFAULT_OUTPUT_TOKENS",
    "FALLBACK_OUTPUT_TOKENS",
    "CostUnavailableWarning",
    "OutcomeTable",
    "PriceTableLike",
    "as_price_table",
    "available_datasets",
    "bundled_prices",
    "load_outcomes",
]
