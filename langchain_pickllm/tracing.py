"""What LangChain traces (LangSmith) show of a routing decision.

* :func:`decision_metadata`: the ``pickllm_*`` run-metadata keys of a decision (ids,
  model names, probability, policy; never prompt or answer text).
* :func:`annotate_run`: ``ChatPickLLM``'s own LLM run gets the chosen model's
  ``ls_provider``/``ls_model_name`` and the decision in its metadata.

LangChain fixes a chat model's run metadata (``_get_ls_params``) when the run starts,
before the messages are seen, so a router's run starts with its own name. The tracers
keep each run (``BaseTracer.run_map``) until it ends and send its metadata again with the
end of the run (LangChain's own tracer adds ``usage_metadata`` the same way): the
metadata written here during the call is what LangSmith shows once the run has ended.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.tracers.base import BaseTracer

from pickllm.types import Decision

__all__ = ["annotate_run", "decision_metadata"]


def decision_metadata(decision: Decision, served: str | None = None) -> dict[str, Any]:
    """The run-metadata keys of ``decision``, served by ``served`` (default: its choice).

    Examples:
        >>> from pickllm import Candidate
        >>> a = Candidate(name="a")
        >>> d = Decision(decision_id="d1", candidate=a, ranking=(a,), probability=0.5,
        ...              policy="thompson")
        >>> decision_metadata(d)["pickllm_model"], decision_metadata(d)["pickllm_probability"]
        ('a', 0.5)
    """
    return {
        "pickllm_decision_id": decision.decision_id,
        "pickllm_model": served or decision.candidate.name,
        "pickllm_chosen": decision.candidate.name,
        "pickllm_probability": decision.probability,
        "pickllm_policy": decision.policy,
        "pickllm_plan": decision.kind,
    }


def annotate_run(run_manager: Any, ls_params: Mapping[str, str], info: Mapping[str, Any]) -> int:
    """Write the served model and the decision into the metadata of ``run_manager``'s run.

    Args:
        run_manager: the LLM run's manager (None: nothing to annotate).
        ls_params: the served model's ``ls_provider``/``ls_model_name``.
        info: the routing facts (``Answer.info()``).

    Returns:
        How many tracers' runs were annotated.
    """
    if run_manager is None:
        return 0
    run_id = str(run_manager.run_id)
    metadata = {
        **ls_params,
        "pickllm_decision_id": info["decision_id"],
        "pickllm_model": info["model"],
        "pickllm_chosen": info["chosen"],
        "pickllm_probability": info["probability"],
        "pickllm_policy": info["policy"],
        "pickllm_plan": info["plan"],
    }
    done = 0
    for handler in getattr(run_manager, "handlers", ()):
        if not isinstance(handler, BaseTracer):
            continue
        run = handler.run_map.get(run_id)
        if run is None:
            continue
        run.extra.setdefault("metadata", {}).update(metadata)
        done += 1
    return done
