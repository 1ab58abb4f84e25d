"""The Redis store: routers in several processes learn as one (``pip install 'pickllm[redis]'``).

Keys (``<prefix>`` is ``key_prefix``, default ``pickllm``; the braces are a Redis Cluster
hash tag, so one namespace lives in one slot and its Lua script may touch all of it)::

    <prefix>:{<name>}:schema        JSON: format, schema version, policy and hyperparameters
    <prefix>:{<name>}:sums          hash: additive fields (policy evidence, statistics)
    <prefix>:{<name>}:seq           hash: writer id -> last batch applied (at most once)
    <prefix>:{<name>}:breakers      hash: model -> JSON [state, wall time, failures]
    <prefix>:{<name>}:spend:<n>     hash: the spend of budget period n (expires after 2 periods)
    <prefix>:{<name>}:policy        JSON: the state of a policy whose updates are replayed

Everything is JSON or plain hash fields (no pickle); no prompt text is stored (only model
names, context keys of the per-key budgets, numbers). One batch is one ``EVALSHA`` of a Lua
script (``HINCRBYFLOAT`` for every sum, applied at most once per writer and batch number);
a replayed policy's document is updated with ``WATCH``/``MULTI``/``EXEC``, retried when
another process wrote it in between.

Every call has a socket timeout (``socket_timeout_s``, default 0.1 s) and no client-side
retry, so a hung or absent Redis costs a sync at most that long; the router turns the
failure into a ``StoreWarning`` and keeps routing from its local copy.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from pickllm.errors import StateError, StoreUnavailableError
from pickllm.state.store import (
    Batch,
    BreakerEvent,
    NamespaceMissingError,
    PolicyUpdate,
    Shared,
    StateStore,
    _check_positive,
    check_schema,
    encode_document,
)

__all__ = ["RedisStore"]

_EXCHANGE = """
if redis.call('EXISTS', KEYS[5]) == 0 then return 0 end
local p = cjson.decode(ARGV[3])
local last = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if tonumber(ARGV[2]) > last then
  for f, v in pairs(p.sums) do redis.call('HINCRBYFLOAT', KEYS[1], f, v) end
  for f, v in pairs(p.spend) do redis.call('HINCRBYFLOAT', KEYS[4], f, v) end
  if p.ttl > 0 then redis.call('EXPIRE', KEYS[4], p.ttl) end
  for name, e in pairs(p.breakers) do
    local cur = redis.call('HGET', KEYS[3], name)
    if (not cur) or cjson.decode(cur)[2] < e[2] then
      redis.call('HSET', KEYS[3], name, cjson.encode(e))
    end
  end
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
end
-- One JSON string: parsing thousands of RESP items in Python is what would cost.
local function object(key)
  local flat = redis.call('HGETALL', key)
  local out = {}
  for i = 1, #flat, 2 do out[flat[i]] = flat[i + 1] end
  return out
