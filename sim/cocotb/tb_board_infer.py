"""cocotb bench: a compiled network on the NPU's board core, through the simulated UART.

The same :class:`~npugen.sim.host.client.HostClient` and the same
:func:`~npugen.sim.host.npu.infer_on_client` as ``npugen infer --engine board`` drive the
Verilator model of ``HostLink(Npu)`` bit by bit over its UART pins. Environment:
``DUT_PARAMS``, ``SEED``, ``NPUGEN_DIVISOR`` (see :mod:`.tb_board`), ``NPUGEN_LINK_COUNTERS``
(``0``: the link has no cycle counters; STATUS must say so) and ``NPUGEN_INFER``,
a JSON file ``{"compiled": DIR, "inputs": [[word, ...], ...], "result": PATH}``; ``result``
receives ``{"outputs": [[word, ...], ...], "cycles": [...]}``.
"""

import json
import os
from pathlib import Path

import cocotb

from ..compiler.artifact import read_compiled
from ..host.npu import infer_on_client
from .tb_board import _setup


@cocotb.test()
async def test_infer_over_uart(dut):
    """Load the program over the link, run each image, read its output back."""
    spec = json.loads(Path(os.environ["NPUGEN_INFER"]).read_text())
    compiled = read_compiled(spec["compiled"])
    params, _, _, client = await _setup(dut)
    assert compiled.params == params, "the compiled network is for another NPU"
    outputs, cycles = await infer_on_client(client, compiled, spec["inputs"])
    assert len(outputs) == len(spec["inputs"])
    if os.environ.get("NPUGEN_LINK_COUNTERS") == "0":  # a link built without its counters
        status = await client.status()
        assert not status["counters"], status
        assert status["cycles"] == status["first_in"] == status["last_out"] == 0, status
    Path(spec["result"]).write_text(json.dumps({"outputs": outputs, "cycles": cycles}))
