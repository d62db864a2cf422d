"""The sparse benchmark's arithmetic on hand-made metrics (without running Verilator)."""

import pytest

from npugen.rtl.sparse import SparseParams
from npugen.sim.flow import perf_sparse


def test_cycles_row_and_idle_fraction(tmp_path):
    p = SparseParams(n_pe=8, rows_max=256, cols_max=256)
    r = {"cycles": [700, 760], "compute_cycles": [450, 510], "useful_macs": [3000, 3200],
         "entries_read": [3300, 3500], "stored": 7000, "active": [400] * 8,
         "stream_cycles": [500, 540]}
    row = perf_sparse._cycles_row(p, 256, 256, 0.1, 0.5, r, clock_mhz=100)
    assert row["total_cycles"] == 730 and row["dense_cycles"] == 8192
    assert row["ratio"] == pytest.approx(730 / 8192)
    assert row["stream_cycles"] == 520
    assert row["stream_ratio"] == pytest.approx(520 / 8192)
    assert row["effective_gops"] == pytest.approx(2 * 3100 / 520 * 0.1)
    assert row["dense_equivalent_gops"] == pytest.approx(2 * 65536 / 520 * 0.1)
    assert perf_sparse._idle_fraction(p, r) == pytest.approx(1 - 3200 / (8 * 960))
    perf_sparse._plot({"a": [(1, 0.5), (2, 0.25)]}, 8, tmp_path / "lb.png")
    assert (tmp_path / "lb.png").stat().st_size > 1000
