"""The block registry: everything npugen knows about a block, in one entry per block.

The CLI's subcommands and flags, ``npugen demo``, ``npugen run``, ``npugen board``, the
lint, manifest, board and link tests, the synthesis sweep and the wheel test all iterate over
:data:`BLOCKS`; ``tests/test_registry.py`` fails when an entry lacks any part. Adding a block
is its folders (gateware, model, formats, bench, workload, tests) and one :class:`Block` in
the list at the end of this module.
"""

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from npugen.rtl import npu, sparse, systolic, winograd
from npugen.rtl.common.params import Params

from .formats import npu as npu_formats
from .formats import sparse as sparse_formats
from .formats import systolic as systolic_formats
from .formats import winograd as winograd_formats
from .host.npu import run_npu
from .host.sparse import run_sparse
from .host.systolic import run_systolic
from .host.winograd import run_winograd
from .models import npu as npu_model
from .models import sparse as sparse_model
from .models import systolic as systolic_model
from .models import winograd as winograd_model

__all__ = ["BLOCKS", "Block", "DemoCase", "Part", "SweepPoint", "block_of"]


@dataclass(frozen=True)
class Part:
    """A piece of a block with a bench or a synthesis point of its own (e.g. a tile engine).

    ``build(params)`` makes the component, ``signature(params)`` describes its ports without
    building it, ``model(params)`` returns its golden model, ``streams`` maps its stream
    ports to beat builders and parsers, ``bench`` is its cocotb module. Its Verilog module is
    ``<params.slug>_<name>``.
    """

    name: str
    build: Callable
    signature: Callable
    model: Callable
    streams: dict
    bench: str


@dataclass(frozen=True)
class DemoCase:
    """One row of ``npugen demo``: parameters and the bench test that self-checks them."""

    params: Params
    test: str


@dataclass(frozen=True)
class SweepPoint:
    """One configuration of the synthesis sweep (``part``: synthesize a piece, not the top).

    ``last``: run after every other point (the longest place and route). ``router``:
    nextpnr's router for the point (router1 unless the point needs router2 to route).
    """

    label: str
    params: Params
    device: str
    part: Part | None = None
    last: bool = False
    router: str = "router1"


@dataclass(frozen=True)
class Block:
    """One generated block and everything the host side knows about it.

    Attributes
    ----------
    name, summary : str
        The CLI's subcommand and its help line.
    params : type
        The block's :class:`~npugen.rtl.common.params.Params` class.
    component : callable
        ``component(params)`` builds the top-level gateware.
    signature : callable
        ``signature(params)``: the top's ports as wiring members, without building it.
    model : callable
        ``model(params)`` returns the golden-model function that defines the outputs.
    streams : dict
        Stream port name -> beat builder (inputs) or parser (outputs), in
        :mod:`npugen.sim.formats`.
    bench : str
        cocotb module of the Verilator bench.
    demo : tuple of DemoCase
        What ``npugen demo`` runs for this block.
    workload : callable
        ``await workload(client, params, seed, vectors=, log=)``: the self-checking run of
        ``npugen run`` and the board bench.
    small : Params
        A small configuration for the link and board tests (fast to build).
    corners : tuple of Params
        Configurations at the edges of the parameter space (lint, manifest tests).
    parts : tuple of Part
        Pieces with benches or synthesis points of their own.
    stall : callable or None
        ``stall(params, beats)``: payload values of the widest input stream that make the
        block stop taking beats (the link's stall test). None: all-ones beats do.
    sweep : callable
        ``sweep(quick)`` returns the block's :class:`SweepPoint` list.
    presets : dict
        Named configurations (``--preset NAME`` on the command line; flags given with it
        override its values).
    router : str
        nextpnr's router for ``npugen synth`` unless ``--router`` names one: router1
        (nextpnr's default), or router2 where router1 does not route the block's builds.
    """

    name: str
    summary: str
    params: type
    component: Callable
    signature: Callable
    model: Callable
    streams: dict
    bench: str
    demo: tuple
    workload: Callable
    small: Params
    corners: tuple
    sweep: Callable
    parts: tuple = field(default=())
    stall: Callable | None = None
    presets: dict = field(default_factory=dict)
    router: str = "router1"

    def part(self, name):
        """Return the :class:`Part` called ``name``."""
        for part in self.parts:
            if part.name == name:
                return part
        raise KeyError(f"{self.name} has no part {name!r}")


