"""The README's "Using jobsched in your app" example works as written, as real processes."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
BIN = Path(sys.executable).parent


def section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end]


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def test_the_readme_starts_with_make_demo_and_make_test() -> None:
    first = blocks(README.read_text(encoding="utf-8"), "sh")[0]
    assert [line.split("#")[0].strip() for line in first.strip().splitlines()] == [
        "make demo",
        "make test",
    ]


def test_the_readme_app_example_schedules_and_runs_its_job(tmp_path: Path) -> None:
    usage = section("Using jobsched in your app")
    assert "3.11" in usage
    [app] = blocks(usage, "python")
    (tmp_path / "hello.py").write_text(app, encoding="utf-8")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("JOBSCHED_")}
    environ["PATH"] = f"{BIN}{os.pathsep}{environ.get('PATH', '')}"
    outputs = []
    for line in blocks(usage, "sh")[1].strip().splitlines():
        argv = shlex.split(line, comments=True)
        result = subprocess.run(
            argv, capture_output=True, text=True, cwd=tmp_path, env=environ, timeout=120
        )
        assert result.returncode == 0, (line, result.stderr)
        outputs.append(result.stdout)
    assert (tmp_path / "jobsched.db").exists()
    assert "hello, Ada" in outputs[-1]
    assert "took 1 job (succeeded 1): ran 1 in" in outputs[-1]
