"""NPUGEN_WAVES=fst makes a cocotb run leave an FST file that a viewer can open."""

from pathlib import Path

from npugen.rtl.systolic import SystolicParams
from npugen.sim.flow.build import run_bench

ROOT = Path(__file__).resolve().parents[2]


def test_fst_dump(monkeypatch, seed):
    monkeypatch.setenv("NPUGEN_WAVES", "fst")
    params = SystolicParams(rows=2, cols=2, dataflow="ws")
    build = ROOT / "build" / "cocotb-waves" / params.slug
    fst = build / "dump.fst"
    if fst.exists():
        fst.unlink()
    run_bench(params, test_module="npugen.sim.cocotb.tb_systolic", build_dir=build, seed=seed,
              test_filter="test_ws_timing")
    data = fst.read_bytes()
    # An FST file starts with a header block: type 0 (FST_BL_HDR), then its 8-byte length.
    assert len(data) > 200 and data[0] == 0 and int.from_bytes(data[1:9], "big") == 329