def block_of(params):
    """Return the :class:`Block` that ``params`` (a block's Params object) belongs to."""
    return BLOCKS[params.block]


def _systolic_sweep(quick):
    """Return systolic sweep points on the ECP5-85F and the iCE40 UP5K.

    WS arrays on the ECP5-85F (ECP5 primitives, up to the whole device and beyond; the
    portable build at a few sizes), and the arrays that fit the iCE40 UP5K in both styles.
    """
    ecp5 = {"multiplier": "ecp5", "result_ram": "ecp5"}
    sizes = [2, 4, 8] if quick else [2, 4, 6, 8, 10, 12]
    shapes = [(n, n, 0) for n in sizes] + ([] if quick else [(12, 13, 0), (16, 16, 156)])
    points = [SweepPoint(f"systolic ws {r}x{c} ecp5" + (f" (DSP for {d} PEs)" if d else ""),
                         systolic.SystolicParams(rows=r, cols=c, dsp_limit=d, **ecp5),
                         "ecp5-85k", last=r * c > d > 0)
              for r, c, d in shapes]
    points += [SweepPoint(f"systolic ws {n}x{n} inferred", systolic.SystolicParams(rows=n, cols=n),
                          "ecp5-85k") for n in ([2, 8] if quick else [2, 4, 8])]
    points += [SweepPoint(f"systolic ws {r}x{c} inferred",
                          systolic.SystolicParams(rows=r, cols=c), "ice40-up5k")
               for r, c in ([(2, 2)] if quick else [(1, 1), (2, 2), (2, 4), (3, 3)])]
    points += [SweepPoint(f"systolic ws {r}x{c} ice40",
                          systolic.SystolicParams(rows=r, cols=c, multiplier="ice40"),
                          "ice40-up5k")
               for r, c in ([(2, 2)] if quick else [(2, 2), (2, 4), (4, 4)])]
    return points


def _sparse_sweep(quick):
    """Return sparse sweep points: 1 to 8 PEs, 256 x 256, on the ECP5-85F; 2 on the UP5K.

    The ECP5 points come portable and with ``primitives=ecp5``, and 1 and 8 PEs also with
    double-buffered accumulators (``acc_banks=2``).
    """
    points = [SweepPoint(f"sparse n_pe={n} 256x256" + (" ecp5" if prim == "ecp5" else ""),
                         sparse.SparseParams(n_pe=n, rows_max=256, cols_max=256,
                                             entries_max=2048, primitives=prim), "ecp5-85k")
              for prim in ("inferred", "ecp5") for n in ([1, 8] if quick else [1, 2, 4, 8])]
    if not quick:  # the double-buffered accumulators (the readout hidden)
        points += [SweepPoint(f"sparse n_pe={n} 256x256 ecp5 2 banks",
                              sparse.SparseParams(n_pe=n, rows_max=256, cols_max=256,
                                                  entries_max=2048, acc_banks=2,
                                                  primitives="ecp5"), "ecp5-85k")
                   for n in (1, 8)]
    points.append(SweepPoint("sparse n_pe=2 64x64", sparse.SparseParams(n_pe=2, entries_max=512),
                             "ice40-up5k"))
    return points


def _winograd_sweep(quick):
    """Return the tile engine, default and on ECP5 primitives (the layer adds line buffers)."""
    return [SweepPoint("winograd tile engine (default)", winograd.WinogradParams(), "ecp5-85k",
                       part=WINOGRAD_ENGINE),
            SweepPoint("winograd tile engine ecp5", winograd.WinogradParams(primitives="ecp5"),
                       "ecp5-85k", part=WINOGRAD_ENGINE)]


def _npu_sweep(quick):
    """Return the NPU on the ECP5-85F (8x8 ECP5 array) and the iCE40 UP5K (4x4 SB_MAC16).

    The UP5K build has one requantization unit: the DSPs all go to the array.
    """
    return [
        SweepPoint("npu 8x8 ecp5", npu.NpuParams(systolic=systolic.SystolicParams(
            rows=8, cols=8, multiplier="ecp5", result_ram="ecp5")), "ecp5-85k"),
        # (router1 does not converge on the UP5K build: 98.8% full)
        SweepPoint("npu 4x4 ice40 (UP5K)", NPU_UP5K, "ice40-up5k", router="router2"),
        SweepPoint("npu 2x2 ice40 (iCEBreaker)", NPU_ICEBREAKER, "ice40-up5k"),
    ]


