"""Load outcome tables: the bundled data sets or a user's long-format CSV.

The long format has one row per (prompt, model) pair::

    prompt_id, task, split, fold, prompt, model, quality, cost_usd, input_tokens,
    output_tokens, latency_s, response, <any other column>

* Required: ``prompt_id``, ``model``, ``quality`` (a number in [0, 1]).
* Optional, per prompt: ``task`` (default ``"all"``), ``split`` (default ``"all"``),
  ``fold`` (an int; default -1, unknown), ``prompt`` (default empty), ``input_tokens``.
  They must agree between the rows of one prompt (``input_tokens`` may differ between
  models; the first non-empty value is kept).
* Optional, per (prompt, model): ``cost_usd`` (USD of the call), ``output_tokens``,
  ``latency_s`` (seconds) and ``response`` (the answer text). ``raw_score`` is ignored.
* Any other column is kept in :attr:`OutcomeTable.extras`, taken from the prompt's first row.
* Empty cells of optional columns mean "unknown". The file may be gzip-compressed
  (``.gz``) and must be UTF-8; a cell holds at most 131,072 characters (the limit of
  Python's ``csv`` module, which the loader leaves as it is).

Rules, each violation raising :class:`~pickllm.errors.DataError` naming the file, the line
(1 is the header; a record spanning several lines is named by its first line) and the
column: the header must have the required columns; every record has as many fields as the
header; numbers parse and lie in range; a (prompt_id, model) pair occurs once; the
per-prompt columns agree between rows of a prompt; ``latency_s`` is given for every row
or for none; and the matrix is complete: every prompt has a row for every model (the
error lists missing pairs, since a router cannot be scored on a model it never saw).

Missing cost is estimated, cell by cell, as ``input_tokens * input_price + output_tokens *
output_price`` from a :class:`~pickllm.pricing.PriceTable` (USD per 1M tokens): the one
passed as ``price_table``, completed by the bundled ``llmrouter_9llm`` list prices. The
table is then marked ``cost_estimated``. Token estimates
(:func:`pickllm.pricing.estimate_tokens`): input tokens, when not given, are the prompt's
characters / 4; output tokens, when not given, are the response's characters
/ 4 when the data has responses, else :data:`DEFAULT_OUTPUT_TOKENS` for the task (or
:data:`FALLBACK_OUTPUT_TOKENS`). When a cell has neither a cost nor a price for its model,
the table gets ``cost=None`` and one :class:`CostUnavailableWarning` is issued: quality
metrics still work, cost metrics are reported as unavailable.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
import math
import os
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import IO, Any, TypeAlias

import numpy as np

from pickllm.data.table import OutcomeTable
from pickllm.errors import ConfigError, DataError
from pickllm.pricing import PriceTable, estimate_tokens
from pickllm.types import Candidate

__all__ = [
    "DEFAULT_OUTPUT_TOKENS",
    "FALLBACK_OUTPUT_TOKENS",
    "CostUnavailableWarning",
    "PriceTableLike",
    "as_price_table",
    "available_datasets",
    "bundled_prices",
    "load_outcomes",
]

# Typical completion lengths per task. These are assumptions, not measurements: letter
# answers are a few tokens, short-answer QA a sentence, math and logic puzzles a worked
# chain of thought, code a function.
DEFAULT_OUTPUT_TOKENS: Mapping[str, int] = MappingProxyType(
    {
        "arc-challenge": 4,
        "winogrande": 4,
        "mmlu": 16,
        "arc_challenge": 16,
        "commonsense_qa": 16,
        "openbook_qa": 16,
        "gpqa": 16,
        "natural_qa": 32,
        "trivia_qa": 32,
        "commongen": 48,
        "mbpp": 192,
        "human_eval": 192,
        "gsm8k": 256,
        "math": 256,
        "agentverse-mgsm": 256,
        "agentverse-logicgrid": 256,
    }
)
"""Output tokens assumed per task when the data has neither token counts nor responses."""

FALLBACK_OUTPUT_TOKENS = 128
"""Output tokens assumed for a task missing from :data:`DEFAULT_OUTPUT_TOKENS`."""

_BUNDLED: Mapping[str, tuple[str, str | None]] = MappingProxyType(
    {
        "routerbench_subset": (
            "routerbench_subset.csv.gz",
            "routerbench_subset_responses.csv.gz",
        ),
        "llmrouter_9llm": ("llmrouter_9llm.csv.gz", None),
    }
)
_BUNDLED_PRICES = "llmrouter_9llm_models.csv"

_REQUIRED = ("prompt_id", "model", "quality")
_PER_PROMPT = ("task", "split", "fold", "prompt")
_PER_CELL = ("cost_usd", "output_tokens", "latency_s", "response")
_IGNORED = ("raw_score",)


class CostUnavailableWarning(UserWarning):
    """Some models have neither a recorded cost nor a price: cost metrics are unavailable."""


PriceTableLike: TypeAlias = PriceTable | Mapping[str, Any] | str | os.PathLike[str] | None
"""What ``price_table`` arguments accept: a :class:`~pickllm.pricing.PriceTable`; a mapping
of model name to a number (same input and output price), an ``(input, output)`` pair or a
:class:`~pickllm.types.Candidate`; a CSV or JSON price file (see :mod:`pickllm.pricing`); or
None (no prices beyond the bundled ones)."""


def as_price_table(value: PriceTableLike) -> PriceTable:
    """Normalise a ``price_table`` argument (see :data:`PriceTableLike`).

    Raises:
        ConfigError: a mapping value is not a price.
        DataError: a price file is malformed.
        TypeError: ``value`` is of another type.

    Examples:
        >>> as_price_table({"a": 0.5, "b": (1, 2)}).price("b")
        (1.0, 2.0)
    """
    if value is None:
        return PriceTable()
    if isinstance(value, PriceTable):
        return value
    if isinstance(value, str | os.PathLike):
        try:
            return PriceTable.from_file(value)
        except OSError as exc:
            msg = f"cannot read price file {str(value)!r}: {exc.strerror or exc}"
            raise DataError(msg) from exc
    if isinstance(value, Mapping):
        prices: dict[str, tuple[float, float]] = {}
        for model, item in value.items():
            if isinstance(item, Candidate):
                prices[str(model)] = (item.input_price, item.output_price)
            elif isinstance(item, int | float) and not isinstance(item, bool):
                prices[str(model)] = (float(item), float(item))
            elif isinstance(item, tuple | list) and len(item) == 2:
                prices[str(model)] = (item[0], item[1])
            else:
                msg = (
                    f"price of {model!r} must be a number, an (input, output) pair or a "
                    f"Candidate, got {item!r}"
                )
                raise ConfigError(msg)
        return PriceTable(prices)
    msg = (
        "price_table must be a PriceTable, a mapping of model -> prices, a price file path "
        f"or None, got {type(value).__name__}"
    )
    raise TypeError(msg)


def bundled_prices() -> PriceTable:
    """The list prices of the bundled ``llmrouter_9llm`` models (USD per 1M tokens).

    Examples:
        >>> bundled_prices().price("gemma-2-9b-it")
        (0.1, 0.1)
    """
    return _bundled_prices()


def _to_float(raw: str) -> float | None:
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return path.open(encoding="utf-8", newline="")


def _resource_text(filename: str) -> IO[str]:
    raw = resources.files("pickllm.data").joinpath(filename).read_bytes()
    if filename.endswith(".gz"):
        raw = gzip.decompress(raw)
    return io.StringIO(raw.decode("utf-8"), newline="")


@functools.cache
def _bundled_prices() -> PriceTable:
    source = f"pickllm.data/{_BUNDLED_PRICES}"
    with _resource_text(_BUNDLED_PRICES) as handle:
        reader = csv.DictReader(handle)
        prices: dict[str, tuple[float, float]] = {}
        for row in reader:
            pair = (
                _to_float(row.get("input_price_usd_per_mtok") or ""),
                _to_float(row.get("output_price_usd_per_mtok") or ""),
            )
            if pair[0] is None or pair[1] is None:  # pragma: no cover - bundled file is fixed
                msg = f"{source}: line {reader.line_num}: bad price"
                raise DataError(msg)
            prices[row["model"]] = (pair[0], pair[1])
    return PriceTable(prices)


def available_datasets() -> list[str]:
    """Names of the bundled data sets ``load_outcomes`` accepts.

    Examples:
        >>> available_datasets()
        ['llmrouter_9llm', 'routerbench_subset']
    """
    return sorted(_BUNDLED)


def load_outcomes(
    name_or_path: str | os.PathLike[str], *, price_table: PriceTableLike = None
) -> OutcomeTable:
    """Load a bundled data set by name, or a long-format CSV(.gz) file.

    Bundled tables are read lazily on first use and cached (tables are immutable).

    Args:
        name_or_path: ``"routerbench_subset"``, ``"llmrouter_9llm"`` or a file path.
        price_table: prices for estimating missing costs; they take precedence over the
            bundled ``llmrouter_9llm`` prices, which are always consulted as a fallback.

    Raises:
        ConfigError: not a bundled name and no such file.
        DataError: the file is malformed (the message names the file, line and column).

    Examples:
        >>> t = load_outcomes("routerbench_subset")
        >>> t.n_prompts, t.n_models, t.cost_estimated
        (3150, 11, False)
    """
    if isinstance(name_or_path, str) and name_or_path in _BUNDLED:
        if price_table is None:
            return _load_bundled(name_or_path)
        return _read_bundled(name_or_path, as_price_table(price_table))
    path = Path(name_or_path)
    if not path.is_file():
        msg = (
            f"unknown data set {str(name_or_path)!r}: not a bundled data set "
            f"(available: {', '.join(available_datasets())}) and no such file"
        )
        raise ConfigError(msg)
    prices = as_price_table(price_table)
    try:
        with _open_text(path) as handle:
            return _parse_outcomes(handle, str(path), prices=prices, responses=None)
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        msg = f"{path}: cannot be read as a UTF-8 CSV (optionally gzip-compressed): {exc}"
        raise DataError(msg) from exc


@functools.cache
def _load_bundled(name: str) -> OutcomeTable:
    return _read_bundled(name, PriceTable())


def _read_bundled(name: str, prices: PriceTable) -> OutcomeTable:
    outcomes, responses_file = _BUNDLED[name]
    responses = None
    if responses_file is not None:
        with _resource_text(responses_file) as handle:
            responses = _read_responses(handle, f"pickllm.data/{responses_file}")
    with _resource_text(outcomes) as handle:
        return _parse_outcomes(handle, name, prices=prices, responses=responses)


def _read_responses(handle: IO[str], source: str) -> dict[tuple[str, str], str]:
    reader = csv.reader(handle)
    header = next(reader, None) or []
    try:
        ip, im, ir = header.index("prompt_id"), header.index("model"), header.index("response")
    except ValueError as exc:
        msg = f"{source}: line 1: expected columns prompt_id, model, response; got {header!r}"
        raise DataError(msg) from exc
    return {(rec[ip], rec[im]): rec[ir] for rec in reader}


def _records(reader: Any) -> Iterator[tuple[int, list[str]]]:
    """Yield (first line of the record, fields); csv's line_num is the record's last line."""
    line = reader.line_num
    for record in reader:
        yield line + 1, record
        line = reader.line_num


@dataclass(slots=True)
class _Prompt:
    line: int
    values: dict[str, str]
    input_tokens: int | None = None


def _parse_outcomes(  # noqa: C901, PLR0912, PLR0915
    handle: IO[str],
    source: str,
    *,
    prices: PriceTable,
    responses: Mapping[tuple[str, str], str] | None,
) -> OutcomeTable:
    """Parse a long-format table; see the module docstring for the rules."""
    reader = csv.reader(handle)
    try:
        header = next(reader)
    except StopIteration:
        msg = f"{source}: line 1: empty file; expected a header with {', '.join(_REQUIRED)}"
        raise DataError(msg) from None
    except csv.Error as exc:
        msg = f"{source}: line 1: not a valid CSV header: {exc}"
        raise DataError(msg) from exc
    header = [h.strip() for h in header]
    for col in _REQUIRED:
        if col not in header:
            msg = (
                f"{source}: line 1, column {col!r}: missing required column; "
                f"the header has {', '.join(header) or 'nothing'}"
            )
            raise DataError(msg)
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        msg = f"{source}: line 1, column {dupes[0]!r}: the column appears more than once"
        raise DataError(msg)
    at = {h: i for i, h in enumerate(header)}
    known = set(_REQUIRED) | set(_PER_PROMPT) | set(_PER_CELL) | set(_IGNORED) | {"input_tokens"}
    extra_cols = [h for h in header if h not in known]
    prompt_cols = [c for c in _PER_PROMPT if c in at]

    prompts: dict[str, _Prompt] = {}
    models: dict[str, int] = {}
    quality: dict[tuple[str, str], float] = {}
    cost: dict[tuple[str, str], float] = {}
    out_tokens: dict[tuple[str, str], int] = {}
    latency: dict[tuple[str, str], float] = {}
    response: dict[tuple[str, str], str] = {}
    first_line: dict[tuple[str, str], int] = {}
    latency_rows = 0
    latency_missing_line: int | None = None

    def fail(line: int, col: str, problem: str) -> DataError:
        return DataError(f"{source}: line {line}, column {col!r}: {problem}")

    def number(line: int, col: str, raw: str, *, lo: float, hi: float = math.inf) -> float:
        value = _to_float(raw)
        if value is None or not (lo <= value <= hi):
            allowed = (
                f"a number in [{lo:g}, {hi:g}]" if math.isfinite(hi) else f"a number >= {lo:g}"
            )
            raise fail(line, col, f"expected {allowed}, got {raw!r}")
        return value

    def integer(line: int, col: str, raw: str, *, lo: int) -> int:
        try:
            value = int(raw)
        except ValueError:
            value = lo - 1
        if value < lo:
            raise fail(line, col, f"expected an integer >= {lo}, got {raw!r}")
        return value

    try:
        for line, record in _records(reader):
            if not record or (len(record) == 1 and not record[0].strip()):
                continue
            if len(record) != len(header):
                msg = f"{source}: line {line}: expected {len(header)} fields, got {len(record)}"
                raise DataError(msg)
            pid = record[at["prompt_id"]].strip()
            model = record[at["model"]].strip()
            if not pid:
                raise fail(line, "prompt_id", "empty prompt_id")
            if not model:
                raise fail(line, "model", "empty model name")
            key = (pid, model)
            if key in first_line:
                raise fail(
                    line,
                    "model",
                    f"duplicate row for prompt {pid!r} and model {model!r} "
                    f"(first on line {first_line[key]})",
                )
            first_line[key] = line
            models.setdefault(model, len(models))
            quality[key] = number(line, "quality", record[at["quality"]].strip(), lo=0.0, hi=1.0)

            values = {c: record[at[c]] for c in prompt_cols}
            if "fold" in values:
                raw_fold = values["fold"].strip()
                values["fold"] = str(integer(line, "fold", raw_fold, lo=-1)) if raw_fold else "-1"
            entry = prompts.get(pid)
            if entry is None:
                entry = _Prompt(line=line, values=values)
                entry.values.update({c: record[at[c]] for c in extra_cols})
                prompts[pid] = entry
            else:
                for col in prompt_cols:
                    if values[col] != entry.values[col]:
                        raise fail(
                            line,
                            col,
                            f"prompt {pid!r} has {col} {values[col][:60]!r} here but "
                            f"{entry.values[col][:60]!r} on line {entry.line}",
                        )
            if "input_tokens" in at and entry.input_tokens is None:
                raw = record[at["input_tokens"]].strip()
                if raw:
                    entry.input_tokens = integer(line, "input_tokens", raw, lo=0)
            if "cost_usd" in at:
                raw = record[at["cost_usd"]].strip()
                if raw:
                    cost[key] = number(line, "cost_usd", raw, lo=0.0)
            if "output_tokens" in at:
                raw = record[at["output_tokens"]].strip()
                if raw:
                    out_tokens[key] = integer(line, "output_tokens", raw, lo=0)
            if "latency_s" in at:
                raw = record[at["latency_s"]].strip()
                if raw:
                    latency[key] = number(line, "latency_s", raw, lo=0.0)
                    latency_rows += 1
                elif latency_missing_line is None:
                    latency_missing_line = line
            if "response" in at:
                response[key] = record[at["response"]]
    except csv.Error as exc:
        msg = f"{source}: line {reader.line_num}: malformed CSV: {exc}"
        raise DataError(msg) from exc

    if not prompts:
        msg = f"{source}: line 2: no data rows"
        raise DataError(msg)
    if latency_rows and latency_missing_line is not None:
        raise fail(
            latency_missing_line,
            "latency_s",
            "latency_s is empty here but given on other rows; give it for every row or none",
        )
    pids = list(prompts)
    names = list(models)
    missing = [(p, m) for p in pids for m in names if (p, m) not in quality]
    if missing:
        shown = ", ".join(repr(pair) for pair in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        msg = (
            f"{source}: column 'model': incomplete outcome matrix: {len(missing)} "
            f"(prompt_id, model) pairs have no row: {shown}{more}; every prompt needs one "
            "row per model"
        )
        raise DataError(msg)

    n, k = len(pids), len(names)
    q = np.array([[quality[(p, m)] for m in names] for p in pids], dtype=float)
    texts = tuple(prompts[p].values.get("prompt", "") for p in pids)
    tasks = tuple(prompts[p].values.get("task", "all").strip() or "all" for p in pids)
    in_tok = np.array(
        [
            prompts[p].input_tokens
            if prompts[p].input_tokens is not None
            else estimate_tokens(texts[i])
            for i, p in enumerate(pids)
        ],
        dtype=int,
    )
    resp_map = responses if responses is not None else (response if "response" in at else None)
    resp: tuple[tuple[str, ...], ...] | None = None
    if resp_map is not None:
        resp = tuple(tuple(resp_map.get((p, m), "") for m in names) for p in pids)

    cost_arr, estimated = _cost_matrix(
        pids=pids,
        models=names,
        tasks=tasks,
        input_tokens=in_tok,
        responses=resp,
        cost=cost,
        output_tokens=out_tokens,
        prices=_merged(prices),
        source=source,
    )
    lat = None
    if latency_rows:
        lat = np.array([[latency[(p, m)] for m in names] for p in pids], dtype=float)

    return OutcomeTable(
        name=source,
        prompt_ids=tuple(pids),
        prompts=texts,
        tasks=tasks,
        splits=tuple(prompts[p].values.get("split", "all").strip() or "all" for p in pids),
        folds=np.array([int(prompts[p].values.get("fold", "-1")) for p in pids], dtype=int)
        if n
        else np.zeros(0, dtype=int),
        models=tuple(names),
        quality=q.reshape(n, k),
        cost=cost_arr,
        cost_estimated=estimated,
        input_tokens=in_tok,
        latency=lat,
        responses=resp,
        extras={c: tuple(prompts[p].values[c] for p in pids) for c in extra_cols},
    )


def _merged(prices: PriceTable) -> PriceTable:
    """``prices``, completed by the bundled prices for models it does not list."""
    return PriceTable({**dict(_bundled_prices().items()), **dict(prices.items())})


def _cost_matrix(
    *,
    pids: list[str],
    models: list[str],
    tasks: tuple[str, ...],
    input_tokens: np.ndarray,
    responses: tuple[tuple[str, ...], ...] | None,
    cost: Mapping[tuple[str, str], float],
    output_tokens: Mapping[tuple[str, str], int],
    prices: PriceTable,
    source: str,
) -> tuple[np.ndarray | None, bool]:
    """The (n, k) cost, estimating missing cells; (None, False) if some cannot be."""
    n, k = len(pids), len(models)
    if len(cost) == n * k:
        return np.array([[cost[(p, m)] for m in models] for p in pids], dtype=float), False
    unpriced = sorted({m for p in pids for m in models if (p, m) not in cost and m not in prices})
    if unpriced:
        warnings.warn(
            f"{source}: no cost for model(s) {', '.join(unpriced)}: the data has no cost_usd "
            "for them and the price table lists no price; cost-based metrics will be "
            "unavailable (pass a price table, e.g. --price-file, to estimate them)",
            CostUnavailableWarning,
            stacklevel=3,
        )
        return None, False
    out = np.empty((n, k), dtype=float)
    for i, p in enumerate(pids):
        default_out = DEFAULT_OUTPUT_TOKENS.get(tasks[i], FALLBACK_OUTPUT_TOKENS)
        for j, m in enumerate(models):
            recorded = cost.get((p, m))
            if recorded is not None:
                out[i, j] = recorded
                continue
            tokens = output_tokens.get((p, m))
            if tokens is None:
                text = responses[i][j] if responses is not None else ""
                tokens = estimate_tokens(text) if text else default_out
            price = prices.price(m)
            out[i, j] = (int(input_tokens[i]) * price[0] + tokens * price[1]) / 1e6
    return out, True
