"""Answer extraction and voting for multi-model (ensemble) plans.

SelectLLM runs a subset of models and combines their answers. An *extractor* turns a raw
response into a comparable answer key (a choice letter, a number, a normalised string) or
None when it finds none; a :class:`Vote` counts the keys, by one vote per model
(``"majority"``) or by each model's confidence (``"weighted"``, WeightedMaxConf), and
returns the winning member's own response with its index.

Ties go to the answer with the larger total confidence, then to the answer given first
in member order (SelectLLM orders members by confidence, cheaper or faster first on ties).
Members whose answer cannot be extracted do not vote; if none can, the first member wins.

Examples:
    >>> vote = Vote(extractor=choice_letter)
    >>> vote(["The answer is (B).", "B", "A"], [0.9, 0.6, 0.8])
    ('The answer is (B).', 0)
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from pickllm.errors import ConfigError

__all__ = [
    "EXTRACTORS",
    "Extractor",
    "Vote",
    "VoteResult",
    "choice_letter",
    "exact_string",
    "get_extractor",
    "number",
]

Extractor = Callable[[str], "str | None"]
"""Maps a response to a comparable answer key, or None when it contains no answer."""

# Letters are upper case only: "the answer is a bit long" must not read as "A".
_ANSWER_PHRASE = re.compile(r"(?i:answer|option|choice)\s*(?:is|:)?\s*[:\-]?\s*\(?\b([A-J])\b\)?")
# A bare leading letter must stand alone ("B", "B)", "(B) ...", "B\n"): "I do not" is no "I".
_LEADING = re.compile(r"^\s*[\(\[]?([A-J])(?:[\)\]\.:,]|\s*$|\s*\n)")
_PAREN = re.compile(r"\(([A-J])\)")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_HASHES = re.compile(r"####\s*(-?[\d,]*\.?\d+)")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)


def choice_letter(text: str) -> str | None:
    r"""The multiple-choice letter (A-J) a response gives, or None.

    Looks, in order, for "answer is X" / "answer: (X)", a letter opening the response
    ("B", "B)", "(B) ..."), then the last parenthesised letter "(X)".

    Examples:
        >>> choice_letter("B\n"), choice_letter("A) dry palms")
        ('B', 'A')
        >>> choice_letter("I think the answer is C")
        'C'
        >>> choice_letter("I do not know") is None
        True
    """
    m = _ANSWER_PHRASE.search(text)
    if m:
        return m.group(1)
    m = _LEADING.match(text)
    if m:
        return m.group(1)
    found = _PAREN.findall(text)
    return found[-1] if found else None


def number(text: str) -> str | None:
    """The final numeric answer of a response (after "####" if present), normalised.

    Examples:
        >>> number("so she has 1,250 apples."), number("#### 42"), number("x = -3.50")
        ('1250', '42', '-3.5')
        >>> number("no digits") is None
        True
    """
    m = _HASHES.search(text)
    raw = m.group(1) if m else None
    if raw is None:
        found = _NUMBER.findall(text)
        if not found:
            return None
        raw = found[-1]
    raw = raw.replace(",", "")
    try:
        value = float(raw)
    except ValueError:
        return None
    if value.is_integer():
        return str(int(value))
    return repr(value).rstrip("0").rstrip(".")


def exact_string(text: str) -> str | None:
    """The response normalised SQuAD-style: lower case, no punctuation or articles.

    Examples:
        >>> exact_string("The Eiffel Tower!") == exact_string("eiffel  tower")
        True
    """
    out = " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split())
    return out or None


EXTRACTORS: dict[str, Extractor] = {
    "choice": choice_letter,
    "number": number,
    "exact": exact_string,
}
"""Built-in extractors by name."""


def get_extractor(extractor: str | Extractor) -> Extractor:
    """An extractor by name (``choice``, ``number``, ``exact``) or the callable itself.

    Raises:
        ConfigError: unknown name.
    """
    if callable(extractor):
        return extractor
    found = EXTRACTORS.get(extractor)
    if found is None:
        msg = f"unknown extractor {extractor!r}; available: {', '.join(sorted(EXTRACTORS))}"
        raise ConfigError(msg)
    return found


@dataclass(frozen=True, slots=True)
class VoteResult:
    """The outcome of a vote.

    Args:
        key: the winning extracted answer (None if no member's answer could be extracted).
        index: a member whose answer won (the first such in member order).
        support: the winning answer's total vote (count or confidence).
        keys: each member's extracted answer.
    """

    key: str | None
    index: int
    support: float
    keys: tuple[str | None, ...]


class Vote:
    """Majority or confidence-weighted vote over extracted answers.

    Call it as ``vote(answers, weights) -> (answer, index)``: the executor's aggregation
    hook. ``answer`` is the raw response of member ``index``, a member whose extracted
    answer won.

    Args:
        extractor: a name from :data:`EXTRACTORS` or a callable ``str -> str | None``.
        mode: ``"majority"`` (one vote per member; confidences only break ties) or
            ``"weighted"`` (each member votes with its confidence: WeightedMaxConf).

    Examples:
        >>> Vote(extractor="number", mode="majority")(["12", "x=12.0", "13"], [0.2, 0.2, 0.9])
        ('12', 0)
        >>> Vote(extractor="number", mode="weighted")(["12", "x=12.0", "13"], [0.2, 0.2, 0.9])
        ('13', 2)
    """

    def __init__(
        self,
        *,
        extractor: str | Extractor = "exact",
        mode: Literal["majority", "weighted"] = "majority",
    ) -> None:
        if mode not in ("majority", "weighted"):
            msg = f"mode must be 'majority' or 'weighted', got {mode!r}"
            raise ConfigError(msg)
        self.extractor = extractor
        self.mode: Literal["majority", "weighted"] = mode
        self._extract = get_extractor(extractor)

    def __call__(
        self, answers: Sequence[str], weights: Sequence[float] | None = None
    ) -> tuple[str, int]:
        """The winning answer and the index of a member that gave it."""
        result = self.vote(answers, weights)
        return answers[result.index], result.index

    def vote(self, answers: Sequence[str], weights: Sequence[float] | None = None) -> VoteResult:
        """The full result of the vote (see :class:`VoteResult`).

        Raises:
            ConfigError: no answers, or ``weights`` of another length or negative.
        """
        n = len(answers)
        if n == 0:
            msg = "vote needs at least one answer, got none"
            raise ConfigError(msg)
        w = [1.0] * n if weights is None else [float(x) for x in weights]
        if len(w) != n or any(not (x >= 0.0) for x in w):
            msg = f"weights must be {n} numbers >= 0, got {weights!r}"
            raise ConfigError(msg)
        keys = tuple(self._extract(a) for a in answers)
        votes: dict[str, list[float]] = {}
        first: dict[str, int] = {}
        for i, key in enumerate(keys):
            if key is None:
                continue
            tally = votes.setdefault(key, [0.0, 0.0])
            tally[0] += w[i] if self.mode == "weighted" else 1.0
            tally[1] += w[i]
            first.setdefault(key, i)
        if not votes:
            return VoteResult(key=None, index=0, support=0.0, keys=keys)
        best = max(votes, key=lambda k: (votes[k][0], votes[k][1], -first[k]))
        return VoteResult(key=best, index=first[best], support=votes[best][0], keys=keys)

    def __repr__(self) -> str:
        name = (
            self.extractor
            if isinstance(self.extractor, str)
            else getattr(self.extractor, "__name__", "custom")
        )
        return f"Vote(extractor={name!r}, mode={self.mode!r})"
