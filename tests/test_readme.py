"""The README's commands and example stay true."""

import re
import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_embedding_example_runs(tmp_path, capsys):
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    example = next(b for b in blocks if "class MyTop" in b)
    script = tmp_path / "example.py"
    script.write_text(example)
    runpy.run_path(str(script), run_name="__main__")
    assert "characters of Verilog" in capsys.readouterr().out


def test_quick_start_commands_are_the_ones_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text()
    for command in ["pip install -e '.[dev]'", "npugen demo", "python -m pytest -n 2 --slow"]:
        assert command in README, command
        assert command in ci, command
