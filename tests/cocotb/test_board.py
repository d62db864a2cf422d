"""End to end in Verilator: host client -> simulated UART -> link -> block -> host."""

import json
from pathlib import Path

from npugen.rtl.link import LinkedBlock
from npugen.rtl.sparse import SparseParams
from npugen.rtl.systolic import SystolicParams
from npugen.rtl.winograd import WinogradParams
from npugen.sim.build import run_checked

ROOT = Path(__file__).resolve().parents[2]
DIVISOR = 8


class _Named:
    """Params whose JSON names the block, for the generic board bench."""

    def to_json(self):
        return json.dumps({"block": self.block, **self.to_dict()}, sort_keys=True)


class _Sparse(_Named, SparseParams):
    pass


class _Systolic(_Named, SystolicParams):
    pass


class _Winograd(_Named, WinogradParams):
    pass


def test_sparse_over_uart(seed):
    _board(_Sparse(n_pe=2, rows_max=12, cols_max=10, entries_max=64), seed)


def test_systolic_over_uart(seed):
    _board(_Systolic(rows=3, cols=2, acc_width=20), seed)


def test_systolic_os_over_uart(seed):
    _board(_Systolic(rows=2, cols=3, dataflow="os"), seed)


def test_winograd_over_uart(seed):
    _board(_Winograd(c_max=4, k_max=3, h_max=8, w_max=8), seed)


def _board(params, seed):
    names = run_checked(params, test_module="npugen.sim.cocotb.tb_board", seed=seed,
                        top=LinkedBlock, extra_env={"NPUGEN_DIVISOR": str(DIVISOR)},
                        build_dir=ROOT / "build" / "cocotb" / f"{params.slug}_board")
    assert len(names) == 3, names  # end to end x2, bad frames
