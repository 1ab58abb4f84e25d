"""Replay recorded LLM calls: prompt text -> what a named model answered and what it cost.

A :class:`ReplayStore` indexes an :class:`~pickllm.data.OutcomeTable` that has response
texts (the bundled ``routerbench_subset`` has one per prompt and model) so that a fake
model can answer a benchmark prompt exactly as the real model did, offline, with the
recorded cost and correctness. The LangChain ``ReplayChatModel`` and the LlamaIndex
replay LLM are thin wrappers over it.

Lookups are by exact prompt text (surrounding whitespace ignored) or by prompt id. Two
MBPP prompts of ``routerbench_subset`` share their text; the text then resolves to the
first of them in table order (use :meth:`ReplayStore.by_id` to reach the other).

What is recorded and what is estimated:

* ``response``, ``quality`` (0/1 correctness) and ``cost_usd`` are the recorded values;
* token counts are estimated (:func:`pickllm.pricing.estimate_tokens`, 4 characters per
  token) because RouterBench has none, and every record says ``tokens_estimated=True``;
* ``reference`` is *derived*: for a multiple-choice prompt (choices ``A)``, ``B)``, ...
  on their own lines, as in ARC-Challenge and Winogrande) it is the choice letter of the
  responses recorded as correct, when they all agree; otherwise None (MBPP code tasks
  have no reference answer, they were scored by unit tests). On ``routerbench_subset``
  2,703 of the 2,723 multiple-choice prompts have a reference (20 have no correct
  response), and :class:`pickllm.evaluation.MultipleChoice` against it reproduces the
  recorded correctness of every response.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pickllm.errors import ConfigError, DataError, PickLLMError
from pickllm.evaluation import extract_choice
from pickllm.pricing import estimate_tokens

if TYPE_CHECKING:
    from pickllm.data.table import OutcomeTable

__all__ = ["ReplayRecord", "ReplayStore", "UnknownPromptError"]

_CHOICE_LINE = re.compile(r"^([A-J])\)\s", re.MULTILINE)
_SHOWN = 3


class UnknownPromptError(PickLLMError, LookupError):
    """A replay lookup for a prompt the recorded data set does not have."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplayRecord:
    """One recorded call: a model's answer to a prompt, its cost and correctness.

    Args:
        prompt_id: the data set's id of the prompt.
        task: the prompt's task.
        model: the model that answered.
        prompt: the prompt text.
        response: the recorded answer text.
        quality: the recorded quality in [0, 1].
        cost_usd: the recorded cost of the call in USD (None if the data has none).
        cost_estimated: the data set's cost was itself estimated from prices.
        input_tokens: prompt tokens (estimated, see ``tokens_estimated``).
        output_tokens: answer tokens (estimated from the response text).
        tokens_estimated: the token counts are estimates.
        reference: the derived reference answer, if any (see the module docstring).

    Examples:
        >>> store = ReplayStore.load("routerbench_subset")
        >>> rec = store.by_id("arc-challenge.test.1108", "gpt-4-1106-preview")
        >>> rec.response, rec.quality, rec.reference, rec.tokens_estimated
        ('D', 1.0, 'D', True)
    """

    prompt_id: str
    task: str
    model: str
    prompt: str
    response: str
    quality: float
    cost_usd: float | None
    cost_estimated: bool
    input_tokens: int
    output_tokens: int
    tokens_estimated: bool
    reference: str | None


def _preview(text: str, width: int = 60) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def _gist(text: str) -> str:
    """The first line of a prompt's last block: few-shot prompts share their exemplars."""
    block = text.strip().rsplit("\n\n", 1)[-1]
    return _preview(block.split("\n", 1)[0])


