"""Model prices from the ``genai-prices`` database, offline.

A routed model's price is usually not typed by the user: :func:`lookup_price` finds it by
the model's provider and name (``"openai"``, ``"gpt-4o-mini"``) in the price database of
the `genai-prices <https://github.com/pydantic/genai-prices>`_ package (MIT, kept by the
pydantic team). Its data snapshot ships inside the installed package and is the only
source read here: the package's opt-in auto-update (``genai_prices.UpdatePrices``, which
downloads new data in a thread) is never started, and a snapshot that another part of the
program installed with it is ignored, so resolving prices makes no network call and gives
the same prices on every run of the same installed version.

The database prices most chat models per token, like PickLLM (USD per 1M input and output
tokens); what it says beyond that is reduced to that pair, always on the side of not
under-counting the cost:

* **tiered prices** (a higher rate for the whole call once the prompt passes a threshold,
  e.g. Gemini 2.5 Pro above 200k tokens): the base rate, the rate of every prompt below
  the first threshold;
* **price changes over time**: the price in force at ``at`` (default: now);
* **time-of-day prices** (an off-peak discount): the highest of the day's prices;
* **cache reads and writes, audio, images, searches, per-request fees**: not counted
  (PickLLM sees input and output tokens only; cached input tokens count at the full
  input rate);
* a model the database prices **without a per-token input or output price** (images,
  audio, per-request only) has no price here: give it in ``prices``.

Examples:
    >>> price = lookup_price("gpt-4o-mini", provider="openai")
    >>> price.provider, price.model, price.input_price > 0, price.output_price > 0
    ('openai', 'gpt-4o-mini', True, True)
    >>> lookup_price("my-local-model") is None
    True
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from genai_prices.data_snapshot import DataSnapshot

__all__ = ["CatalogPrice", "database_version", "lookup_price"]


@dataclass(frozen=True, slots=True)
class CatalogPrice:
    """A model's per-token prices as the price database gives them.

    Args:
        provider: the database's provider id (``"openai"``, ``"anthropic"``, ``"google"``).
        model: the database's model id.
        input_price: USD per 1M input tokens.
        output_price: USD per 1M output tokens.
        notes: what was simplified to reach the pair (tiers, time-of-day prices).

    Examples:
        >>> CatalogPrice("openai", "m", 0.15, 0.6).pair
        (0.15, 0.6)
    """

    provider: str
    model: str
    input_price: float
    output_price: float
    notes: tuple[str, ...] = ()

    @property
    def pair(self) -> tuple[float, float]:
        """``(input_price, output_price)``, as a ``PriceTable`` entry."""
        return self.input_price, self.output_price


def database_version() -> str:
    """The installed ``genai-prices`` version, whose snapshot the prices come from.

    Examples:
        >>> database_version().count(".") >= 1
        True
    """
    from importlib.metadata import version

    return version("genai-prices")


@functools.cache
def _snapshot() -> DataSnapshot:
    """The snapshot shipped in the package (never one fetched by ``UpdatePrices``)."""
    from genai_prices.data import providers
    from genai_prices.data_snapshot import DataSnapshot

    return DataSnapshot(providers=providers, from_auto_update=False)


def lookup_price(
    model: str, provider: str | None = None, *, at: datetime | None = None
) -> CatalogPrice | None:
    """The per-token prices of ``model`` (served by ``provider``) in the price database.

    The provider may be any name the database recognises (LangChain's ``ls_provider``
    values such as ``"openai"``, ``"anthropic"``, ``"google_genai"``, ``"bedrock"``,
    ``"mistralai"`` are). A provider the database does not know, or None, leaves the
    provider to be found from the model's name; a known provider is searched only (with
    the database's own fallbacks), so a model is never priced as another provider's.

    Args:
        model: the model's name as its provider spells it (case does not matter).
        provider: the provider's name, if known.
        at: the time whose prices apply (default: now, UTC).

    Returns:
        The prices, or None when the database does not know the model or prices it
        without a per-token input or output price (see the module docstring).

    Examples:
        >>> lookup_price("claude-3-5-haiku-latest", provider="anthropic").provider
        'anthropic'
        >>> lookup_price("gpt-4o-mini", provider="no-such-cloud").provider
        'openai'
    """
    if not model:
        return None
    snapshot = _snapshot()
    provider_id = provider if provider and _known_provider(snapshot, provider) else None
    try:
        found_provider, info = snapshot.find_provider_model(model, None, provider_id, None)
    except LookupError:
        return None
    when = at if at is not None else datetime.now(UTC)
    return _per_token(found_provider.id, info, when)


def _known_provider(snapshot: DataSnapshot, provider: str) -> bool:
    from genai_prices.data_snapshot import find_provider_by_id

    return find_provider_by_id(snapshot.providers, provider) is not None


def _per_token(provider: str, info: Any, when: datetime) -> CatalogPrice | None:
    """The model's (input, output) pair at ``when``, or None if it has none."""
    from genai_prices.types import StartDateConstraint, TimeOfDateConstraint

    notes: list[str] = []
    prices = info.prices
    if isinstance(prices, list):
        options: list[Any] = []
        dated: Any = None
        # The last conditional price whose start date has come is in force; time-of-day
        # prices all stay candidates and the highest is used.
        for conditional in reversed(prices):
            constraint = conditional.constraint
            if isinstance(constraint, TimeOfDateConstraint):
                options.append(conditional.prices)
            elif dated is None and (
                constraint is None
                or (isinstance(constraint, StartDateConstraint) and constraint.active(when))
            ):
                dated = conditional.prices
        if dated is None and prices:
            dated = prices[0].prices
        if options:
            notes.append("time-of-day prices: the highest is used")
        options.append(dated)
        pairs = [_pair(option, notes) for option in options if option is not None]
        if any(pair is None for pair in pairs) or not pairs:
            return None
        input_price = max(pair[0] for pair in pairs if pair is not None)
        output_price = max(pair[1] for pair in pairs if pair is not None)
    else:
        pair = _pair(prices, notes)
        if pair is None:
            return None
        input_price, output_price = pair
    return CatalogPrice(
        provider=provider,
        model=str(info.id),
        input_price=input_price,
        output_price=output_price,
        notes=tuple(dict.fromkeys(notes)),
    )


def _pair(model_price: Any, notes: list[str]) -> tuple[float, float] | None:
    values = []
    for key in ("input_mtok", "output_mtok"):
        value = model_price.__dict__.get(key)
        base = getattr(value, "base", None)
        if base is not None:  # TieredPrices
            notes.append("tiered prices: the base rate is used")
            value = base
        if not isinstance(value, Decimal):
            return None
        values.append(float(value))
    return values[0], values[1]
