"""A Verilator model is built once per build folder, and rebuilt when anything changes.

Sources, flags and the C++ optimisation count: a stale model never runs. The Verilog is
generated again only when the generator's sources or the parameters change.
"""

from npugen.rtl.systolic import SystolicParams
from npugen.sim.flow.build import (
    BUILD_FAST,
    RUN_FAST,
    _build_stamp,
    _generator_stamp,
    read_results,
    run_bench,
)


def test_stamp_follows_sources_and_flags(tmp_path):
    a, b = tmp_path / "a.v", tmp_path / "b.v"
    a.write_text("module a; endmodule\n")
    b.write_text("module b; endmodule\n")
    base = _build_stamp([a, b], "a", ["--coverage-line"], None, BUILD_FAST)
    assert _build_stamp([a, b], "a", ["--coverage-line"], None, BUILD_FAST) == base
    assert _build_stamp([a, b], "a", [], None, BUILD_FAST) != base
    assert _build_stamp([a, b], "a", ["--coverage-line"], "fst", BUILD_FAST) != base
    assert _build_stamp([a, b], "a", ["--coverage-line"], None, RUN_FAST) != base
    assert _build_stamp([a], "a", ["--coverage-line"], None, BUILD_FAST) != base
    b.write_text("module b; wire w; endmodule\n")
    assert _build_stamp([a, b], "a", ["--coverage-line"], None, BUILD_FAST) != base


def test_second_run_reuses_the_model_and_a_changed_flag_rebuilds_it(tmp_path, seed):
    params = SystolicParams(rows=2, cols=2, dataflow="ws")
    build = tmp_path / params.slug

    stages = []

    def run(cxx_opt):
        stages.clear()
        xml = run_bench(params, test_module="npugen.sim.cocotb.tb_systolic", build_dir=build,
                        seed=seed, test_filter="test_ws_timing", cxx_opt=cxx_opt, cover=False,
                        stage=stages.append)
        names, failed, skipped = read_results(xml)
        assert names and not failed and not skipped, (names, failed, skipped)
        stat = (build / params.slug).stat()
        return stat.st_ino, stat.st_mtime_ns

    def verilog():
        return (build / f"{params.slug}.v").stat().st_mtime_ns

    first = run(BUILD_FAST)
    assert "generating Verilog" in stages
    generated = verilog()
    assert run(BUILD_FAST) == first  # the same executable file, untouched
    assert "the Verilog is up to date" in stages and verilog() == generated
    assert run(RUN_FAST) != first  # rebuilt at the other optimisation level
    stamp = build / f"{params.slug}.stamp"
    stamp.write_text("another generator\n" + stamp.read_text().split("\n", 1)[1])
    run(RUN_FAST)
    assert "generating Verilog" in stages and verilog() != generated
    generated = verilog()
    with (build / f"{params.slug}.v").open("a") as f:  # written by something else
        f.write("// edited\n")
    run(RUN_FAST)
    assert "generating Verilog" in stages


def test_generator_stamp_follows_params():
    a = SystolicParams(rows=2, cols=2, dataflow="ws")
    assert _generator_stamp(a, None) == _generator_stamp(a, None)
    assert _generator_stamp(SystolicParams(rows=2, cols=3, dataflow="ws"), None) \
        != _generator_stamp(a, None)
