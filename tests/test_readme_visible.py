"""The Python snippets of docs/agents-and-visibility.md run offline and print what the text says."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "agents-and-visibility.md"


def test_the_snippets_run_and_print_what_they_say() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) >= 4
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "core"), str(ROOT)])}
    done = subprocess.run(  # noqa: S603 - our own interpreter and the doc's code
        [sys.executable, "-c", "\n".join(blocks)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=env,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout.splitlines()
    # every "# <output>" comment right after a print in the doc is what it printed
    for block in blocks:
        for line in block.splitlines():
            if line.startswith("# ") and not line.startswith("#  ") and "(" not in line[:3]:
                expected = line[2:].split("  <-")[0].strip()
                if expected and not expected.startswith(("Offline", "With real")):
                    assert any(expected in printed for printed in out), expected
    logs = done.stderr
    assert "pickllm.router DEBUG route" in logs
    assert "What is 3 + 3" not in logs