def _npu_params(lanes, **sizes):
    return npu.NpuParams(lanes=lanes, systolic=systolic.SystolicParams(rows=lanes, cols=lanes),
                         **sizes)


#: An NPU for the iCE40 UP5K: a 4x4 SB_MAC16 array, one serial requantization unit, the
#: weights in two SB_SPRAM256KA blocks (16384 words: 64 KiB), the other memories in block
#: RAM, sized for a digits-sized CNN (8x8 inputs, 16 channels); no ADD and no AVGPOOL
#: unit (the digits networks need neither), MAXPOOL on the array, requantization in the
#: ``ort`` rounding only: 5,216 of the UP5K's 5,280 logic cells (docs/npu.md).
NPU_UP5K = npu.NpuParams(lanes=4, act_words=512, wgt_words=16384, acc_words=64,
                         tab_entries=64, imem_words=32, requant_lanes=1, requant_serial=True,
                         wgt_spram=True, serial_setup=True, add_units=0, avgpool=False,
                         array_broadcast=True, pool_on_array=True, requant_ort_only=True,
                         systolic=systolic.SystolicParams(rows=4, cols=4, multiplier="ice40"))

#: The NPU of the iCEBreaker bitstream (``npugen board icebreaker --block npu
#: --link-counters false`` with these parameters): NPU_UP5K at 2 lanes (a 2x2 SB_MAC16
#: array, one SB_SPRAM256KA of weights) with the compact requantizer, so that it fits beside
#: the UART link: 5,249 of the UP5K's 5,280 logic cells (docs/npu.md).
NPU_ICEBREAKER = replace(NPU_UP5K, lanes=2, act_words=1024, requant_compact=True,
                         systolic=systolic.SystolicParams(rows=2, cols=2, multiplier="ice40"))

#: The NPU of ``npugen demo`` and of the Verilator bench's default run; its memories hold
#: the digits CNN (``npugen demo``'s end-to-end step).
NPU_DEMO = _npu_params(4, act_words=256, wgt_words=2048, acc_words=64, tab_entries=64,
                       imem_words=16)

#: ``NPU_DEMO`` with a 4-PE sparse engine: the digits MLP's pruned hidden layer runs as an
#: ``SPFC`` (the Verilator inference test).
NPU_SPARSE_DEMO = replace(NPU_DEMO, sparse=sparse.SparseParams(
    n_pe=4, rows_max=64, cols_max=64, entries_max=256, act_width=16, act_lanes=4))

SPARSE_DECODER = Part("decoder", sparse.RelIndexDecoder, sparse.ports.decoder_signature,
                      lambda p: sparse_model.decoder_pairs, sparse_formats.DECODER_STREAMS,
                      "npugen.sim.cocotb.tb_sparse_decoder")
WINOGRAD_ENGINE = Part("engine", winograd.WinogradF23, winograd.ports.engine_signature,
                       lambda p: winograd_model.conv2d_direct, winograd_formats.ENGINE_STREAMS,
                       "npugen.sim.cocotb.tb_winograd_engine")

