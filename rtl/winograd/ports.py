"""Port layouts and timing of the Winograd layer and tile engine, as functions of parameters.

Host code (benches, workloads, the manifest) reads these instead of building the gateware.
"""

from amaranth.hdl import signed, unsigned
from amaranth.lib import data, stream
from amaranth.lib.wiring import In, Out

from ..common.result_buffer import ResultBuffer
from .params import FilterInput, Primitives

__all__ = [
    "cfg_layout", "engine_cfg_layout", "engine_drain_cycles", "engine_product_cycles",
    "engine_latency", "engine_out_layout", "engine_signature", "filter_layout",
    "filter_transform_cycles", "out_layout", "pixel_layout", "signature", "tile_layout",
]


def engine_product_cycles(p):
    """Tile engine: cycles from issuing a (filter, channel) pair to its product.

    ``primitives=inferred``: the memory read, the words registered at the multipliers'
    inputs, the product register (3). ``primitives=ecp5``: the U' store's read and output
    registers (V: its read and a fabric register), the ``MULT18X18D``'s input and output
    registers and a fabric register (5).
    """
    return 5 if p.primitives is Primitives.ECP5 else 3


def filter_transform_cycles(p):
    """Tile engine: the filter transform's register stages for a raw filter.

    Between a filter taken and its word written: 1, or 3 with ``primitives=ecp5`` (each pass
    in two steps); 0 for ``filter_input=transformed``.
    """
    if p.filter_input is not FilterInput.RAW:
        return 0
    return 3 if p.primitives is Primitives.ECP5 else 1


def engine_drain_cycles(p):
    """Tile engine: cycles from a product to the output written.

    The channel sum, the output transform's column and row passes, the output register
    (4); with ``primitives=ecp5`` each pass in two steps, a sum of two then the third term,
    each registered (6).
    """
    return 6 if p.primitives is Primitives.ECP5 else 4


def cfg_layout(p):
    """Layer ``i_cfg``: height, width, channels, filters (each the value itself), same."""
    return data.StructLayout({
        "height": unsigned(p.h_max.bit_length()),
        "width": unsigned(p.w_max.bit_length()),
        "channels": unsigned(p.c_max.bit_length()),
        "filters": unsigned(p.k_max.bit_length()),
        "same": 1,
    })


def filter_layout(p, addressed=False):
    """``i_filter``: ``g`` (3x3 raw filter) or ``u`` (4x4 transformed U'), per ``filter_input``.

    ``addressed``: also ``addr``, the filter's place ``k * C + c`` in the store (the filters
    may then come in any order).
    """
    word = ({"g": data.ArrayLayout(signed(p.data_width), 9)}
            if p.filter_input is FilterInput.RAW
            else {"u": data.ArrayLayout(signed(p.u_width), 16)})
    if addressed:
        word["addr"] = unsigned(max(1, (p.k_max * p.c_max - 1).bit_length()))
    return data.StructLayout(word)


def pixel_layout(p):
    """``i_pixel``: ``x`` (``c_max`` channels of signed ``data_width``) and ``last``."""
    return data.StructLayout({"x": data.ArrayLayout(signed(p.data_width), p.c_max), "last": 1})


def out_layout(p):
    """Layer ``o``: a 2x2 output tile ``y``, the ``mask`` of existing pixels, ``last``."""
    return data.StructLayout({"y": data.ArrayLayout(signed(p.acc_width), 4), "mask": 4,
                              "last": 1})


def signature(p):
    """Members of :class:`~.layer.WinogradConv`."""
    return {
        "i_cfg": In(stream.Signature(cfg_layout(p))),
        "i_filter": In(stream.Signature(filter_layout(p))),
        "i_pixel": In(stream.Signature(pixel_layout(p))),
        "o": Out(stream.Signature(out_layout(p))),
        "error": Out(1),
    }


def engine_cfg_layout(p):
    """Tile engine ``i_cfg``: channels and filters of the layer."""
    return data.StructLayout({"channels": unsigned(p.c_max.bit_length()),
                              "filters": unsigned(p.k_max.bit_length())})


def tile_layout(p):
    """Tile engine ``i_tile``: one channel ``d`` of a 4x4 tile, ``last`` channel, layer ``end``."""
    return data.StructLayout({"d": data.ArrayLayout(signed(p.data_width), 16), "last": 1,
                              "end": 1})


def engine_out_layout(p):
    """Tile engine ``o``: a 2x2 output tile ``y`` and ``last`` (filter K-1)."""
    return data.StructLayout({"y": data.ArrayLayout(signed(p.acc_width), 4), "last": 1})


def engine_signature(p, addressed=False):
    """Members of :class:`~.engine.WinogradF23` (``addressed``: see :func:`filter_layout`)."""
    return {
        "i_cfg": In(stream.Signature(engine_cfg_layout(p))),
        "i_filter": In(stream.Signature(filter_layout(p, addressed))),
        "i_tile": In(stream.Signature(tile_layout(p))),
        "o": Out(stream.Signature(engine_out_layout(p))),
        "error": Out(1),
    }


def engine_latency(p):
    """Cycles from issuing the first channel of a filter to its tile on ``o`` (C = 1)."""
    return engine_product_cycles(p) + engine_drain_cycles(p) + ResultBuffer.read_latency