class ReplayStore:
    r"""Recorded responses of a data set, looked up by prompt text (or id) and model.

    Build it from any :class:`~pickllm.data.OutcomeTable` that has responses, or load a
    bundled data set with :meth:`load` (cached: every load of a name shares one store).

    Args:
        table: the outcome table; it must carry response texts.

    Raises:
        DataError: the table has no responses.

    Examples:
        >>> store = ReplayStore.load("routerbench_subset")
        >>> len(store), len(store.models)
        (3150, 11)
        >>> prompt = store.prompt_text("winogrande.dev.949")
        >>> store.lookup(prompt, "mistralai/mixtral-8x7b-chat").response
        'B\n'
        >>> store.reference(prompt)
        'B'
    """

    def __init__(self, table: OutcomeTable) -> None:
        if table.responses is None:
            msg = (
                f"data set {table.name!r} has no response texts, so it cannot be replayed; "
                "use one with a responses file, such as 'routerbench_subset'"
            )
            raise DataError(msg)
        self.table = table
        self._responses = table.responses
        self._model_index = {m: j for j, m in enumerate(table.models)}
        self._id_index = {pid: i for i, pid in enumerate(table.prompt_ids)}
        self._text_index: dict[str, int] = {}
        for i, text in enumerate(table.prompts):
            self._text_index.setdefault(text.strip(), i)
        self._references = tuple(self._derive_reference(i) for i in range(table.n_prompts))

    @classmethod
    def load(cls, dataset: str = "routerbench_subset") -> ReplayStore:
        """The store of a bundled data set (or outcome file), built once and cached.

        Raises:
            ConfigError: the data set is unknown.
            DataError: it has no responses.
        """
        return _cached_store(dataset)

    # ------------------------------------------------------------------ lookups
    @property
    def name(self) -> str:
        """The data set's name."""
        return self.table.name

    @property
    def models(self) -> tuple[str, ...]:
        """The models whose answers are recorded."""
        return self.table.models

    def __len__(self) -> int:
        return self.table.n_prompts

    def __contains__(self, prompt: object) -> bool:
        return isinstance(prompt, str) and prompt.strip() in self._text_index

    def __iter__(self) -> Iterator[str]:
        return iter(self.table.prompts)

    def check_model(self, model: str) -> int:
        """The column of ``model``.

        Raises:
            ConfigError: the data set has no such model (the message lists them).
        """
        try:
            return self._model_index[model]
        except KeyError:
            msg = (
                f"model {model!r} is not in data set {self.name!r}; its models are "
                f"{list(self.models)}"
            )
            raise ConfigError(msg) from None

    def row(self, prompt: str) -> int:
        """The row of ``prompt`` (exact text, surrounding whitespace ignored).

        Raises:
            UnknownPromptError: the data set has no such prompt (the message shows a few
                it has).
        """
        try:
            return self._text_index[prompt.strip()]
        except KeyError:
            shown = "; ".join(
                f"{self.table.prompt_ids[i]}: {_gist(self.table.prompts[i])!r}"
                for i in range(min(_SHOWN, len(self)))
            )
            msg = (
                f"prompt {_preview(prompt)!r} is not in data set {self.name!r} "
                f"({len(self)} prompts); a replayed model answers only the recorded prompts, "
                f"sent verbatim as the last user message, e.g. {shown} "
                "(ReplayStore.prompts() lists them all)"
            )
            raise UnknownPromptError(msg) from None

    def prompt_text(self, prompt_id: str) -> str:
        """The text of the prompt with id ``prompt_id``.

        Raises:
            UnknownPromptError: no prompt has that id.
        """
        return self.table.prompts[self._row_of_id(prompt_id)]

    def _row_of_id(self, prompt_id: str) -> int:
        try:
            return self._id_index[prompt_id]
        except KeyError:
            shown = ", ".join(self.table.prompt_ids[:_SHOWN])
            msg = f"no prompt has id {prompt_id!r} in data set {self.name!r}; ids look like {shown}"
            raise UnknownPromptError(msg) from None

    def lookup(self, prompt: str, model: str) -> ReplayRecord:
        """What ``model`` answered to ``prompt``, and what it cost.

        Raises:
            ConfigError: unknown model.
            UnknownPromptError: unknown prompt.
        """
        column = self.check_model(model)
        return self._record(self.row(prompt), column)

    def by_id(self, prompt_id: str, model: str) -> ReplayRecord:
        """What ``model`` answered to the prompt with id ``prompt_id``."""
        column = self.check_model(model)
        return self._record(self._row_of_id(prompt_id), column)

    def _record(self, i: int, j: int) -> ReplayRecord:
        table = self.table
        response = self._responses[i][j]
        cost = None if table.cost is None else float(table.cost[i, j])
        prompt = table.prompts[i]
        return ReplayRecord(
            prompt_id=table.prompt_ids[i],
            task=table.tasks[i],
            model=table.models[j],
            prompt=prompt,
            response=response,
            quality=float(table.quality[i, j]),
            cost_usd=cost,
            cost_estimated=table.cost_estimated,
            input_tokens=estimate_tokens(prompt),
            output_tokens=estimate_tokens(response),
            tokens_estimated=True,
            reference=self._references[i],
        )

    # ------------------------------------------------------------------ references
    def _derive_reference(self, i: int) -> str | None:
        prompt = self.table.prompts[i]
        # The last question's choices: exemplars before it list their own.
        tail = prompt[prompt.rfind("\n\n") + 1 :] if "\n\n" in prompt else prompt
        letters = "".join(dict.fromkeys(_CHOICE_LINE.findall(tail)))
        if len(letters) < 2:
            return None
        found = {
            extract_choice(self._responses[i][j], letters)
            for j in range(len(self.models))
            if self.table.quality[i, j] >= 1.0
        }
        found.discard(None)
        return found.pop() if len(found) == 1 else None

    def reference(self, prompt: str) -> str | None:
        """The derived reference answer of ``prompt`` (see the module docstring), or None.

        Raises:
            UnknownPromptError: unknown prompt.
        """
        return self._references[self.row(prompt)]

    def references(self) -> dict[str, str]:
        """Prompt text -> derived reference, for every prompt that has one.

        Pass it as ``references=`` to a reference-based evaluator.
        """
        return {
            self.table.prompts[i]: ref
            for i, ref in enumerate(self._references)
            if ref is not None and self._text_index[self.table.prompts[i].strip()] == i
        }

    def prompts(
        self,
        *,
        task: str | None = None,
        split: str | None = None,
        with_reference: bool = False,
    ) -> list[str]:
        """Prompt texts in table order, optionally of one task or split, or with a reference.

        Each text is listed once (the later of two prompts sharing a text is left out).
        """
        out = []
        for i, text in enumerate(self.table.prompts):
            if task is not None and self.table.tasks[i] != task:
                continue
            if split is not None and self.table.splits[i] != split:
                continue
            if with_reference and self._references[i] is None:
                continue
            if self._text_index[text.strip()] != i:
                continue
            out.append(text)
        return out

    def mean_quality(self, model: str) -> float:
        """The model's recorded mean quality over the whole data set."""
        return float(self.table.quality[:, self.check_model(model)].mean())

    def blended_price(self, model: str) -> float:
        """An implied price of ``model`` in USD per 1M (estimated) tokens.

        Total recorded cost over total estimated input + output tokens; use it as both
        the input and the output price when a router needs per-token prices for a
        replayed model (the recorded per-call cost stays what the calls report).

        Raises:
            ConfigError: unknown model, or the data set has no cost.
        """
        j = self.check_model(model)
        if self.table.cost is None:
            msg = f"data set {self.name!r} has no cost, so {model!r} has no implied price"
            raise ConfigError(msg)
        tokens = sum(
            estimate_tokens(self.table.prompts[i]) + estimate_tokens(self._responses[i][j])
            for i in range(len(self))
        )
        return float(self.table.cost[:, j].sum()) / max(tokens, 1) * 1e6

    def __repr__(self) -> str:
        return f"ReplayStore({self.name!r}, prompts={len(self)}, models={len(self.models)})"


@functools.cache
def _cached_store(dataset: str) -> ReplayStore:
    from pickllm.data import load_outcomes

    return ReplayStore(load_outcomes(dataset))
