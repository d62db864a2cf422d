"""Small pipeline helpers: delay lines, registered reduction trees, multiplexers, range checks."""

from functools import reduce
from operator import or_

from amaranth.hdl import Array, Const, Mux, Signal, Value, unsigned
from amaranth.lib.memory import Memory

__all__ = ["LockstepPipeline", "delay", "in_range", "next_wrapping", "or_tree", "ram_delay",
           "reduce_tree", "select", "tree_levels"]


def delay(m, value, cycles, *, name, reset_less=False):
    """Return ``value`` delayed by ``cycles`` registers (``cycles == 0`` returns it as is).

    ``reset_less`` registers carry data qualified elsewhere (they then pack freely into DSP
    and fabric registers); resettable ones carry tags and valid bits.
    """
    for i in range(cycles):
        nxt = Signal.like(value, name=f"{name}_d{i + 1}", reset_less=reset_less)
        m.d.sync += nxt.eq(value)
        value = nxt
    return value


def ram_delay(m, value, cycles, *, name, block_ram=None):
    """Return ``value`` delayed by ``cycles``, through a memory instead of register stages.

    A circular buffer written every cycle. By default ``cycles - 1`` words read
    asynchronously at the write address just before the write lands, then one output
    register: on ECP5 the words go into LUT RAM (``TRELLIS_DPR16X4``), so a ``w``-bit line
    costs ``w`` flip-flops instead of ``w * cycles``. With ``block_ram`` (a
    :class:`~.ram.BufferRam`, e.g. ``BufferRam.ECP5`` for ``DP16KD`` with its output
    register) the words go into that RAM (read two cycles after the address, one ahead of
    the write) and cost no fabric but the pointers; from 4 cycles on the read runs two
    ahead and a fabric register follows the RAM's output (the same delay, so the route from
    a block RAM to the logic after it is a path of its own). Devices without LUT
    RAM (iCE40) would build the default memory from flip-flops and a read multiplexer: use
    :func:`delay` there. The data carries no reset (qualify it elsewhere); the pointers
    reset, which does not change the delay. Fewer than three cycles: plain registers.
    """
    value = Value.cast(value)
    if cycles < 3:
        return delay(m, value, cycles, name=name, reset_less=True)
    depth = cycles - 1

    def counter(suffix, init=0):  # counts 0 .. depth - 1 and wraps, one step per cycle
        count = Signal(range(depth), name=f"{name}_{suffix}", init=init)
        m.d.sync += count.eq(next_wrapping(count, depth))
        return count

    ptr = counter("ptr")
    out = Signal(value.shape(), name=f"{name}_q", reset_less=True)
    if block_ram is not None:
        from .ram import pipelined_ram

        # The read address runs one (or two) ahead of the write address, in a register of
        # its own: no adder between a flip-flop and the block RAMs' address pins. Two
        # ahead, the word read is one cycle younger and waits a cycle in ``out``.
        ahead = 2 if depth >= 3 else 1
        rd_ptr = counter("rd_ptr", init=ahead)
        m.submodules[name] = ram = pipelined_ram(block_ram, len(value), depth)
        m.d.comb += [ram.w_en.eq(1), ram.w_addr.eq(ptr), ram.w_data.eq(value),
                     ram.r_en.eq(1), ram.o_en.eq(1), ram.r_addr.eq(rd_ptr)]
        if ahead == 2:
            m.d.sync += out.eq(ram.r_data)
        else:
            m.d.comb += out.eq(ram.r_data)
        return out
    m.submodules[name] = mem = Memory(shape=unsigned(len(value)), depth=depth, init=[])
    wr = mem.write_port()
    rd = mem.read_port(domain="comb")
    m.d.comb += [wr.addr.eq(ptr), wr.data.eq(value), wr.en.eq(1), rd.addr.eq(ptr)]
    m.d.sync += out.eq(rd.data)
    return out