_BLOCKS = [
    Block(
        name="systolic",
        summary="TPU-style systolic int8 MAC array (weight- or output-stationary)",
        params=systolic.SystolicParams,
        component=systolic.systolic_array,
        signature=systolic.signature,
        model=lambda p: (systolic_model.ws_tile if p.dataflow is systolic.Dataflow.WS
                         else systolic_model.os_tile),
        streams=systolic_formats.STREAMS,
        bench="npugen.sim.cocotb.tb_systolic",
        demo=(DemoCase(systolic.SystolicParams(), "test_ws_demo"),
              DemoCase(systolic.SystolicParams(dataflow="os"), "test_os_demo")),
        workload=run_systolic,
        small=systolic.SystolicParams(rows=3, cols=2, acc_width=20),
        corners=(systolic.SystolicParams(rows=1, cols=1, dataflow="ws"),
                 systolic.SystolicParams(rows=3, cols=8, dataflow="ws"),
                 systolic.SystolicParams(rows=1, cols=1, dataflow="os"),
                 systolic.SystolicParams(rows=5, cols=3, acc_width=16, dataflow="os"),
                 systolic.SystolicParams(rows=2, cols=3, multiplier="ecp5", result_ram="ecp5"),
                 systolic.SystolicParams(rows=3, cols=3, multiplier="ice40", dataflow="os")),
        sweep=_systolic_sweep,
    ),
    Block(
        name="sparse",
        summary="EIE-style sparse matrix-vector engine: CSC storage, 4-bit codebook and "
                "relative row indices, zero-activation skipping",
        params=sparse.SparseParams,
        component=sparse.SparseMatVec,
        signature=sparse.signature,
        model=lambda p: sparse_model.sparse_matvec,
        streams=sparse_formats.STREAMS,
        bench="npugen.sim.cocotb.tb_sparse",
        demo=(DemoCase(sparse.SparseParams(), "test_demo"),),
        workload=run_sparse,
        small=sparse.SparseParams(n_pe=2, rows_max=12, cols_max=10, entries_max=64),
        corners=(sparse.SparseParams(n_pe=1, rows_max=1, cols_max=1, entries_max=16,
                                     queue_depth=1, act_lanes=1, relu=True, acc_banks=2),
                 sparse.SparseParams(n_pe=64, rows_max=100, cols_max=7, entries_max=16,
                                     act_width=16, acc_width=48, act_lanes=16, queue_depth=3,
                                     acc_banks=2),
                 sparse.SparseParams(n_pe=3, rows_max=4096, cols_max=4096, entries_max=65535)),
        sweep=_sparse_sweep,
        parts=(SPARSE_DECODER,),
    ),
    Block(
        name="winograd",
        summary="3x3 convolution layer on a Winograd F(2x2,3x3) tile engine, exact integer "
                "arithmetic",
        params=winograd.WinogradParams,
        component=winograd.WinogradConv,
        signature=winograd.signature,
        model=lambda p: winograd_model.conv2d_winograd,
        streams=winograd_formats.STREAMS,
        bench="npugen.sim.cocotb.tb_winograd",
        demo=(DemoCase(winograd.WinogradParams(), "test_demo"),),
        workload=run_winograd,
        small=winograd.WinogradParams(c_max=4, k_max=3, h_max=8, w_max=8),
        corners=(winograd.WinogradParams(c_max=1, k_max=1),
                 winograd.WinogradParams(c_max=3, k_max=4, filter_input="transformed"),
                 winograd.WinogradParams(acc_width=16),
                 winograd.WinogradParams(c_max=3, k_max=5, h_max=9, w_max=7, engines=3)),
        sweep=_winograd_sweep,
        parts=(WINOGRAD_ENGINE,),
    ),
    Block(
        name="npu",
        summary="small NPU: scratchpads, an instruction-driven controller, exact "
                "requantization (ort, tflite, gemmlowp), convolutions on the systolic array, "
                "pruned FC layers on the sparse engine, pooling, element-wise add",
        params=npu.NpuParams,
        component=npu.Npu,
        signature=npu.signature,
        model=lambda p: npu_model.NpuModel,
        streams=npu_formats.STREAMS,
        bench="npugen.sim.cocotb.tb_npu",
        demo=(DemoCase(NPU_DEMO, "test_demo"),),
        workload=run_npu,
        small=_npu_params(2, act_words=80, wgt_words=256, acc_words=40, tab_entries=16,
                          imem_words=8),
        corners=(npu.NpuParams(),
                 _npu_params(1, act_words=80, wgt_words=256, acc_words=40, tab_entries=16,
                             imem_words=8, requant_lanes=1),
                 npu.NpuParams(lanes=3, act_words=16, wgt_words=16, acc_words=2,
                               tab_entries=2, imem_words=2, systolic=None),
                 NPU_UP5K),
        sweep=_npu_sweep,
        # STATUS commands whose replies nobody reads: the command port waits on its output.
        stall=lambda p, beats: [int(npu.protocol.Command.STATUS), 0] * (beats // 2),
        presets={"demo": NPU_DEMO, "up5k": NPU_UP5K, "icebreaker": NPU_ICEBREAKER},
        # router1 oscillates on the default build (ECP5-85F: 4000 arcs left after 23
        # minutes) and on the full UP5K ones; router2 routes them (docs/npu.md)
        router="router2",
    ),
]

#: Every block, by name, in the order the CLI and the demo list them.
BLOCKS = {block.name: block for block in _BLOCKS}