end
return cjson.encode({object(KEYS[1]), object(KEYS[4]), object(KEYS[3])})
"""
_CAS_ATTEMPTS = 50


class RedisStore(StateStore):
    """Shared state in Redis: every router given a store of the same name learns as one.

    Args:
        url: the server, e.g. ``redis://localhost:6379/0`` (``rediss://`` for TLS);
            ignored when ``client`` is given.
        name: the namespace: one per router that several processes share.
        client: a ready ``redis.Redis`` client (its own timeouts apply) instead of ``url``.
        password: the server's password (also accepted in the URL).
        ssl: force TLS on or off (None: from the URL's scheme).
        socket_timeout_s: the timeout of every Redis call, connecting included.
        key_prefix: the first part of every key.
        client_options: more keyword arguments for ``redis.Redis.from_url`` (TLS
            certificates, ``username``, ...).
        **settings: the sync settings of :class:`~pickllm.state.store.StateStore`
            (``sync_interval_s``, ``sync_every``, ``max_queue``, ``warn_interval_s``,
            ``wall_clock``).

    Raises:
        ImportError: the ``redis`` client is not installed (``pip install 'pickllm[redis]'``).
        ConfigError: a setting is not allowed.

    Examples:
        Needs a Redis server (nothing is contacted until a router uses the store):

        >>> store = RedisStore(url="redis://localhost:6379/0", name="support-bot")
        >>> store.keys["sums"]
        'pickllm:{support-bot}:sums'
    """

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        *,
        name: str,
        client: Any = None,
        password: str | None = None,
        ssl: bool | None = None,
        socket_timeout_s: float = 0.1,
        key_prefix: str = "pickllm",
        client_options: Mapping[str, Any] | None = None,
        **settings: Any,
    ) -> None:
        super().__init__(name=name, **settings)
        try:
            self._redis = importlib.import_module("redis")
        except ImportError as exc:
            msg = (
                "RedisStore needs the redis client, which is not installed: "
                "pip install 'pickllm[redis]'"
            )
            raise ImportError(msg) from exc
        _check_positive("RedisStore", "socket_timeout_s", socket_timeout_s)
        self.url = url
        self.password = password
        self.ssl = ssl
        self.socket_timeout_s = socket_timeout_s
        self.key_prefix = key_prefix
        self.client_options = dict(client_options or {})
        self._client = client
        self._exchange_script: Any = None
        base = f"{key_prefix}:{{{name}}}"
        self.keys = {
            part: f"{base}:{part}" for part in ("schema", "sums", "seq", "breakers", "policy")
        }
        """The namespace's keys (the spend's are ``<base>:spend:<period>``)."""
        self._base = base

    # ------------------------------------------------------------------ client
    def _connect(self) -> Any:
        if self._client is None:
            from redis.backoff import NoBackoff
            from redis.retry import Retry

            options: dict[str, Any] = {
                "socket_timeout": self.socket_timeout_s,
                "socket_connect_timeout": self.socket_timeout_s,
                "retry": Retry(NoBackoff(), 0),
                "decode_responses": True,
            }
            if self.password is not None:
                options["password"] = self.password
            if self.ssl is not None:
                options["ssl"] = self.ssl
            options.update(self.client_options)
            self._client = self._redis.Redis.from_url(self.url, **options)
        return self._client

    def _call(self, what: str, action: Callable[[Any], Any]) -> Any:
        try:
            return action(self._connect())
        except self._redis.RedisError as exc:
            msg = f"Redis {what} failed: {type(exc).__name__}: {exc}"
            raise StoreUnavailableError(msg) from exc
        except OSError as exc:
            msg = f"Redis {what} failed: {type(exc).__name__}: {exc}"
            raise StoreUnavailableError(msg) from exc

    # ------------------------------------------------------------------ hooks
    def open(self, schema: Mapping[str, Any]) -> str:
        """Record or check the namespace's schema (see :meth:`StateStore.open`)."""
        key = self.keys["schema"]
        text = encode_document(schema)

        def run(client: Any) -> Any:
            pipe = client.pipeline(transaction=False)
            pipe.set(key, text, nx=True)
            pipe.get(key)
            return pipe.execute()[1]

        stored = _text(self._call("open", run))
        try:
            document = json.loads(stored)
        except (TypeError, json.JSONDecodeError) as exc:
            msg = f"Redis key {key!r} does not hold a PickLLM schema: {stored!r}"
            raise StateError(msg) from exc
        if not isinstance(document, dict):
            msg = f"Redis key {key!r} does not hold a PickLLM schema: {stored!r}"
            raise StateError(msg)
        check_schema(f"Redis key {key!r}", document, schema)
        return str(document.get("epoch", ""))

    def exchange(self, batch: Batch) -> Shared:
        """Apply a batch at most once; return the totals (see :meth:`StateStore.exchange`)."""
        spend_key = f"{self._base}:spend:{batch.spend_period}"
        payload = json.dumps(
            {
                # Numbers travel as text: Lua would round them to 14 digits.
                "sums": {k: repr(float(v)) for k, v in batch.sums.items()},
                "spend": {k: repr(float(v)) for k, v in batch.spend.items()},
                "ttl": 0 if batch.spend_ttl_s is None else max(1, round(batch.spend_ttl_s)),
                "breakers": {
                    name: [e.state, e.at, e.failures] for name, e in batch.breakers.items()
                },
            },
            allow_nan=False,
        )

        def run(client: Any) -> Any:
            if self._exchange_script is None:
                self._exchange_script = client.register_script(_EXCHANGE)
            keys = [self.keys[k] for k in ("sums", "seq", "breakers")]
            keys += [spend_key, self.keys["schema"]]
            return self._exchange_script(keys=keys, args=[batch.writer, batch.seq, payload])

        reply = self._call("exchange", run)
        if reply == 0:
            msg = f"Redis has no {self.keys['schema']!r}: it lost the namespace (a restart?)"
            raise NamespaceMissingError(msg)
        sums, spend, breakers = _objects(reply)
        return Shared(
            sums={k: float(v) for k, v in sums.items()},
            spend={k: float(v) for k, v in spend.items()},
            breakers={
                name: BreakerEvent(state, float(at), int(failures))
                for name, (state, at, failures) in ((n, json.loads(v)) for n, v in breakers.items())
            },
        )

    def read_policy(self) -> dict[str, Any] | None:
        """The shared policy document, or None."""
        text = self._call("read", lambda client: client.get(self.keys["policy"]))
        return None if text is None else dict(json.loads(_text(text)))

    def update_policy(self, update: PolicyUpdate) -> dict[str, Any]:
        """Replace the policy document by ``update(document)``, atomically."""
        key = self.keys["policy"]
        watch_error = self._redis.WatchError

        def run(client: Any) -> dict[str, Any]:
            for _ in range(_CAS_ATTEMPTS):
                with client.pipeline() as pipe:
                    try:
                        pipe.watch(key)
                        text = pipe.get(key)
                        current = None if text is None else json.loads(_text(text))
                        document = update(current)
                        pipe.multi()
                        pipe.set(key, encode_document(document))
                        pipe.execute()
                    except watch_error:
                        continue
                    return document
            msg = f"{_CAS_ATTEMPTS} writers got to {key!r} first"
            raise self._redis.RedisError(msg)

        result: dict[str, Any] = self._call("policy update", run)
        return result

    def clear(self) -> None:
        """Delete everything of this namespace."""

        def run(client: Any) -> None:
            keys = list(client.scan_iter(match=f"{self._base}:*", count=1000))
            if keys:
                client.delete(*keys)

        self._call("clear", run)

    def close(self) -> None:
        """Close the client's connections (they reopen if the store is used again)."""
        if self._client is not None:
            self._client.close()

    def __repr__(self) -> str:
        return f"RedisStore(name={self.name!r}, key_prefix={self.key_prefix!r})"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _objects(reply: Any) -> list[dict[str, str]]:
    """The script's JSON reply: three objects (an empty one may come as a list)."""
    return [dict(part) if part else {} for part in json.loads(_text(reply))]
