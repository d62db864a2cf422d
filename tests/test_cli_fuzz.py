"""Malformed `npugen` invocations: each exits 2 with one line, no traceback, no files.

A table of the cases found by hand, then seeded random invocations that each carry exactly
one fault (a value out of range or of the wrong type, an unknown, abbreviated or repeated
flag, a missing required flag, an impossible parameter/device combination), built from the
registry so every block's flags are covered.
"""

import random
import subprocess
import sys

import pytest

from npugen.sim.blocks import BLOCKS
from npugen.sim.cli import main

TABLE = [
    (["generate", "systolic", "--rows", "0"], "rows must be in 1..64, not 0"),
    (["generate", "sparse", "--rows", "16"], "unrecognized arguments: --rows 16"),
    (["generate", "systolic", "--rows", "4", "--rows", "5"], "--rows given twice"),
    (["generate", "systolic", "--acc-widt", "20"], "unrecognized arguments: --acc-widt 20"),
    (["synth", "systolic", "--multiplier", "ecp5", "--device", "ice40-up5k"],
     "multiplier=ecp5 is for ecp5 devices, not for device ice40-up5k"),
    (["synth", "systolic", "--multiplier", "ice40", "--device", "ecp5-85k"],
     "multiplier=ice40 is for ice40 devices"),
    (["synth", "systolic", "--result-ram", "ecp5", "--device", "ice40-up5k"],
     "result_ram=ecp5 is for ecp5 devices"),
    (["synth", "systolic", "--device", "ecp5-85k", "--seed", "1,1"], "seed lists each seed once"),
    (["synth", "systolic", "--device", "ecp5-85k", "--freq", "0"], "freq must be in 1..1000"),
    (["board", "ulx3s-85f", "--block", "sparse", "--baud", "300"],
     "baud must be in 382..6250000 for the ulx3s-85f's 25 MHz clock, not 300"),
    (["board", "icebreaker", "--block", "sparse", "--block", "systolic"], "--block given twice"),
    (["board", "icebreaker", "--block", "sparse", "--rows", "16"],
     "unrecognized arguments: --rows 16"),
    (["run", "sparse", "--port", "/dev/null", "--vectors", "0"], "vectors must be in 1..1000000"),
    (["demo", "--seed", "-1"], "seed must be in 0..2147483648, not -1"),
    (["generate", "winograd", "--filter-input", "cooked"],
     "filter_input must be one of raw, transformed, not 'cooked'"),
    (["generate", "nope"], "invalid choice: 'nope'"),
]


def _needs_output(argv):
    return argv[0] in ("generate", "synth", "board", "demo")


@pytest.mark.parametrize(("argv", "message"), TABLE, ids=lambda x: " ".join(x)[:50]
                         if isinstance(x, list) else None)
def test_malformed_invocations(argv, message, tmp_path, capsys):
    out = tmp_path / "out"
    argv = [*argv, "-o", str(out)] if _needs_output(argv) else argv
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("npugen: error: ") and message in err, err
    assert not out.exists()


def test_a_malformed_invocation_as_a_process_leaves_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "npugen.sim.cli", "generate", "systolic",
                           "--rows", "4.5", "-o", str(tmp_path / "o")], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "npugen: error: rows must be an integer in 1..64, not '4.5'"]
    assert not (tmp_path / "o").exists()


def _fault(rng, block):
    """One fault for a `generate`/`synth` invocation of ``block``: extra argv words."""
    specs = [(name, spec) for name, spec, _ in block.params.leaf_specs()]
    name, spec = rng.choice(specs)
    flag = "--" + name.replace("_", "-").replace(".", "-")
    kind = rng.randrange(6)
    if kind == 0 and spec.kind == "int":
        return [flag, rng.choice(["-1", "99999", "x", "1.5", ""])]
    if kind == 1 and spec.kind in ("enum", "choice"):
        return [flag, "bogus"]
    if kind == 2 and spec.kind == "flag":
        return [flag, "maybe"]
    if kind == 3 and len(flag) > 5:
        return [flag[:-2], "1"]  # abbreviations are refused
    if kind == 4:
        return ["--no-such-flag", "1"]
    return [flag, "1", flag, "1"]  # given twice


def test_random_malformed_invocations(seed, tmp_path, capsys):
    rng = random.Random(seed)
    blocks = list(BLOCKS.values())
    for n in range(150):
        block = rng.choice(blocks)
        out = tmp_path / f"o{n}"
        command = rng.choice(["generate", "synth"])
        argv = [command, block.name, *_fault(rng, block), "-o", str(out)]
        if command == "synth":
            argv += ["--device", rng.choice(["ecp5-85k", "ice40-up5k"])]
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2, (argv, code, err)
        assert err.count("\n") == 1 and err.startswith("npugen: error: "), (argv, err)
        assert "Traceback" not in err and not out.exists(), argv
