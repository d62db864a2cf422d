"""The 2.25x claim as a regression test.

yosys counts 16 multipliers in the Winograd engine and 36 in the direct-convolution engine of
the same output rate (and none anywhere else).
"""

import pytest

from npugen.rtl.winograd import WinogradF23, WinogradParams
from npugen.rtl.winograd.direct import DirectConvTile
from npugen.sim.flow.synth import yosys_stat


@pytest.mark.parametrize(("cls", "count"), [(WinogradF23, 16), (DirectConvTile, 36)])
def test_multiplier_count(cls, count, tmp_path):
    stat = yosys_stat(cls(WinogradParams(c_max=5, k_max=3)), f"t_{cls.__name__.lower()}",
                      "generic", tmp_path)
    assert stat["multipliers"] == count