def tree_levels(n, fan_in=4):
    """Register levels :func:`reduce_tree` uses for ``n`` inputs (at least one)."""
    levels = 1
    while n > fan_in:
        n = -(-n // fan_in)
        levels += 1
    return levels


def reduce_tree(m, items, op, *, name, fan_in=4, reset_less=False):
    """Combine ``items`` with ``op`` through ``tree_levels(len(items))`` register levels.

    Each level combines groups of ``fan_in`` (one LUT level for 4-input bit operations) and
    registers the result, so every input sees the same latency: a value presented on any
    input in cycle T reaches the output in cycle T + levels.
    """
    items = list(items)
    level = 0
    while True:
        groups = [items[i:i + fan_in] for i in range(0, len(items), fan_in)]
        items = []
        for g, group in enumerate(groups):
            combined = reduce(op, group)
            reg = Signal(len(Value.cast(combined)), name=f"{name}_l{level}_{g}",
                         reset_less=reset_less)
            m.d.sync += reg.eq(combined)
            items.append(reg)
        level += 1
        if len(items) == 1:
            return items[0]


def or_tree(m, items, *, name, fan_in=4, reset_less=False):
    """:func:`reduce_tree` with OR (word-wise)."""
    return reduce_tree(m, items, or_, name=name, fan_in=fan_in, reset_less=reset_less)


def next_wrapping(count, modulus):
    """``count + 1``, or 0 after ``modulus - 1``: the next value of a counter modulo ``modulus``.

    ``modulus`` is an int or a Value (a run-time bound); the caller's signal must hold
    ``modulus - 1``.
    """
    return Mux(count == modulus - 1, 0, count + 1)


def select(items, index):
    """``items[index]`` as a multiplexer, with every value of ``index`` covered.

    Pads the choices with the last item up to ``2**len(index)``, so the generated case
    statement is complete (Verilator's CASEINCOMPLETE) and out-of-range indices are defined.
    """
    items = [Value.cast(x) for x in items]
    items += [items[-1]] * ((1 << len(Value.cast(index))) - len(items))
    return Array(items)[index]


def in_range(field, lo, hi, *, table=False):
    """``lo <= field <= hi`` for an unsigned field, without comparisons that are constant.

    A bound that the field's width already implies is left out, so the Verilog has no
    always-true comparison (Verilator's CMPCONST). With ``table``, a field of up to 6 bits
    selects its answer from a constant (a LUT or two in a row, where yosys maps a
    comparison to a carry chain).
    """
    field = Value.cast(field)
    if table and len(field) <= 6:
        return Const(sum(1 << v for v in range(lo, min(hi, (1 << len(field)) - 1) + 1)),
                     1 << len(field)).bit_select(field, 1)
    ok = field >= lo if lo > 0 else None
    if hi < (1 << len(field)) - 1:
        ok = field <= hi if ok is None else ok & (field <= hi)
    return ok if ok is not None else Value.cast(1)


class LockstepPipeline:
    """A stream pipeline of ``latency`` register stages that all advance together.

    Wires ``i``/``o`` (stream interfaces) so that every stage moves when the last one is
    empty or taken: ``go = ~o.valid | o.ready`` and ``i.ready = go``; ``o.valid`` is the last
    stage's valid bit, so it never depends combinationally on ``o.ready``. The caller drives
    ``o.payload`` from its last stage's registers (updated when :attr:`go` is high).
    """

    def __init__(self, m, i, o, latency):
        self.m = m
        self.go = Signal(name="go")
        m.d.comb += [self.go.eq(~o.valid | o.ready), i.ready.eq(self.go)]
        valid = [Signal(name=f"valid_{k}") for k in range(latency)]
        self.valid = valid  # each stage's valid bit
        with m.If(self.go):
            m.d.sync += valid[0].eq(i.valid)
            m.d.sync += [valid[k].eq(valid[k - 1]) for k in range(1, latency)]
        m.d.comb += o.valid.eq(valid[-1])

    def stage(self, value, name, k):
        """Register ``value`` into stage ``k`` (it moves with :attr:`go`); return the register."""
        reg = Signal.like(value, name=f"{name}_{k}")
        with self.m.If(self.go):
            self.m.d.sync += reg.eq(value)
        return reg

    def carry(self, values, k):
        """Register each of ``{name: value}`` into stage ``k``; return ``{name: register}``."""
        return {name: self.stage(v, name, k) for name, v in values.items()}
