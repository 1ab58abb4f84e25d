"""Prices, token usage and the feedback of one call.

A call's cost is ``(input_tokens * input_price + output_tokens * output_price) / 1e6`` with
prices in USD per 1M tokens, as :meth:`pickllm.Candidate.price_of` computes it. Providers
usually report the token counts; when one does not, :func:`make_feedback` estimates them
from the texts with :func:`estimate_tokens` and marks the feedback ``tokens_estimated=True``
so that reports can tell measured costs from estimated ones.

Prices come from code (:class:`PriceTable` is a mapping) or from a file
(:meth:`PriceTable.from_file`), CSV or JSON::

    model,input_price_usd_per_mtok,output_price_usd_per_mtok
    gpt-4o,2.5,10
    gpt-4o-mini,0.15,0.6

    {"gpt-4o": {"input": 2.5, "output": 10}, "gpt-4o-mini": {"input": 0.15, "output": 0.6}}
"""

from __future__ import annotations

import csv
import json
import logging
import math
import numbers
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from pickllm.errors import ConfigError, ConfigTypeError, DataError
from pickllm.types import Candidate, Feedback, check_count

logger = logging.getLogger(__name__)

__all__ = [
    "CHARS_PER_TOKEN",
    "PriceTable",
    "Usage",
    "estimate_tokens",
    "make_feedback",
]

CHARS_PER_TOKEN = 4
"""Characters per token of the estimate: the usual rule of thumb for English text with
BPE tokenizers (GPT, Claude, Llama). Code and non-Latin scripts use more tokens per
character, so estimates for them are low."""

_CSV_COLUMNS = ("model", "input_price_usd_per_mtok", "output_price_usd_per_mtok")


