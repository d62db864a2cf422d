"""Generated Verilog passes `verilator --lint-only -Wall` with only the documented waivers."""

import pytest

from npugen.rtl.sparse import SparseParams
from npugen.rtl.systolic import SystolicParams
from npugen.rtl.winograd import WinogradParams
from npugen.sim.build import LINT_WAIVERS, lint, write_core


@pytest.mark.parametrize("params", [
    SystolicParams(rows=1, cols=1, dataflow="ws"),
    SystolicParams(rows=3, cols=8, dataflow="ws"),
    SystolicParams(rows=1, cols=1, dataflow="os"),
    SystolicParams(rows=5, cols=3, acc_width=16, dataflow="os"),
    WinogradParams(c_max=1, k_max=1),
    WinogradParams(c_max=3, k_max=4, filter_input="transformed"),
    WinogradParams(acc_width=16),
    WinogradParams(c_max=3, k_max=5, h_max=9, w_max=7, engines=3),
    SparseParams(),
    SparseParams(n_pe=1, rows_max=1, cols_max=1, entries_max=16, queue_depth=1, act_lanes=1,
                 relu=True),
    SparseParams(n_pe=64, rows_max=100, cols_max=7, entries_max=16, act_width=16,
                 acc_width=48, act_lanes=16, queue_depth=3),
    SparseParams(n_pe=3, rows_max=4096, cols_max=4096, entries_max=65535),
], ids=lambda p: p.slug)
def test_lint_clean(params, tmp_path):
    v_path, _ = write_core(params, tmp_path)
    ok, output = lint(v_path)
    assert ok, output


def test_waivers_are_only_the_documented_ones():
    assert LINT_WAIVERS == ["-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-CASEINCOMPLETE",
                            "-Wno-PROCASSINIT", "-Wno-DECLFILENAME", "-Wno-UNUSEDSIGNAL"]


def test_lint_catches_a_real_problem(tmp_path):
    """The lint helper is not a rubber stamp: an undriven output fails."""
    bad = tmp_path / "bad.v"
    bad.write_text("module bad(input clk, input a, output q, output r);\n"
                   "  assign q = a & clk;\nendmodule\n")
    ok, output = lint(bad)
    assert not ok and "UNDRIVEN" in output
