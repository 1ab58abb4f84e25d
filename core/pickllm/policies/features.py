"""Cheap structural features of a query, for the contextual online policies.

:func:`structural_features` maps a query to :data:`N_STRUCTURAL` numbers, each roughly in
[0, 1], in a few microseconds: a bias, the log length, the share of digits, of upper-case
letters and of math symbols, whether the query holds code, how many multiple-choice
option markers (``A)``, ``(B)``, ``C.``) and question marks it has, how many lines and
how long its words are. They are what an online learner can fit from a cold start: a
prototype found them better online than 64-dimensional hashed n-gram projections, which
have too many parameters to learn from a few hundred rewards.

Only the first :data:`MAX_CHARS` characters are scanned (the length feature uses the full
length), so the cost per call is bounded whatever the prompt.
"""

from __future__ import annotations

import math
import re

import numpy as np

__all__ = [
    "FEATURE_NAMES",
    "MAX_CHARS",
    "N_STRUCTURAL",
    "structural_features",
    "structural_values",
]

MAX_CHARS = 4000
"""Characters of the query scanned for the share and marker features."""

FEATURE_NAMES: tuple[str, ...] = (
    "bias",
    "log_length",
    "digit_share",
    "upper_share",
    "math_share",
    "code",
    "options",
    "questions",
    "lines",
    "word_length",
)
"""The name of each structural feature, in order."""

N_STRUCTURAL = len(FEATURE_NAMES)
"""The number of structural features (the bias included)."""

# Characters counted, all ASCII: they are counted in the query's UTF-8 bytes, where
# deleting them is several times faster than in the str (every byte of a non-ASCII
# character is >= 0x80, so the counts are the same).
_DIGITS = b"0123456789"
_UPPER = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_MATH = b"=+*/^<>\\$%"
_CODE = re.compile(
    r"```|\bdef |\bimport |\breturn\b|;\s*$|\{\s*$|=>|#include|\bfunction\b", re.MULTILINE
)
# Every match of _CODE holds one of these: scanning for them first (fast substring search)
# skips the regex, ten times slower on long prose, for most prompts.
_CODE_HINTS = ("```", "def ", "import ", "return", ";", "{", "=>", "#include", "function")
# An option marker starts the text or follows a blank (a lookbehind, faster than
# consuming the blank: the engine need not try the alternation at every position).
_OPTION = re.compile(r"(?<!\S)\(?[A-Ea-e][\).:](?=\s)")
# log1p(length) of a 30,000-character prompt is about 10.3.
_LOG_LENGTH_SCALE = 1.0 / 10.0


def structural_features(query: str) -> np.ndarray:
    """The structural features of ``query`` (see :data:`FEATURE_NAMES`), a float array.

    Examples:
        >>> x = structural_features("Which is prime? A) 4 B) 6 C) 7 D) 9")
        >>> dict(zip(FEATURE_NAMES, x.round(2).tolist()))["options"]
        1.0
        >>> structural_features("").tolist()[:3]
        [1.0, 0.0, 0.0]
    """
    return np.array(structural_values(query))


def structural_values(query: str) -> tuple[float, ...]:
    """The structural features of ``query`` as a tuple, to append more before making an array.

    Examples:
        >>> structural_values("Why?")[:2] == tuple(structural_features("Why?")[:2])
        True
    """
    n_full = len(query)
    text = query[:MAX_CHARS]
    n = len(text)
    if n == 0:
        return (1.0,) + (0.0,) * (N_STRUCTURAL - 1)
    inv = 1.0 / n
    raw = text.encode("utf-8", "surrogatepass")  # any str, lone surrogates included
    n_raw = len(raw)
    digits = (n_raw - len(raw.translate(None, _DIGITS))) * inv
    upper = (n_raw - len(raw.translate(None, _UPPER))) * inv
    maths = min((n_raw - len(raw.translate(None, _MATH))) * inv * 10.0, 1.0)
    code = 1.0 if any(h in text for h in _CODE_HINTS) and _CODE.search(text) else 0.0
    options = min(len(_OPTION.findall(text)) / 4.0, 1.0)
    questions = min(text.count("?") / 3.0, 1.0)
    newlines = text.count("\n")
    lines = min(math.log1p(newlines) / 5.0, 1.0)
    words = text.count(" ") + newlines + 1
    word_length = min(n / words / 10.0, 1.0)
    return (
        1.0,
        math.log1p(n_full) * _LOG_LENGTH_SCALE,
        digits,
        upper,
        maths,
        code,
        options,
        questions,
        lines,
        word_length,
    )
