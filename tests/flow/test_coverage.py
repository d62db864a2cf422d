"""The coverage switches and the merge of Verilator coverage files (hand-written ones)."""

from npugen.sim.flow import coverage


def test_build_args_follow_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(coverage.ENV, raising=False)
    monkeypatch.delenv(coverage.TOGGLES_ENV, raising=False)
    assert coverage.build_args() == []
    monkeypatch.setenv(coverage.ENV, "off")
    assert coverage.build_args() == []
    monkeypatch.setenv(coverage.ENV, str(tmp_path))
    assert coverage.build_args() == ["--coverage-line"]
    monkeypatch.setenv(coverage.TOGGLES_ENV, "1")
    assert coverage.build_args() == ["--coverage-line", "--coverage-toggle"]
    monkeypatch.setenv(coverage.TOGGLES_ENV, "0")
    assert coverage.build_args() == ["--coverage-line"]
    (arg,) = coverage.plusargs("top")
    assert arg.startswith(f"+verilator+coverage+file+{tmp_path.resolve()}/top.")


def _point(source, line, page, count, comment=""):
    fields = {"f": source, "l": str(line), "page": page, "o": comment}
    text = "".join(f"\x01{k}\x02{v}" for k, v in fields.items())
    return f"C '{text}' {count}\n"


def test_merge_counts_a_point_hit_by_any_run(tmp_path):
    v = "build/cocotb/x/systolic_ws_2x2_a8w8acc32.v"
    (tmp_path / "a.dat").write_text(
        "# SystemC::Coverage-3\n" + _point(v, 10, "v_line/top", 0) + _point(v, 11, "v_line/top", 3)
        + _point(v, 12, "v_toggle/top", 0, "q[0]") + _point(v, 12, "v_toggle/top", 0, "q[1]"))
    (tmp_path / "b.dat").write_text(_point(v, 10, "v_line/top", 1)
                                    + _point(v, 12, "v_toggle/top", 2, "q[0]"))
    (cov,) = coverage.merge(sorted(tmp_path.glob("*.dat"))).values()
    assert cov.lines == [2, 2] and cov.toggles == [1, 2]
    assert cov.uncovered_toggles == ["q[1]"]
    table = coverage.report(tmp_path)
    assert "100.0% (   2/   2)" in table and "50.0% (1/2)" in table


def test_line_only_runs_show_no_toggle_figure(tmp_path):
    v = "sparse_pe1_r8c8e64_a8acc32_q8l1.v"
    (tmp_path / "a.dat").write_text(_point(v, 5, "v_line/top", 0) + _point(v, 6, "v_line/top", 1))
    (cov,) = coverage.merge([tmp_path / "a.dat"]).values()
    assert cov.toggle_text == "-" and cov.line_percent == 50.0
    assert coverage.report(tmp_path, markdown=True).splitlines()[-1] == \
        f"| `{v}` | 50.0% (1/2) | - | 5 |"
