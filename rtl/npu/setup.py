"""A unit's per-instruction products, one after another on one shift-add multiplier."""

from amaranth.hdl import Mux, Signal

__all__ = ["PREVIOUS", "ProductChain", "Step"]

#: A step's ``a``: the step before's result, handed over in the chain's own register (that
#: step then needs no ``dest``).
PREVIOUS = object()


class Step:
    """One product of a :class:`ProductChain`: ``dest <- then(a * b)``.

    ``b`` is the narrow operand: the step takes ``len(b)`` cycles (one per bit of ``b``)
    plus one to load its operands. ``then`` maps the product to the value written (an
    offset, a sum with an earlier step's result, a comparison); by default the product
    itself. ``a`` and ``b`` are unsigned and may name the results of earlier steps; ``a`` may
    be :data:`PREVIOUS` (its width ``a_bits``), and ``dest`` None when the next step takes
    the result that way.
    """

    def __init__(self, dest, a, b, then=None, *, a_bits=None):
        self.dest, self.a, self.b = dest, a, b
        self.then = then if then is not None else (lambda product: product)
        assert (a is PREVIOUS) == (a_bits is not None)
        self.a_bits = a_bits if a is PREVIOUS else len(a)


class ProductChain:
    """Computes ``steps`` in order on one shift-add multiplier, inside the caller's module.

    For small FPGAs: the sizes and address steps a unit needs once per instruction come out
    of one adder and two shift registers instead of one DSP block (or a fabric multiplier)
    each. Assert :attr:`start` for one cycle; the steps run; :attr:`done` is high in the
    cycle whose clock edge writes the last step's ``dest`` (so the state after it sees every
    result), :attr:`cycles` (``sum(len(b) + 1)`` over the steps) cycles after the start
    cycle. Operands are read in each step's load cycle, after the start cycle's edge.
    """

    def __init__(self, m, steps, name):
        self.start = Signal(name=f"{name}_start")
        self.done = Signal(name=f"{name}_done")
        self.cycles = sum(len(s.b) + 1 for s in steps)
        assert steps[0].a is not PREVIOUS
        for s, after in zip(steps, steps[1:] + [None], strict=True):
            assert s.dest is not None or (after is not None and after.a is PREVIOUS)
        a_bits = max(s.a_bits for s in steps)
        b_bits = max(len(s.b) for s in steps)
        width = max(s.a_bits + len(s.b) for s in steps)
        k = Signal(range(len(steps)), name=f"{name}_step")
        n = Signal(range(b_bits), name=f"{name}_bit")
        load = Signal(name=f"{name}_load")
        running = Signal(name=f"{name}_running")
        a_sh = Signal(width, name=f"{name}_a")
        b_sh = Signal(b_bits, name=f"{name}_b")
        acc = Signal(width, name=f"{name}_acc")
        total = Signal(width, name=f"{name}_total")  # the product after this cycle's bit
        m.d.comb += total.eq(acc + Mux(b_sh[0], a_sh, 0))
        assert a_bits <= width

        with m.If(self.start):
            m.d.sync += [running.eq(1), load.eq(1), k.eq(0)]
        with m.Elif(running & load):
            m.d.sync += [load.eq(0), n.eq(0), acc.eq(0)]
            with m.Switch(k):
                for idx, s in enumerate(steps):
                    with m.Case(idx):
                        m.d.sync += b_sh.eq(s.b)
                        if s.a is not PREVIOUS:  # (else a_sh holds the step before's result)
                            m.d.sync += a_sh.eq(s.a)
        with m.Elif(running):
            m.d.sync += [acc.eq(total), a_sh.eq(a_sh << 1), b_sh.eq(b_sh >> 1), n.eq(n + 1)]
            with m.Switch(k):
                for idx, s in enumerate(steps):
                    with m.Case(idx):
                        with m.If(n == len(s.b) - 1):
                            m.d.sync += [load.eq(1), k.eq(k + 1)]
                            result = s.then(total)
                            if s.dest is not None:
                                m.d.sync += s.dest.eq(result)
                            if idx + 1 < len(steps) and steps[idx + 1].a is PREVIOUS:
                                assert len(result) <= steps[idx + 1].a_bits
                                m.d.sync += a_sh.eq(result)
                            if idx == len(steps) - 1:
                                m.d.comb += self.done.eq(1)
                                m.d.sync += running.eq(0)
