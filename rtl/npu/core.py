"""The integrated NPU: memories, host port, controller, engines and post-processing."""

from functools import reduce
from operator import or_

from amaranth.hdl import Cat, Const, Module, Mux, ResetInserter, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..common.ram import Ice40SpRam, disjoint_memory
from .conv import ConvUnit
from .decoder import Decoder
from .eltwise import AddUnit
from .isa import FIELD_BASE, INSN_BITS, ISA_VERSION, ErrorCode, Op, insn_layout
from .params import NpuParams, params_hash
from .pool import AvgPoolUnit, MaxPoolUnit
from .post import PostUnit
from .protocol import STATUS_WORDS, Command, HostError, chunks
from .protocol import Memory as MemId
from .spfc import SparseFcUnit
from .wconv import WinogradUnit

__all__ = ["IMEM_CHUNKS", "Npu", "NpuState", "signature"]

#: 32-bit chunks of one instruction in the instruction memory.
IMEM_CHUNKS = INSN_BITS // 32


class _Port:
    """Signals in the shape of a ``lib.memory`` port (``addr``, ``en``, ``data``)."""

    def __init__(self, depth, width, name):
        self.addr = Signal(range(depth), name=f"{name}_addr")
        self.en = Signal(name=f"{name}_en")
        self.data = Signal(width, name=f"{name}_data")


class NpuState:
    """Values of the status word's state field (the simulator's ``NpuState``)."""

    IDLE, RUNNING, DONE, ERROR = 0, 1, 2, 3


def signature(p):
    """Members of the NPU ``p`` describes (the same for every ``p``)."""
    return {
        "i": In(stream.Signature(unsigned(32))),
        "o": Out(stream.Signature(unsigned(32))),
        "running": Out(1),
        "error": Out(1),
    }


