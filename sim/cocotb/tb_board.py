"""cocotb bench for a board core (block behind the UART host link), driven by the host client.

The same :class:`npugen.sim.host.client.HostClient` and workload as ``npugen run`` talk to
the Verilator model through a bit-level simulated UART; every output word is checked against
the golden model. Environment: ``DUT_PARAMS`` (the block's params), ``SEED``,
``NPUGEN_DIVISOR`` (clock cycles per UART bit of the build).
"""

import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles

from npugen.rtl.common.params import Params
from npugen.rtl.link import protocol as P

from ..blocks import block_of
from ..formats.link import frame
from ..host.client import HostClient, LinkError
from .uart import SimUart


async def _setup(dut):
    params = Params.from_json(os.environ["DUT_PARAMS"])
    seed = int(os.environ["SEED"])
    divisor = int(os.environ["NPUGEN_DIVISOR"])
    dut._log.info("params %s, SEED=%d, divisor %d", params.to_json(), seed, divisor)
    Clock(dut.clk, 10, unit="ns").start(start_high=False)
    dut.rst.value = 1
    dut.rx.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    uart = SimUart(dut, divisor)
    return params, seed, uart, HostClient(uart, block_of(params).signature(params))


@cocotb.test()
@cocotb.parametrize(gap=[0, 3])
async def test_end_to_end(dut, gap):
    """Load, run and read back through the UART; every word equals the golden model."""
    params, seed, uart, client = await _setup(dut)
    uart.gap = gap  # idle bit times between bytes, as a slow host would leave
    result = await block_of(params).workload(client, params, seed, vectors=2, log=dut._log.info)
    assert result["words"] > 0, result
    assert result["mismatches"] == 0, result
    assert not result["block_error"] and not result["bad_frame"], result
    assert result["last_out"] > result["first_in"] > 0, result


async def _expect_error(client, data, code):
    await client.transport.send(data)
    try:
        await client.reply(P.REPLY_ERROR, lambda n: 0)
    except LinkError as exc:
        assert f"board error {code}:" in str(exc), str(exc)
    else:
        raise AssertionError(f"no error reply for {data.hex()}")


@cocotb.test()
async def test_bad_frames(dut):
    """Bad frames are answered with their error code and ignored; the block is untouched."""
    params, seed, uart, client = await _setup(dut)
    good = frame(P.CMD_STATUS, 0, 0)
    port, width, _ = max(client.inputs.values())  # the last input stream (data, not config)
    corrupt = bytearray(frame(P.CMD_WRITE, port, 1, bytes(width // 8 + 1)))
    corrupt[5] ^= 0x10  # a payload bit flips on the line
    await _expect_error(client, bytes(corrupt), P.ERR_CHECK)
    await _expect_error(client, frame(0x42, 0, 0), P.ERR_COMMAND)
    await _expect_error(client, frame(P.CMD_READ, 7, 1), P.ERR_PORT)
    await _expect_error(client, frame(P.CMD_READ, 0, 0), P.ERR_LENGTH)
    await _expect_error(client, frame(P.CMD_WRITE, 0, 10_000, b"\x00" * 8), P.ERR_LENGTH)
    await _expect_error(client, good[:3], P.ERR_TIMEOUT)  # truncated: the line goes quiet
    status = await client.status()
    assert status["bad_frame"] and not status["block_error"], status
    assert status["first_in"] == 0, "no beat may have reached the block"
    assert not (await client.status())["bad_frame"], "STATUS clears the bad-frame flag"
    result = await block_of(params).workload(client, params, seed, vectors=1, log=dut._log.info)
    assert result["mismatches"] == 0 and not result["block_error"], result
