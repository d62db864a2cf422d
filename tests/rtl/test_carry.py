"""The ECP5 carry-cell adder: its cell contents, its checks, and where the engines use it.

Its arithmetic is checked in Verilator, inside the ECP5 benches of the sparse engine
(``tests/cocotb/test_sparse.py``: every accumulator sum against numpy) and of the Winograd
engine (``tests/cocotb/test_winograd_engine.py``, and the NPU's in ``test_npu.py``: every
output against direct convolution), with npugen's ``CCU2C`` model
(``sim/flow/verilog/CCU2C.v``).
"""

import pytest
from amaranth.back import rtlil

from npugen.rtl.common.carry import Ecp5MuxAdd, mux_add_init
from npugen.rtl.sparse import SparseParams
from npugen.rtl.sparse.pe_parts import Accumulator
from npugen.rtl.winograd import WinogradParams
from npugen.rtl.winograd.engine_parts import TileMac


def test_cell_contents_make_mux_then_add():
    # Pins A = c, B = sel, C = b, D = a; entry {D, C, B, A} = ((sel ? a : b) ^ c), written
    # out by hand: bits 15..0 = 0101 0110 1001 1010. Entries 3..0 (C = D = 0) read "A",
    # the generate an adder needs.
    assert mux_add_init() == 0x569A
    assert mux_add_init() & 0xF == 0b1010


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"width": 1, "c_width": 1}, "width must be an integer >= 2, not 1"),
    ({"width": 32.0, "c_width": 8}, "width must be an integer >= 2, not 32.0"),
    ({"width": 32, "c_width": 0}, "c_width must be an integer >= 1, not 0"),
])
def test_wrong_widths(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Ecp5MuxAdd(**kwargs)


def test_chain_of_cells_in_the_ecp5_accumulator_only():
    """32 bits: 16 cells, each carry out into the next carry in; portable builds infer."""
    ecp5 = rtlil.convert(Accumulator(SparseParams(primitives="ecp5")))
    assert ecp5.count("cell \\CCU2C ") == 16
    assert "cell \\CCU2C " not in rtlil.convert(Accumulator(SparseParams()))
    odd = rtlil.convert(Ecp5MuxAdd(width=5, c_width=9))
    assert odd.count("cell \\CCU2C ") == 3


def test_winograd_channel_sums_on_carry_cells_with_ecp5_primitives():
    """16 channel sums of ``m_width`` bits, two bits per cell; portable builds infer."""
    p = WinogradParams(primitives="ecp5")
    assert rtlil.convert(TileMac(p)).count("cell \\CCU2C ") == 16 * ((p.m_width + 1) // 2)
    assert "cell \\CCU2C " not in rtlil.convert(TileMac(WinogradParams()))
