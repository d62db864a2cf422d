"""The synthesis sweep's grid and plots (without running the tools)."""

from npugen.sim import sweep


def test_grid_covers_ecp5_and_up5k():
    labels = [(label, device) for label, _, device in sweep.grid()]
    assert ("systolic ws 12x12", "ecp5-85k") in labels
    assert any(device == "ice40-up5k" for _, device in labels)
    assert ("winograd layer (default)", "ecp5-85k") in \
        [(label, device) for label, _, device in sweep.grid(with_winograd=True)]
    sparse = [p.n_pe for _, p, device in sweep.grid(with_sparse=True)
              if p.block == "sparse" and device == "ecp5-85k"]
    assert sparse == [1, 2, 4, 8]


def test_plots_are_written(tmp_path):
    rows = [{"device": "ecp5-85k", "block": "systolic", "ok": True, "macs_per_cycle": n * n,
             "logic": 40 * n * n, "dsps": n * n, "fmax_mhz": 150 - n} for n in (2, 4, 8)]
    sweep._plot(rows, tmp_path)
    for key in ("luts", "dsps", "fmax_mhz"):
        assert (tmp_path / f"synth_sweep_{key}.png").stat().st_size > 1000
