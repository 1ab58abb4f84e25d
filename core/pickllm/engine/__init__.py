"""The call path: route, execute (attempt state machines and plans), evaluate, record.

* :mod:`~pickllm.engine.attempts`: error classification, waits, and the actions of a run.
* :mod:`~pickllm.engine.plans`: single, ensemble, cascade and stream as I/O-free machines.
* :mod:`~pickllm.engine.drivers`: the sync and async drivers that perform the actions.
* :mod:`~pickllm.engine.executor`: :class:`Executor`, a plan and a driver for one decision.
* :mod:`~pickllm.engine.engine`: :class:`Engine`, the whole routed call the wrappers use.
* :mod:`~pickllm.engine.settings`: :class:`RoutingSettings`, the wrappers' shared vocabulary.
* :mod:`~pickllm.engine.tracking`: :class:`Tracker`, the decisions of a ``track()`` block.
"""

from pickllm.engine.attempts import (
    DEFAULT_FATAL_NAMES,
    DEFAULT_RETRY_ON_NAMES,
    ErrorKind,
    RetryConfig,
)
from pickllm.engine.engine import Answer, Calls, Engine, Request
from pickllm.engine.executor import Executor
from pickllm.engine.plans import ExecutionResult, MemoryRecorder, Recorder
from pickllm.engine.settings import RoutingSettings
from pickllm.engine.tracking import Tracker, Tracking

__all__ = [
    "DEFAULT_FATAL_NAMES",
    "DEFAULT_RETRY_ON_NAMES",
    "Answer",
    "Calls",
    "Engine",
    "ErrorKind",
    "ExecutionResult",
    "Executor",
    "MemoryRecorder",
    "Recorder",
    "Request",
    "RetryConfig",
    "RoutingSettings",
    "Tracker",
    "Tracking",
]
