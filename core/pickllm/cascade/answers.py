r"""What can be read off an answer without a judge: its extracted answer and code checks.

The post-hoc estimators compare the answers already seen. For multiple-choice answers
(ARC, Winogrande, MMLU-like prompts) the option letter is extracted
(:func:`pickllm.learn.choice_letter`); two models agree when they give the same letter.
For code (MBPP-like prompts) token overlap says little, so the features are whether the
answer holds a Python block that parses, whether it defines a function, and the name of
the first function defined (two answers defining the same name agree on the interface).

Examples:
    >>> read_answer("B\n").letter, read_answer("def f(x):\n    return x").parses
    ('B', True)
    >>> agree(read_answer("B"), read_answer("(B) dry palms"))
    True
"""

from __future__ import annotations

import ast
import re
import warnings
from dataclasses import dataclass

from pickllm.learn.aggregate import choice_letter

__all__ = ["Answer", "agree", "read_answer"]

_FENCE = re.compile(r"```(?:python|py)?\s*\n(.*?)(?:```|$)", re.DOTALL)
_DEF = re.compile(r"^\s*def\s+([A-Za-z_]\w*)\s*\(", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Answer:
    """The features of one answer.

    Args:
        letter: the option letter, or None.
        parses: the answer's code (fenced block, or the whole text) parses as Python.
        function: the name of the first function it defines, or None.
        empty: the answer is blank.
    """

    letter: str | None
    parses: bool
    function: str | None
    empty: bool

    @property
    def key(self) -> str | None:
        """What two answers must share to agree: the letter, else the function name."""
        return self.letter if self.letter is not None else self.function


def _code(text: str) -> str:
    m = _FENCE.search(text)
    return m.group(1) if m else text


def _parses(code: str) -> bool:
    if not code.strip():
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def read_answer(text: str) -> Answer:
    """The features of ``text`` (see the module docstring)."""
    stripped = text.strip()
    code = _code(text)
    fn = _DEF.search(code)
    letter = choice_letter(stripped) if len(stripped) < 400 else None
    return Answer(
        letter=letter if fn is None else None,
        parses=fn is not None and _parses(code),
        function=fn.group(1) if fn else None,
        empty=not stripped,
    )


def agree(a: Answer, b: Answer) -> bool:
    """Whether two answers give the same extracted answer (never for unextracted ones)."""
    return a.key is not None and a.key == b.key
