"""Shared learning state: several routers (processes) learning as one.

``Router(..., store=RedisStore(url=..., name="my-app"))`` puts the router's learned policy
state, statistics, circuit breakers and spend in Redis; every router given a store of the
same name (in any process) learns as one. :class:`MemoryStore` does the same within one
process. See :mod:`pickllm.state.merge` for what is exact and what is eventually
consistent, and :mod:`pickllm.state.sync` for what happens when the store is down.
"""

from pickllm.state.redis_store import RedisStore
from pickllm.state.store import MemoryStore, StateStore
from pickllm.state.sync import SyncStatus

__all__ = ["MemoryStore", "RedisStore", "StateStore", "SyncStatus"]
