"""Generated Verilog lints clean with `verilator --lint-only -Wall` and no flag but that.

Every block of the registry, at its defaults, its link-test size and its corner
configurations, and every part: the files carry their own waivers (LINT_PRAGMAS), each a
property of Amaranth's Verilog backend.
"""

import pytest

from npugen.sim.blocks import BLOCKS
from npugen.sim.flow.build import LINT_PRAGMAS, lint, write_core

CASES = [(params, None) for block in BLOCKS.values()
         for params in dict.fromkeys([block.params(), block.small, *block.corners])]
CASES += [(block.params(), part) for block in BLOCKS.values() for part in block.parts]


@pytest.mark.parametrize(("params", "part"), CASES,
                         ids=lambda x: x.slug if hasattr(x, "slug") else getattr(x, "name", ""))
def test_lint_clean(params, part, tmp_path):
    v_path, _ = write_core(params, tmp_path, part)
    ok, output = lint(v_path)
    assert ok, output


def test_waivers_are_only_the_documented_ones(tmp_path):
    assert list(LINT_PRAGMAS) == ["WIDTHEXPAND", "WIDTHTRUNC", "CASEINCOMPLETE", "PROCASSINIT",
                                  "DECLFILENAME", "UNUSEDSIGNAL"]
    v_path, _ = write_core(BLOCKS["systolic"].small, tmp_path)
    text = v_path.read_text()
    for rule, why in LINT_PRAGMAS.items():
        assert f"/* verilator lint_off {rule} */" in text and why in text
        assert text.count(f"lint_off {rule}") == 1 and text.count(f"lint_on {rule}") == 1


def test_lint_catches_a_real_problem(tmp_path):
    """The lint helper is not a rubber stamp: an undriven output fails."""
    bad = tmp_path / "bad.v"
    bad.write_text("module bad(input clk, input a, output q, output r);\n"
                   "  assign q = a & clk;\nendmodule\n")
    ok, output = lint(bad)
    assert not ok and "UNDRIVEN" in output


@pytest.mark.parametrize("block", list(BLOCKS.values()), ids=lambda b: b.name)
def test_plain_verilator_build(block, tmp_path):
    """`verilator --cc <file>.v`, no flag at all, turns every block's Verilog into C++."""
    import subprocess

    from npugen.sim.flow.verilator import use_verilator

    v_path, _ = write_core(block.small, tmp_path)
    found = use_verilator()
    proc = subprocess.run([str(found.executable), "--cc", v_path.name], cwd=tmp_path,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "%Warning" not in proc.stderr, proc.stderr
    assert (tmp_path / "obj_dir" / f"V{v_path.stem}.h").exists()
