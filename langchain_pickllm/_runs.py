"""Which LangChain runs enclose a model's run: how feedback reaches a call by a chain's id.

LangChain hands a chat model its own run id and its parent's, never the runs further up
(the chain's, the agent graph's). :class:`RunLineage` is a callback handler that notes,
for every run that starts, its parent, and forgets the run when it ends; so while a model
runs, every run enclosing it is known, however deep, and ``ChatPickLLM`` makes each one
an alias of the call's decision (``feedback(chain_run_id, score)``).

The handler is installed once per process, the first time a ``ChatPickLLM`` is built,
through langchain-core's configure hook (the mechanism of ``collect_runs`` and tracing):
from then on every callback manager LangChain configures carries it. It only keeps a
dictionary of the runs in progress (bounded), runs inline (never in a thread pool), and
reads no inputs or outputs.
"""

# The callbacks take LangChain's signatures; most of their arguments are not needed here.
# ruff: noqa: ARG002

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from langchain_core.callbacks import BaseCallbackHandler

if TYPE_CHECKING:
    from pickllm.engine import Engine

__all__ = ["RunLineage", "alias_runs", "install", "lineage"]

_MAX_RUNS = 100_000
"""Runs in progress remembered at most (the oldest are forgotten first): a bound for runs
that never report their end."""

_MAX_DEPTH = 1_000
"""Ancestors followed at most (a guard against a cycle in corrupted ids)."""


class RunLineage(BaseCallbackHandler):
    """Remembers the parent of every LangChain run in progress.

    Examples:
        >>> lineage_ = RunLineage()
        >>> chain, model = uuid.uuid4(), uuid.uuid4()
        >>> lineage_.on_chain_start({}, {}, run_id=chain)
        >>> lineage_.on_chat_model_start({}, [], run_id=model, parent_run_id=chain)
        >>> lineage_.ancestors(model) == [str(chain)]
        True
    """

    run_inline = True  # a dictionary update: never worth a thread-pool hop

    def __init__(self, max_runs: int = _MAX_RUNS) -> None:
        # UUID keys, as LangChain gives them: hashing one is cheaper than formatting it.
        self._parents: OrderedDict[uuid.UUID, uuid.UUID | None] = OrderedDict()
        self._max_runs = max_runs
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RunLineage(runs_in_progress={len(self._parents)})"

    # ------------------------------------------------------------------ queries
    def ancestors(
        self, run_id: uuid.UUID | str, parent_run_id: uuid.UUID | str | None = None
    ) -> list[str]:
        """The runs enclosing ``run_id``, innermost first (``parent_run_id`` if given first)."""
        found: list[uuid.UUID] = []
        with self._lock:
            if parent_run_id is not None:
                current = _as_uuid(parent_run_id)
            else:
                own = _as_uuid(run_id)
                current = None if own is None else self._parents.get(own)
            while current is not None and len(found) < _MAX_DEPTH and current not in found:
                found.append(current)
                current = self._parents.get(current)
        return [str(run) for run in found]

    # ------------------------------------------------------------------ bookkeeping
    def _start(self, run_id: uuid.UUID, parent_run_id: uuid.UUID | None) -> None:
        with self._lock:
            self._parents[run_id] = parent_run_id
            while len(self._parents) > self._max_runs:
                self._parents.popitem(last=False)

    def _end(self, run_id: uuid.UUID) -> None:
        with self._lock:
            self._parents.pop(run_id, None)

    # ------------------------------------------------------------------ callbacks
    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """A chain (or graph, or node) starts."""
        self._start(run_id, parent_run_id)

    def on_chat_model_start(
        self,
        serialized: dict[str, Any] | None,
        messages: Any,
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """A chat model starts."""
        self._start(run_id, parent_run_id)

    def on_llm_start(
        self,
        serialized: dict[str, Any] | None,
        prompts: Any,
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """A completion model starts."""
        self._start(run_id, parent_run_id)

    def on_tool_start(
        self,
        serialized: dict[str, Any] | None,
        input_str: Any,
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """A tool starts (a model may run inside it)."""
        self._start(run_id, parent_run_id)

    def on_retriever_start(
        self,
        serialized: dict[str, Any] | None,
        query: Any,
        *,
        run_id: uuid.UUID,
        parent_run_id: uuid.UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """A retriever starts."""
        self._start(run_id, parent_run_id)

    def on_chain_end(self, outputs: Any, *, run_id: uuid.UUID, **kwargs: Any) -> None:
        """A chain ends."""
        self._end(run_id)

    def on_chain_error(self, error: BaseException, *, run_id: uuid.UUID, **kwargs: Any) -> None:
        """A chain fails."""
        self._end(run_id)

    def on_llm_end(self, response: Any, *, run_id: uuid.UUID, **kwargs: Any) -> None:
        """A model ends."""
        self._end(run_id)

    def on_llm_error(self, error: BaseException, *, run_id: uuid.UUID, **kwargs: Any) -> None:
        """A model fails."""
        self._end(run_id)

    def on_tool_end(self, output: Any, *, run_id: uuid.UUID, **kwargs: Any) -> None:
        """A tool ends."""
        self._end(run_id)

    def on_tool_error(self, error: BaseException, *, run_id: uuid.UUID, **kwargs: Any) -> None:
        """A tool fails."""
        self._end(run_id)

    def on_retriever_end(self, documents: Any, *, run_id: uuid.UUID, **kwargs: Any) -> None:
        """A retriever ends."""
        self._end(run_id)

    def on_retriever_error(self, error: BaseException, *, run_id: uuid.UUID, **kwargs: Any) -> None:
        """A retriever fails."""
        self._end(run_id)


def _as_uuid(run_id: uuid.UUID | str) -> uuid.UUID | None:
    """``run_id`` as a UUID, or None if it is not one (a provider's message id)."""
    if isinstance(run_id, uuid.UUID):
        return run_id
    try:
        return uuid.UUID(str(run_id))
    except ValueError:
        return None


_installed: RunLineage | None = None
_install_lock = threading.Lock()


def install() -> RunLineage:
    """The process's :class:`RunLineage`, on every callback manager from now on (idempotent)."""
    global _installed  # noqa: PLW0603 - one handler per process, installed on first use
    with _install_lock:
        if _installed is None:
            from langchain_core.tracers.context import register_configure_hook

            handler = RunLineage()
            # A default value: every context (threads, tasks) sees the handler.
            var: ContextVar[RunLineage | None] = ContextVar("pickllm_run_lineage", default=handler)
            register_configure_hook(var, inheritable=True)
            _installed = handler
        return _installed


def lineage(run_id: uuid.UUID | str, parent_run_id: uuid.UUID | str | None = None) -> list[str]:
    """The runs enclosing ``run_id`` (innermost first), or [] before :func:`install`."""
    handler = _installed
    return [] if handler is None else handler.ancestors(run_id, parent_run_id)


def alias_runs(engine: Engine, run_id: Any, parent_run_id: Any, decision_id: str) -> None:
    """Let feedback find ``decision_id`` by the call's run id and every enclosing run's."""
    engine.alias(str(run_id), decision_id)
    for ancestor in lineage(run_id, parent_run_id):
        engine.alias(ancestor, decision_id)
