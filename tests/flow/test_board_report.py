"""Reading nextpnr's report: the summary line `npugen board` prints and the overused resources."""

from npugen.sim.flow.board import build_summary, overfull

REPORT = """\
Info: Device utilisation:
Info: 	         ICESTORM_LC:  5249/ 5280    99%
Info: 	        ICESTORM_RAM:    21/   30    70%
Info: 	               SB_IO:     4/   96     4%
Info: 	               SB_GB:     8/    8   100%
Info: 	        ICESTORM_PLL:     0/    1     0%
Info: 	         SB_WARMBOOT:     0/    1     0%
Info: Max frequency for clock 'cd_sync_clk': 15.20 MHz (PASS at 12.00 MHz)
Info: Max frequency for clock 'cd_sync_clk': 17.96 MHz (PASS at 12.00 MHz)
"""


def test_summary_names_what_is_used_and_the_routed_fmax():
    assert build_summary(REPORT) == ("ICESTORM_LC 5,249/5,280 (99%), ICESTORM_RAM 21/30 (70%); "
                                     "Fmax 17.96 MHz (PASS at 12.00 MHz)")
    assert build_summary("Info: nothing here\n") == ""


def test_overfull_names_only_what_is_over():
    assert overfull(REPORT) == []
    over = REPORT.replace("5249/ 5280    99%", "6489/ 5280   122%")
    assert overfull(over) == ["ICESTORM_LC 6,489/5,280 (122%)"]
