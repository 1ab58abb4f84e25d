"""Every ```python block of README.md runs, section by section, offline.

The blocks of one ``##`` section run in order in one namespace, in a temporary folder.
Only the provider classes a reader would install are replaced, by offline fakes that
answer with a fixed text and report token usage: ``langchain_openai.ChatOpenAI`` and
``llama_index.llms.openai.OpenAI``. Everything else is the real package.
"""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.base.llms.types import (
    CompletionResponse,
    CompletionResponseGen,
    LLMMetadata,
)
from llama_index.core.llms import CustomLLM
from llama_index.core.llms.callbacks import llm_completion_callback

from langchain_pickllm import FakeToolChatModel

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```(\w*)\s*$")


def sections() -> dict[str, list[str]]:
    """The python blocks of README.md by ``##`` section, in order."""
    found: dict[str, list[str]] = {}
    heading, block, language = "(top)", list[str](), None
    for line in README.read_text(encoding="utf-8").splitlines():
        fence = FENCE.match(line)
        if language is None and fence is not None:
            language, block = fence.group(1), []
        elif language is not None and line.rstrip() == "```":
            if language == "python":
                found.setdefault(heading, []).append("\n".join(block))
            language = None
        elif language is not None:
            block.append(line)
        elif line.startswith("## "):
            heading = line[3:].strip()
    return found


SECTIONS = sections()


class FakeChatOpenAI(FakeToolChatModel):
    """``langchain_openai.ChatOpenAI`` for the README: offline, reports provider openai."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("answer", f"An answer from {kwargs.get('model', 'the model')}.")
        super().__init__(**kwargs)

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "openai"
        return params


class FakeOpenAI(CustomLLM):
    """``llama_index.llms.openai.OpenAI`` for the README: offline, reports its usage."""

    model: str = "gpt-4o-mini"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(model_name=self.model)

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        del formatted, kwargs
        usage = {"prompt_tokens": max(1, len(prompt) // 4), "completion_tokens": 8}
        return CompletionResponse(text=f"An answer from {self.model}.", raw={"usage": usage})

    @llm_completion_callback()
    def stream_complete(
        self, prompt: str, formatted: bool = False, **kwargs: Any
    ) -> CompletionResponseGen:
        response = self.complete(prompt, formatted=formatted, **kwargs)
        yield CompletionResponse(text=response.text, delta=response.text, raw=response.raw)


@pytest.fixture
def providers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The provider modules the README imports, as offline fakes; a temporary folder."""
    langchain_openai = types.ModuleType("langchain_openai")
    langchain_openai.ChatOpenAI = FakeChatOpenAI  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "langchain_openai", langchain_openai)
    llms = types.ModuleType("llama_index.llms")
    llms.__path__ = []
    openai = types.ModuleType("llama_index.llms.openai")
    openai.OpenAI = FakeOpenAI  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "llama_index.llms", sys.modules.get("llama_index.llms", llms))
    monkeypatch.setitem(sys.modules, "llama_index.llms.openai", openai)
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("section", list(SECTIONS))
def test_snippets_of_a_section_run_in_order(
    section: str, providers: None, capsys: pytest.CaptureFixture[str]
) -> None:
    namespace: dict[str, Any] = {"__name__": f"readme_{section}"}
    from llama_index.core import Settings

    llm_before = Settings._llm
    try:
        for number, code in enumerate(SECTIONS[section], 1):
            exec(compile(code, f"README.md [{section}] block {number}", "exec"), namespace)  # noqa: S102
    finally:
        Settings._llm = llm_before
    assert "Traceback" not in capsys.readouterr().err


def test_the_readme_is_in_the_order_a_user_needs() -> None:
    text = README.read_text(encoding="utf-8")
    headings = [line[3:] for line in text.splitlines() if line.startswith("## ")]
    wanted = [
        "Install",
        "Two commands",
        "Use it in LangChain",
        "Use it in LlamaIndex",
        "The objective",
        "Policies",
        "`pickllm bench` and your own data",
        "Measured numbers",
        "Development",
    ]
    positions = [next(i for i, h in enumerate(headings) if h.startswith(w)) for w in wanted]
    assert positions == sorted(positions)
    assert "pip install pickllm\n" not in text  # not on PyPI: install from a checkout
    assert 'pip install -e ".[langchain]"' in text


def test_the_snippets_that_need_a_provider_are_shown_with_it() -> None:
    code = "\n".join(block for blocks in SECTIONS.values() for block in blocks)
    assert "from langchain_openai import ChatOpenAI" in code
    assert "from llama_index.llms.openai import OpenAI" in code
    assert len(SECTIONS) >= 4