class Npu(wiring.Component):
    """The NPU: run ISA programs (:mod:`.isa`) on int8 tensors held on chip.

    Host commands and replies are 32-bit words (:mod:`.protocol`). Once started, the
    controller fetches, decodes and checks (:class:`~.decoder.Decoder`) one instruction at
    a time and runs it on its unit (:class:`~.conv.ConvUnit` with the systolic array,
    :class:`~.pool.MaxPoolUnit`, :class:`~.pool.AvgPoolUnit`, :class:`~.eltwise.AddUnit`;
    AVGPOOL and CONV end in the shared :class:`~.post.PostUnit`), until ``HALT`` or an
    error. A failing check stops the program with the error code and the instruction's
    address; nothing of that instruction is executed.

    Members
    -------
    i : In(stream.Signature(unsigned(32)))
        Command words.
    o : Out(stream.Signature(unsigned(32)))
        Reply words (READ data, STATUS).
    running : Out(1)
        A program runs (a bench can wait for its fall without watching every cycle).
    error : Out(1)
        The program stopped with an error, or a host command was refused (sticky).

    The command port never waits on a running program: STATUS and ABORT are answered
    while it runs; memory commands are refused then (``HostError.BUSY``).
    """

    def __init__(self, p):
        if not isinstance(p, NpuParams):
            raise TypeError(f"p must be NpuParams, not {type(p).__name__}")
        self.p = p
        super().__init__(signature(p))

    def manifest_info(self):
        """Return timing, protocol notes and port roles for the JSON manifest."""
        p = self.p
        return {
            # the fetch (a read, then one chunk per cycle), the hand-over, the checker
            "latency": {"reset_to_ready": 0,
                        "instruction_overhead_cycles": IMEM_CHUNKS + 1 + 1 + Decoder.cycles(p)},
            "throughput": {"macs_per_cycle": p.macs, "command_words_per_cycle": 1,
                           **({"winograd_direct_macs_per_cycle": p.winograd.macs}
                              if p.winograd is not None else {})},
            "protocol": [
                ("Commands on i: a header word (bits 0-3 command, 4-7 memory, 8-31 count) and "
                "an argument word; WRITE 1, READ 2, START 3, STATUS 4, ABORT 5 "
                "(npugen.rtl.npu.protocol)."),
                "WRITE is followed by its data words, READ and STATUS answer on o.",
                ("START runs the program from the given instruction until HALT or an error; "
                "running is high meanwhile."),
                (f"Programs: ISA version {ISA_VERSION}, {INSN_BITS}-bit instructions, the first "
                f"a HEADER with params hash {params_hash(p):08x} (npugen.rtl.npu.isa)."),
            ],
            "roles": {
                "i": "32-bit command words",
                "o": "32-bit reply words (READ data, STATUS)",
                "running": "a program runs",
                "error": "the program stopped with an error, or a command was refused",
            },
        }

    def elaborate(self, platform):  # noqa: D102 (Amaranth's elaboration hook)
        m = Module()
        p = self.p
        lanes = p.lanes
        word_bits = 8 * lanes

        # -- memories ---------------------------------------------------------------------
        # No memory here sees a read and a write of one address in one cycle: the host
        # reads and writes only while no program runs and one command at a time, the fetch
        # reads the instructions and the PostUnit the table only while a program runs, and
        # an instruction reads one activation bank and writes the other (the checker's BANK
        # rule); so none needs yosys's read-during-write emulation (disjoint_memory).
        # self.disjoint lists them for the tests that check this in every cycle.
        self.disjoint = []
        banks = []
        for k in range(2):
            mem = disjoint_memory(shape=unsigned(word_bits), depth=p.act_words)
            self.disjoint.append(mem)
            m.submodules[f"act{k}"] = mem
            banks.append((mem.read_port(), mem.write_port()))
        if p.wgt_spram:
            # One port: the host writes only while no program runs, and never reads then.
            m.submodules.wgt = wgt = Ice40SpRam(word_bits, p.wgt_words)
            wgt_rd = _Port(p.wgt_words, word_bits, "wgt_rd")
            wgt_wr = _Port(p.wgt_words, word_bits, "wgt_wr")
            m.d.comb += [wgt.addr.eq(Mux(wgt_wr.en, wgt_wr.addr, wgt_rd.addr)),
                         wgt.w_en.eq(wgt_wr.en), wgt.w_data.eq(wgt_wr.data),
                         wgt.r_en.eq(wgt_rd.en & ~wgt_wr.en), wgt_rd.data.eq(wgt.r_data)]
        else:
            m.submodules.wgt = wgt = disjoint_memory(shape=unsigned(word_bits),
                                                     depth=p.wgt_words)
            self.disjoint.append(wgt)
            wgt_rd, wgt_wr = wgt.read_port(), wgt.write_port()
        # The table's entries in whole 32-bit chunks, written one chunk at a time as the
        # host sends them (no buffer for the entry; the pad bit is never read).
        tab_chunks = chunks(MemId.TAB, lanes)
        m.submodules.tab = tab = disjoint_memory(shape=unsigned(32 * tab_chunks),
                                                 depth=p.tab_entries)
        tab_rd, tab_wr = tab.read_port(), tab.write_port(granularity=32)
        # Instructions as 32-bit chunks (word k of instruction a at a * IMEM_CHUNKS + k): a
        # 256-bit-wide memory wastes block RAM on width (16 iCE40 block RAMs for 32
        # instructions); the fetch reads the chunks one per cycle.
        m.submodules.imem = imem = disjoint_memory(shape=unsigned(32),
                                                   depth=p.imem_words * IMEM_CHUNKS)
        self.disjoint += [tab, imem]
        imem_rd, imem_wr = imem.read_port(), imem.write_port()
        # A read port's enable is 1 unless driven: read only when asked, so that the data
        # holds while its consumer stalls (the later, conditional assignments win).
        m.d.comb += [port.en.eq(0) for port in (wgt_rd, tab_rd, imem_rd)]

        # Unified activation ports: address a -> bank a // act_words.
        act_raddr = Signal(16)
        act_ren = Signal()
        act_rdata = Signal(word_bits)
        act_waddr = Signal(16)
        act_wen = Signal()
        act_wdata = Signal(word_bits)
        r_bank = Signal()
        if p.act_words & (p.act_words - 1) == 0:
            # a power of two: the bank is an address bit (no comparison or subtraction
            # between a unit's address adder and the block RAMs' enables)
            log = p.act_words.bit_length() - 1

            def bank_of(addr):
                return addr[log]

            def bank_local(addr, k):
                return addr[:log]
        else:
            def bank_of(addr):
                return addr >= p.act_words

            def bank_local(addr, k):
                return addr - k * p.act_words
        with m.If(act_ren):
            m.d.sync += r_bank.eq(bank_of(act_raddr))
        for k, (rd, wr) in enumerate(banks):
            m.d.comb += [rd.addr.eq(bank_local(act_raddr, k)),
                         rd.en.eq(act_ren & (bank_of(act_raddr) == k)),
                         wr.addr.eq(bank_local(act_waddr, k)), wr.data.eq(act_wdata),
                         wr.en.eq(act_wen & (bank_of(act_waddr) == k))]
        m.d.comb += act_rdata.eq(Mux(r_bank, banks[1][0].data, banks[0][0].data))

        # -- controller state -------------------------------------------------------------
        abort = Signal()
        start = Signal()
        state = Signal(2)
        error = Signal(4)  # ErrorCode
        host_error = Signal(4)  # HostError
        # START checks its address against imem_words, and the fetch stops at imem_words
        # (ErrorCode.PC): the program counter never needs more.
        pc = Signal(range(p.imem_words + 1))
        cycles = Signal(32)
        # The ISA has no jumps: a run retires at most imem_words instructions.
        retired = Signal(range(p.imem_words + 1))
        busy_systolic = Signal(32)
        busy_pool = Signal(32)
        busy_sparse = Signal(32)
        busy_winograd = Signal(32)
        running = state == NpuState.RUNNING
        m.d.comb += [self.error.eq((state == NpuState.ERROR) | (host_error != HostError.NONE)),
                     self.running.eq(running)]

        # -- units (cleared by ABORT) -------------------------------------------------------
        # A cycle after the command, from a register: the reset reaches every flip-flop of
        # every unit, and from the host command decoder it was the ECP5 build's longest
        # route (19.4 ns). The controller stops at once; a new START comes two cycles after
        # ABORT at the earliest (a command header, then its argument), and a unit starts
        # only after the fetch and the checks.
        abort_units = Signal()
        m.d.sync += abort_units.eq(abort)
        clear = ResetInserter(abort_units)
        m.submodules.decoder = decoder = clear(Decoder(p))
        m.submodules.post = post = clear(PostUnit(p))
        maxpool = None  # (pool_on_array: MAXPOOL runs on the CONV unit)
        if not p.pool_on_array:
            m.submodules.maxpool = maxpool = clear(MaxPoolUnit(p))
        avgpool = clear(AvgPoolUnit(p)) if p.avgpool else None
        if avgpool is not None:
            m.submodules.avgpool = avgpool
        conv = None
        if p.systolic is not None:
            # (the unit itself, not the reset wrapper: its .disjoint for the tests)
            self.disjoint_parts = [ConvUnit(p)]
            m.submodules.conv = conv = clear(self.disjoint_parts[0])
        else:
            self.disjoint_parts = []
        adder = clear(AddUnit(p)) if p.add_units else None
        if adder is not None:
            m.submodules.add = adder
        spfc = clear(SparseFcUnit(p)) if p.sparse is not None else None
        if spfc is not None:
            m.submodules.spfc = spfc
        self.wconv = WinogradUnit(p) if p.winograd is not None else None
        wconv = clear(self.wconv) if self.wconv is not None else None
        if wconv is not None:
            m.submodules.wconv = wconv
        if p.serial_setup:  # the window units' products, from the checker's chain
            m.d.comb += [u.setup.eq(decoder.setup) for u in (conv, maxpool) if u is not None]
        insn = Signal(INSN_BITS)
        mode = Signal(2)
        units = [u for u in (conv, maxpool, avgpool, adder, spfc, wconv) if u is not None]
        m.d.comb += [u.insn.eq(insn) for u in units]
        m.d.comb += [post.mode.eq(mode), post.tab_data.eq(tab_rd.data)]
        # The PostUnit's input: CONV's (on either engine), AVGPOOL's or SPFC's (one runs at
        # a time).
        sources = [u for u in (conv, avgpool, spfc, wconv) if u is not None]
        for s in sources:
            m.d.comb += s.post.ready.eq(post.i.ready)
        m.d.comb += post.i.valid.eq(reduce(or_, [s.post.valid for s in sources], Const(0)))
        for k, s in enumerate(sources):
            with (m.If if k == 0 else m.Elif)(s.post.valid):
                m.d.comb += post.i.payload.eq(s.post.payload)
        # Read ports: units drive 0 when inactive.
        for u in units:
            m.d.comb += u.act_data.eq(act_rdata)
        unit_raddr = Signal(16)
        unit_ren = Signal()
        # Inactive units drive 0: an OR merges them (no adder on the memory address).
        m.d.comb += [unit_raddr.eq(reduce(or_, [u.act_addr for u in units])),
                     unit_ren.eq(reduce(or_, [u.act_en for u in units]))]
        wgt_users = [u for u in (conv, spfc, wconv) if u is not None]
        for u in wgt_users:
            m.d.comb += u.wgt_data.eq(wgt_rd.data)
        unit_busy = Signal()
        m.d.comb += unit_busy.eq(reduce(or_, [u.busy for u in units]) | ~post.idle)

        # -- host port --------------------------------------------------------------------
        cmd = Signal(4)
        mem_id = Signal(4)
        sizes = {MemId.ACT: 2 * p.act_words, MemId.WGT: p.wgt_words,
                 MemId.TAB: p.tab_entries, MemId.IMEM: p.imem_words}
        # A region the host may touch lies below 2**size_bits: the address register and
        # the range check need no more (a start or count at or above it is out of range).
        size_bits = max(sizes.values()).bit_length()
        addr = Signal(size_bits)
        left = Signal(24)
        n_chunks = {mid: chunks(mid, lanes) for mid in MemId}
        chunk = Signal(range(max(n_chunks.values())))
        last_chunk = Signal(range(max(n_chunks.values())))
        allowed = Signal()   # the WRITE/READ in progress really touches the memory
        host_chunks = max(n for mid, n in n_chunks.items() if mid != MemId.IMEM)
        # Activation and weight words are assembled here (table entries and instructions go
        # in chunk by chunk).
        wbuf_chunks = max(n_chunks[MemId.ACT], n_chunks[MemId.WGT])
        wbuf = Signal(32 * wbuf_chunks)
        # A READ takes each memory word into ``rdata`` the cycle after its read and sends
        # its chunks from there; a refused READ sends zeros. The small-FPGA builds
        # (``serial_setup``) send them straight from the memory's read port, which holds
        # its data until the next read (no unit reads while the host may): the register
        # costs 25 of the iCEBreaker build's last 31 logic cells, and at 12-20 MHz that
        # path is not critical.
        rdata = Signal(32 * host_chunks)
        status_idx = Signal(range(STATUS_WORDS))
        size = Signal(range(max(sizes.values()) + 1))
        with m.Switch(mem_id):
            for mid, value in sizes.items():
                with m.Case(mid):
                    m.d.comb += size.eq(value)
        status = Signal(32 * STATUS_WORDS)
        state_word = Cat(state, Const(0, 2), error, host_error, Const(0, 4),
                         Const(ISA_VERSION, 8), Const(0, 8))
        m.d.comb += status.eq(Cat(state_word, pc, Const(0, 16 - len(pc)), Const(0, 16),
                                  cycles, retired, Const(0, 32 - len(retired)),
                                  busy_systolic, busy_pool, Const(params_hash(p), 32),
                                  busy_sparse, busy_winograd))
        host_read = Signal()   # the host reads memory mem_id at addr this cycle
        host_write = Signal()
        host_wdata = Signal(32 * wbuf_chunks)
        tab_write = Signal()  # the host writes table chunk ``chunk`` of entry ``addr``
        imem_write = Signal()  # the host writes instruction chunk ``chunk`` of word ``addr``
        is_imem = mem_id == MemId.IMEM
        imem_host_addr = Signal(range(p.imem_words * IMEM_CHUNKS))  # that chunk's address

        with m.FSM(name="host"):
            with m.State("HDR"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    m.d.sync += [cmd.eq(self.i.payload[:4]), mem_id.eq(self.i.payload[4:8]),
                                 left.eq(self.i.payload[8:])]  # the count
                    m.next = "ARG"
            with m.State("ARG"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    a = self.i.payload
                    m.d.sync += [addr.eq(a), chunk.eq(0)]
                    known_mem = mem_id < 4
                    in_range = ~a[size_bits:].any() & ~left[size_bits:].any() \
                        & ((a[:size_bits] + left[:size_bits]) <= size)
                    ok = known_mem & in_range & ~running
                    refuse = Mux(~known_mem, HostError.MEMORY,
                                 Mux(running, HostError.BUSY, HostError.RANGE))
                    with m.Switch(mem_id):
                        for mid, n in n_chunks.items():
                            with m.Case(mid):
                                m.d.sync += last_chunk.eq(n - 1)
                        with m.Default():
                            m.d.sync += last_chunk.eq(0)
                    with m.Switch(cmd):
                        with m.Case(Command.WRITE, Command.READ):
                            m.d.sync += allowed.eq(ok)
                            with m.If(~ok):
                                m.d.sync += host_error.eq(refuse)
                            with m.If(left == 0):
                                m.next = "HDR"
                            with m.Elif(cmd == Command.WRITE):
                                m.next = "WDATA"
                            with m.Else():
                                m.next = "RREAD"
                        with m.Case(Command.START):
                            with m.If(running):
                                m.d.sync += host_error.eq(HostError.BUSY)
                            with m.Elif(a[size_bits:].any() | (a[:size_bits] >= p.imem_words)):
                                m.d.sync += host_error.eq(HostError.RANGE)
                            with m.Else():
                                m.d.comb += start.eq(1)
                                m.d.sync += host_error.eq(HostError.NONE)
                            m.next = "HDR"
                        with m.Case(Command.STATUS):
                            m.d.sync += status_idx.eq(0)
                            m.next = "STATUS"
                        with m.Case(Command.ABORT):
                            m.d.comb += abort.eq(1)
                            m.d.sync += host_error.eq(HostError.NONE)
                            m.next = "HDR"
                        with m.Default():
                            m.d.sync += host_error.eq(HostError.COMMAND)
                            m.next = "HDR"
            with m.State("WDATA"):
                m.d.comb += self.i.ready.eq(1)
                with m.If(self.i.valid):
                    with m.Switch(chunk):
                        for k in range(wbuf_chunks):
                            with m.Case(k):
                                m.d.sync += wbuf[32 * k:32 * k + 32].eq(self.i.payload)
                                m.d.comb += host_wdata.eq(
                                    Cat(wbuf[:32 * k], self.i.payload) if k else
                                    self.i.payload)
                    m.d.comb += [imem_write.eq(allowed & is_imem),
                                 tab_write.eq(allowed & (mem_id == MemId.TAB))]
                    m.d.sync += chunk.eq(chunk + 1)
                    with m.If(chunk == last_chunk):
                        m.d.comb += host_write.eq(allowed)
                        m.d.sync += [chunk.eq(0), addr.eq(addr + 1), left.eq(left - 1)]
                        with m.If(left == 1):
                            m.next = "HDR"
            def take(domain):  # the word read
                with m.Switch(mem_id):
                    with m.Case(MemId.ACT):
                        domain += rdata.eq(act_rdata)
                    with m.Case(MemId.WGT):
                        domain += rdata.eq(wgt_rd.data)
                    with m.Case(MemId.TAB):
                        domain += rdata.eq(tab_rd.data)
                    with m.Case(MemId.IMEM):
                        domain += rdata.eq(imem_rd.data)

            with m.State("RREAD"):
                m.d.comb += host_read.eq(allowed)
                m.next = "RSEND" if p.serial_setup else "RTAKE"
            if not p.serial_setup:
                with m.State("RTAKE"):  # the word read, into a register (block RAM outputs
                    # carry no output register: their clock-to-out and the memories'
                    # multiplexers then end here, not in the host's reply)
                    take(m.d.sync)
                    m.next = "RSEND"
            with m.State("RSEND"):  # the word read (an instruction: one chunk per read)
                m.d.comb += self.o.valid.eq(1)
                if p.serial_setup:
                    take(m.d.comb)
                with m.If(allowed):
                    with m.If(is_imem):
                        m.d.comb += self.o.payload.eq(rdata[:32])
                    with m.Else():
                        with m.Switch(chunk):
                            for k in range(host_chunks):
                                with m.Case(k):
                                    m.d.comb += self.o.payload.eq(rdata[32 * k:32 * k + 32])
                with m.If(self.o.ready):
                    m.d.sync += chunk.eq(chunk + 1)
                    with m.If(chunk == last_chunk):
                        m.d.sync += [chunk.eq(0), addr.eq(addr + 1), left.eq(left - 1)]
                        with m.If(left == 1):
                            m.next = "HDR"
                        with m.Else():
                            m.next = "RREAD"
                    with m.Elif(is_imem):  # the next chunk
                        m.next = "RREAD"
            with m.State("STATUS"):
                m.d.comb += self.o.valid.eq(1)
                with m.Switch(status_idx):
                    for k in range(STATUS_WORDS):
                        with m.Case(k):
                            m.d.comb += self.o.payload.eq(status[32 * k:32 * k + 32])
                with m.If(self.o.ready):
                    m.d.sync += status_idx.eq(status_idx + 1)
                    with m.If(status_idx == STATUS_WORDS - 1):
                        m.next = "HDR"

        # Host memory access (only while no program runs: ``allowed`` says so).
        local = addr
        m.d.comb += imem_host_addr.eq(local * IMEM_CHUNKS + chunk)
        with m.If(host_read):
            with m.Switch(mem_id):
                with m.Case(MemId.ACT):
                    m.d.comb += [act_raddr.eq(local), act_ren.eq(1)]
                with m.Case(MemId.WGT):
                    m.d.comb += [wgt_rd.addr.eq(local), wgt_rd.en.eq(1)]
                with m.Case(MemId.TAB):
                    m.d.comb += [tab_rd.addr.eq(local), tab_rd.en.eq(1)]
                with m.Case(MemId.IMEM):
                    m.d.comb += [imem_rd.addr.eq(imem_host_addr), imem_rd.en.eq(1)]
        with m.Else():
            m.d.comb += [act_raddr.eq(unit_raddr), act_ren.eq(unit_ren),
                         tab_rd.addr.eq(post.tab_addr), tab_rd.en.eq(post.tab_en)]
            if wgt_users:
                m.d.comb += [wgt_rd.addr.eq(reduce(or_, [u.wgt_addr for u in wgt_users])),
                             wgt_rd.en.eq(reduce(or_, [u.wgt_en for u in wgt_users]))]
        with m.If(host_write):
            with m.Switch(mem_id):
                with m.Case(MemId.ACT):
                    m.d.comb += [act_waddr.eq(local), act_wdata.eq(host_wdata), act_wen.eq(1)]
                with m.Case(MemId.WGT):
                    m.d.comb += [wgt_wr.addr.eq(local), wgt_wr.data.eq(host_wdata),
                                 wgt_wr.en.eq(1)]
                    if spfc is not None:
                        m.d.comb += spfc.invalidate.eq(1)
        with m.Elif(post.wr_en):
            m.d.comb += [act_waddr.eq(post.wr_addr), act_wdata.eq(post.wr_data), act_wen.eq(1)]
        pool_writer = conv if p.pool_on_array else maxpool
        with m.Elif(pool_writer.wr_en):
            m.d.comb += [act_waddr.eq(pool_writer.wr_addr), act_wdata.eq(pool_writer.wr_data),
                         act_wen.eq(1)]
        if adder is not None:
            with m.Elif(adder.wr_en):
                m.d.comb += [act_waddr.eq(adder.wr_addr), act_wdata.eq(adder.wr_data),
                             act_wen.eq(1)]

        with m.If(tab_write):  # table chunks go in as they arrive
            m.d.comb += [tab_wr.addr.eq(local), tab_wr.data.eq(Cat(*[self.i.payload] * tab_chunks)),
                         tab_wr.en.eq(1 << chunk)]
        with m.If(imem_write):  # instruction chunks go in as they arrive
            m.d.comb += [imem_wr.addr.eq(imem_host_addr), imem_wr.data.eq(self.i.payload),
                         imem_wr.en.eq(1)]

        # -- controller -------------------------------------------------------------------
        op = Signal(4)  # the running instruction's opcode
        # a CONV for the Winograd engine (engine 1), else for the systolic array
        on_winograd = data.View(insn_layout(Op.CONV), insn).engine if wconv is not None \
            else Const(0)
        is_conv = (op == Op.CONV) & ~on_winograd
        if p.pool_on_array:
            m.d.comb += conv.pool.eq(op == Op.MAXPOOL)
        with m.If(running):
            m.d.sync += cycles.eq(cycles + 1)
            # (with pool_on_array the CONV unit's MAXPOOLs count as pooling)
            conv_pools = conv.busy & (op == Op.MAXPOOL) if p.pool_on_array else Const(0)
            if conv is not None:
                with m.If(conv.busy & ~conv_pools):
                    m.d.sync += busy_systolic.eq(busy_systolic + 1)
            with m.If(reduce(or_, [u.busy for u in (maxpool, avgpool, adder) if u is not None],
                             conv_pools)):
                m.d.sync += busy_pool.eq(busy_pool + 1)
            if spfc is not None:
                with m.If(spfc.busy):
                    m.d.sync += busy_sparse.eq(busy_sparse + 1)
            if wconv is not None:
                with m.If(wconv.busy):
                    m.d.sync += busy_winograd.eq(busy_winograd + 1)
        fetched = Signal(range(IMEM_CHUNKS))  # chunks of the instruction read so far
        m.d.comb += [decoder.i.payload.eq(insn), decoder.o.ready.eq(1)]
        with m.FSM(name="control"):
            with m.State("WAIT"):
                with m.If(start):  # (START's argument is on the host port this cycle)
                    m.d.sync += [state.eq(NpuState.RUNNING), error.eq(ErrorCode.NONE),
                                 pc.eq(self.i.payload), cycles.eq(0), retired.eq(0),
                                 busy_systolic.eq(0), busy_pool.eq(0), busy_sparse.eq(0),
                                 busy_winograd.eq(0)]
                    m.next = "FETCH"
                with m.If(abort):
                    m.next = "WAIT"
            with m.State("FETCH"):
                with m.If(pc >= p.imem_words):
                    m.d.sync += [state.eq(NpuState.ERROR), error.eq(ErrorCode.PC)]
                    m.next = "WAIT"
                with m.Else():
                    m.d.comb += [imem_rd.addr.eq(pc * IMEM_CHUNKS), imem_rd.en.eq(1)]
                    m.d.sync += fetched.eq(0)
                    m.next = "LOAD"
                with m.If(abort):
                    m.next = "WAIT"
            with m.State("LOAD"):  # a chunk arrives, the next read
                # Each chunk into its place (not shifted through the others): the bits that
                # no opcode of this build reads are then left out of it.
                with m.Switch(fetched):
                    for k in range(IMEM_CHUNKS):
                        with m.Case(k):
                            m.d.sync += insn[32 * k:32 * k + 32].eq(imem_rd.data)
                m.d.sync += fetched.eq(fetched + 1)
                with m.If(fetched == IMEM_CHUNKS - 1):
                    m.next = "DECODE"
                with m.Else():
                    m.d.comb += [imem_rd.addr.eq(pc * IMEM_CHUNKS + fetched + 1),
                                 imem_rd.en.eq(1)]
                with m.If(abort):
                    m.next = "WAIT"
            with m.State("DECODE"):
                m.d.comb += decoder.i.valid.eq(1)
                with m.If(decoder.i.ready):
                    m.next = "CHECKED"
                with m.If(abort):
                    m.next = "WAIT"
            with m.State("CHECKED"):
                with m.If(decoder.o.valid):
                    d = decoder.o.payload
                    m.d.sync += [op.eq(d.op), mode.eq(insn[FIELD_BASE:FIELD_BASE + 2])]
                    with m.If(d.error != ErrorCode.NONE):
                        m.d.sync += [state.eq(NpuState.ERROR), error.eq(d.error)]
                        m.next = "WAIT"
                    with m.Elif(d.op == Op.HALT):
                        m.d.sync += [state.eq(NpuState.DONE), retired.eq(retired + 1)]
                        m.next = "WAIT"
                    with m.Elif(d.op == Op.HEADER):
                        m.d.sync += [retired.eq(retired + 1), pc.eq(pc + 1)]
                        m.next = "FETCH"
                    with m.Else():
                        m.next = "LAUNCH"
                with m.If(abort):
                    m.next = "WAIT"
            with m.State("LAUNCH"):
                m.d.comb += post.invalidate.eq(1)
                if p.pool_on_array:
                    m.d.comb += conv.start.eq(is_conv | (op == Op.MAXPOOL))
                elif conv is not None:
                    m.d.comb += conv.start.eq(is_conv)
                if wconv is not None:
                    m.d.comb += wconv.start.eq((op == Op.CONV) & on_winograd)
                if maxpool is not None:
                    m.d.comb += maxpool.start.eq(op == Op.MAXPOOL)
                if avgpool is not None:
                    m.d.comb += avgpool.start.eq(op == Op.AVGPOOL)
                if adder is not None:
                    m.d.comb += adder.start.eq(op == Op.ADD)
                if spfc is not None:
                    m.d.comb += spfc.start.eq(op == Op.SPFC)
                m.next = "EXECUTE"
                with m.If(abort):
                    m.next = "WAIT"
            with m.State("EXECUTE"):
                with m.If(~unit_busy):
                    if spfc is not None:
                        # (failed is the last SPFC's: only an SPFC reads it)
                        with m.If(spfc.failed & (op == Op.SPFC)):
                            m.d.sync += [state.eq(NpuState.ERROR), error.eq(ErrorCode.SPARSE)]
                            m.next = "WAIT"
                        with m.Else():
                            m.d.sync += [retired.eq(retired + 1), pc.eq(pc + 1)]
                            m.next = "FETCH"
                    else:
                        m.d.sync += [retired.eq(retired + 1), pc.eq(pc + 1)]
                        m.next = "FETCH"
                with m.If(abort):
                    m.next = "WAIT"
        with m.If(abort):
            m.d.sync += state.eq(NpuState.IDLE)
            m.d.sync += error.eq(ErrorCode.NONE)
        return m
