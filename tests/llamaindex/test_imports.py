"""Import surface and import cost: llama_index is loaded only by llamaindex_pickllm."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import llamaindex_pickllm

ROOT = Path(__file__).resolve().parents[2]

EXPECTED_ALL = [
    "LlamaIndexEvaluator",
    "PickLLM",
    "PickLLMRouteEvent",
    "PickLLMSelection",
    "PickLLMSelector",
    "ReplayLLM",
    "TrackedCalls",
    "choice_names",
    "evaluation_score",
]


def run(code: str) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter; it prints one JSON object."""
    done = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_public_names_are_pinned() -> None:
    assert sorted(llamaindex_pickllm.__all__) == EXPECTED_ALL
    for name in EXPECTED_ALL:
        assert getattr(llamaindex_pickllm, name) is not None


def test_pickllm_and_langchain_pickllm_do_not_import_llama_index() -> None:
    result = run(
        """
        import importlib, json, pkgutil, sys
        imported = []
        for root in ("pickllm", "langchain_pickllm"):
            pkg = importlib.import_module(root)
            imported.append(root)
            for m in pkgutil.walk_packages(pkg.__path__, prefix=root + "."):
                importlib.import_module(m.name)
                imported.append(m.name)
        loaded = sorted(m for m in sys.modules if m.split(".")[0] == "llama_index")
        print(json.dumps({"imported": imported, "llama_index": loaded}))
        """
    )
    imported = result["imported"]
    assert isinstance(imported, list)
    assert "pickllm.router" in imported
    assert result["llama_index"] == []


def test_llamaindex_pickllm_does_not_import_langchain() -> None:
    result = run(
        """
        import json, sys
        import llamaindex_pickllm
        loaded = sorted(m for m in sys.modules if m.split(".")[0].startswith("langchain"))
        print(json.dumps({"langchain": loaded}))
        """
    )
    assert result["langchain"] == []


def test_missing_llama_index_names_the_extra() -> None:
    result = run(
        """
        import json, sys

        class NoLlamaIndex:
            # Pretend llama-index-core is not installed.
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "llama_index":
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
                return None

        sys.meta_path.insert(0, NoLlamaIndex())
        try:
            import llamaindex_pickllm
        except ImportError as exc:
            print(json.dumps({"error": str(exc)}))
        else:
            print(json.dumps({"error": None}))
        """
    )
    assert result["error"] is not None
    assert 'pip install "pickllm[llamaindex]"' in str(result["error"])