def estimate_tokens(text: str) -> int:
    """Estimate the number of tokens of ``text``: ``ceil(len(text) / 4)``.

    Used only when a provider reports no usage. It is 0 for the empty string and at
    least 1 for any non-empty text.

    Examples:
        >>> estimate_tokens(""), estimate_tokens("Hi"), estimate_tokens("What is 2 + 2?")
        (0, 1, 4)
    """
    return -(-len(text) // CHARS_PER_TOKEN)


@dataclass(frozen=True, slots=True)
class Usage:
    """What a provider reported about one call; None marks what it did not report.

    Args:
        input_tokens: prompt tokens, or None if not reported (then estimated).
        output_tokens: completion tokens, or None if not reported (then estimated).
        cost_usd: the call's cost if the provider reports it; None computes it from the
            candidate's prices. A NaN or infinite cost is kept as reported (the call it
            came with must not fail) and ``make_feedback`` ignores it, with a warning.

    Raises:
        ConfigTypeError: a token count is not an int, or the cost is not a number.
        ConfigError: a token count or the cost is negative (or a count above 2**53).

    Examples:
        >>> Usage(input_tokens=120, output_tokens=30)
        Usage(input_tokens=120, output_tokens=30, cost_usd=None)
        >>> Usage().input_tokens is None
        True
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None

    def __post_init__(self) -> None:
        check_count("Usage", "input_tokens", self.input_tokens, optional=True)
        check_count("Usage", "output_tokens", self.output_tokens, optional=True)
        cost = self.cost_usd
        if cost is None:
            return
        if isinstance(cost, bool) or not isinstance(cost, numbers.Real):
            msg = f"Usage cost_usd must be a number or None, got {cost!r}"
            raise ConfigTypeError(msg)
        if cost < 0.0:
            msg = f"Usage cost_usd must be a number >= 0 or None, got {cost!r}"
            raise ConfigError(msg)
        # NaN and +inf pass: a provider's unusable cost must not fail the call that
        # reported it; make_feedback ignores it (with a warning) and prices the tokens.


def make_feedback(
    candidate: Candidate,
    usage: Usage,
    *,
    latency_s: float,
    prompt_text: str = "",
    completion_text: str = "",
    quality: float | None = None,
    error: str | None = None,
    time_to_first_token_s: float | None = None,
    error_kind: str | None = None,
) -> Feedback:
    """The feedback of one call of ``candidate``.

    Token counts missing from ``usage`` are estimated from ``prompt_text`` and
    ``completion_text`` (and the feedback says ``tokens_estimated=True``); a missing cost
    is computed from the candidate's prices and the (reported or estimated) tokens. A
    reported cost that is not finite (NaN, infinity) is ignored with a warning that names
    the model and the value (never the texts), and the price-based cost is used.

    Args:
        candidate: the model that served the call; its name goes into the feedback.
        usage: what the provider reported.
        latency_s: wall time of the call in seconds.
        prompt_text: the prompt, to estimate input tokens when not reported.
        completion_text: the answer, to estimate output tokens when not reported.
        quality: the answer's quality in [0, 1], if already known.
        error: the error's class name if the call failed.
        time_to_first_token_s: for streamed calls, the time to the first chunk.
        error_kind: how the error was classified (see ``Feedback.error_kind``).

    Returns:
        The feedback, with ``candidate`` set to ``candidate.name``.

    Examples:
        >>> gpt = Candidate(name="gpt-4o", input_price=2.5, output_price=10.0)
        >>> fb = make_feedback(gpt, Usage(input_tokens=1000, output_tokens=200), latency_s=0.5)
        >>> fb.cost_usd, fb.tokens_estimated
        (0.0045, False)
        >>> fb = make_feedback(gpt, Usage(), latency_s=0.5, prompt_text="x" * 4000,
        ...                    completion_text="y" * 800)
        >>> fb.input_tokens, fb.output_tokens, fb.cost_usd, fb.tokens_estimated
        (1000, 200, 0.0045, True)
    """
    estimated = False
    input_tokens = usage.input_tokens
    if input_tokens is None:
        input_tokens = estimate_tokens(prompt_text)
        estimated = True
    output_tokens = usage.output_tokens
    if output_tokens is None:
        output_tokens = estimate_tokens(completion_text)
        estimated = True
    cost = usage.cost_usd
    if cost is not None and not math.isfinite(cost):
        logger.warning(
            "model %r reported a cost of %r USD; ignored, the cost is computed from its prices",
            candidate.name,
            cost,
        )
        cost = None
    if cost is None:
        # Huge prices times huge counts may overflow: the cost saturates, it never is inf.
        cost = min(candidate.price_of(input_tokens, output_tokens), sys.float_info.max)
    return Feedback(
        latency_s=latency_s,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cost_usd=float(cost),
        quality=quality,
        error=error,
        tokens_estimated=estimated,
        time_to_first_token_s=time_to_first_token_s,
        candidate=candidate.name,
        error_kind=error_kind,
    )


def _price_value(value: object) -> float | None:
    """``value`` as a price (finite float >= 0), or None if it is not one."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    price = float(value)
    if not math.isfinite(price) or price < 0.0:
        return None
    return price


class PriceTable(Mapping[str, tuple[float, float]]):
    """Prices per model: name -> (input, output) USD per 1M tokens.

    A read-only mapping; build candidates from it with :meth:`candidate`, or load it from
    a CSV or JSON file with :meth:`from_file`.

    Args:
        prices: model name -> ``(input_price, output_price)`` in USD per 1M tokens.

    Raises:
        ConfigError: a name is empty or a price is not a finite number >= 0.

    Examples:
        >>> table = PriceTable({"gpt-4o": (2.5, 10.0), "gpt-4o-mini": (0.15, 0.6)})
        >>> table.price("gpt-4o-mini")
        (0.15, 0.6)
        >>> "gpt-4o" in table, len(table)
        (True, 2)
        >>> table.candidate("gpt-4o", tool_calling=True)
        Candidate(name='gpt-4o', input_price=2.5, output_price=10.0, tool_calling=True, structured_output=None, max_context_tokens=None)
    """  # noqa: E501

    __slots__ = ("_prices",)

    def __init__(self, prices: Mapping[str, tuple[float, float]] | None = None) -> None:
        if prices is not None and not isinstance(prices, Mapping):
            msg = f"PriceTable prices must be a mapping of name -> (input, output), got {prices!r}"
            raise ConfigTypeError(msg)
        table: dict[str, tuple[float, float]] = {}
        for name, pair in (prices or {}).items():
            if not isinstance(name, str) or not name:
                msg = f"PriceTable model names must be non-empty strings, got {name!r}"
                raise ConfigError(msg)
            if not isinstance(pair, tuple | list) or len(pair) != 2:
                msg = (
                    f"PriceTable price of {name!r} must be a pair (input, output) of USD "
                    f"per 1M tokens, got {pair!r}"
                )
                raise ConfigError(msg)
            input_price, output_price = _price_value(pair[0]), _price_value(pair[1])
            if input_price is None or output_price is None:
                msg = (
                    f"PriceTable prices of {name!r} must be finite numbers >= 0 (USD per 1M "
                    f"tokens), got {tuple(pair)!r}"
                )
                raise ConfigError(msg)
            table[name] = (input_price, output_price)
        self._prices = table

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> PriceTable:
        """Load prices from a ``.csv`` or ``.json`` file (see the module docstring).

        CSV needs the header ``model,input_price_usd_per_mtok,output_price_usd_per_mtok``
        (more columns are ignored, blank lines skipped); JSON is an object
        ``{name: {"input": x, "output": y}}``.

        Raises:
            ConfigError: the file's suffix is neither ``.csv`` nor ``.json``.
            DataError: the content is malformed; the message names the file and the line
                and column (CSV, JSON syntax) or the entry and field (JSON structure).
            OSError: the file cannot be read.
        """
        file = Path(path)
        suffix = file.suffix.lower()
        if suffix == ".csv":
            return cls(_read_csv(file))
        if suffix == ".json":
            return cls(_read_json(file))
        msg = f"price file {str(file)!r} must end in .csv or .json, got suffix {suffix!r}"
        raise ConfigError(msg)

    def price(self, name: str) -> tuple[float, float]:
        """``(input_price, output_price)`` of ``name`` in USD per 1M tokens.

        Raises:
            KeyError: the table has no price for ``name``.
        """
        try:
            return self._prices[name]
        except KeyError:
            known = ", ".join(sorted(self._prices)) or "none"
            msg = f"no price for model {name!r}; the table has: {known}"
            raise KeyError(msg) from None

    def candidate(
        self,
        name: str,
        *,
        tool_calling: bool | None = None,
        structured_output: bool | None = None,
        max_context_tokens: int | None = None,
    ) -> Candidate:
        """A :class:`Candidate` for ``name`` with its prices and the given capabilities.

        Raises:
            KeyError: the table has no price for ``name``.
        """
        input_price, output_price = self.price(name)
        return Candidate(
            name=name,
            input_price=input_price,
            output_price=output_price,
            tool_calling=tool_calling,
            structured_output=structured_output,
            max_context_tokens=max_context_tokens,
        )

    def candidates(self) -> tuple[Candidate, ...]:
        """One candidate per model of the table, in table order, without capabilities."""
        return tuple(self.candidate(name) for name in self._prices)

    def __getitem__(self, name: str) -> tuple[float, float]:
        return self.price(name)

    def __contains__(self, name: object) -> bool:
        return name in self._prices

    def __iter__(self) -> Iterator[str]:
        return iter(self._prices)

    def __len__(self) -> int:
        return len(self._prices)

    def __repr__(self) -> str:
        return f"PriceTable({self._prices!r})"


def _read_csv(file: Path) -> dict[str, tuple[float, float]]:
    where = str(file)
    prices: dict[str, tuple[float, float]] = {}
    with file.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            msg = f"{where}: the file is empty; expected the header {','.join(_CSV_COLUMNS)}"
            raise DataError(msg)
        names = [h.strip() for h in header]
        missing = [c for c in _CSV_COLUMNS if c not in names]
        if missing:
            msg = (
                f"{where}, line 1: missing column(s) {', '.join(missing)}; the header must "
                f"name {', '.join(_CSV_COLUMNS)}, got {','.join(names)!r}"
            )
            raise DataError(msg)
        index = {c: names.index(c) for c in _CSV_COLUMNS}
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            where_line = f"{where}, line {reader.line_num}"
            if len(row) != len(names):
                msg = f"{where_line}: expected {len(names)} columns, got {len(row)}"
                raise DataError(msg)
            name = row[index["model"]].strip()
            if not name or name in prices:
                problem = "the model name is empty" if not name else f"duplicate model {name!r}"
                msg = f"{where_line}, column 'model': {problem}"
                raise DataError(msg)
            prices[name] = (
                _csv_price(where_line, _CSV_COLUMNS[1], row[index[_CSV_COLUMNS[1]]]),
                _csv_price(where_line, _CSV_COLUMNS[2], row[index[_CSV_COLUMNS[2]]]),
            )
    return prices


def _csv_price(where_line: str, column: str, cell: str) -> float:
    raw = cell.strip()
    try:
        value = _price_value(float(raw))
    except ValueError:
        value = None
    if value is None:
        msg = (
            f"{where_line}, column {column!r}: expected a finite number >= 0 "
            f"(USD per 1M tokens), got {raw!r}"
        )
        raise DataError(msg)
    return value


def _read_json(file: Path) -> dict[str, tuple[float, float]]:
    where = str(file)

    def no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
        # json.loads keeps the last of duplicate keys silently; a price file that names a
        # model twice is almost always an editing mistake.
        seen: dict[str, object] = {}
        for key, value in pairs:
            if key in seen:
                msg = f"{where}: duplicate key {key!r}"
                raise DataError(msg)
            seen[key] = value
        return seen

    try:
        data = json.loads(file.read_text(encoding="utf-8-sig"), object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as exc:
        msg = f"{where}, line {exc.lineno}, column {exc.colno}: invalid JSON: {exc.msg}"
        raise DataError(msg) from exc
    if not isinstance(data, dict):
        msg = (
            f"{where}: expected an object {{model: {{'input': x, 'output': y}}}}, "
            f"got a JSON {type(data).__name__}"
        )
        raise DataError(msg)
    return {name: _json_entry(where, name, entry) for name, entry in data.items()}


def _json_entry(where: str, name: str, entry: object) -> tuple[float, float]:
    if not name:
        msg = f"{where}: a model name is empty"
        raise DataError(msg)
    if not isinstance(entry, dict):
        msg = (
            f"{where}, entry {name!r}: expected an object {{'input': x, 'output': y}}, "
            f"got {entry!r}"
        )
        raise DataError(msg)
    pair: list[float] = []
    for field in ("input", "output"):
        if field not in entry:
            msg = f"{where}, entry {name!r}: missing field {field!r}"
            raise DataError(msg)
        value = _price_value(entry[field])
        if value is None:
            msg = (
                f"{where}, entry {name!r}, field {field!r}: expected a finite number >= 0 "
                f"(USD per 1M tokens), got {entry[field]!r}"
            )
            raise DataError(msg)
        pair.append(value)
    return pair[0], pair[1]
