"""cocotb bench that runs a compiled network on a batch (``npugen infer --engine verilator``).

Environment: ``DUT_PARAMS``, ``SEED`` (see :class:`~.bench.Bench`) and ``NPUGEN_INFER``, a
JSON file ``{"compiled": DIR, "inputs": [[word, ...], ...], "result": PATH}``: each
image's activation words (already quantized and laid out by the host). The program is
loaded once through the command port; each image is written, started and run
autonomously (no Python per cycle) and its output words read back. ``result`` receives
``{"outputs": [[word, ...], ...], "cycles": [...], "seconds": s}``, cycles from the NPU's
own counter.
"""

import json
import os
import time
from pathlib import Path

import cocotb

from ..compiler.artifact import read_compiled
from ..compiler.execute import output_words_count
from ..host import npu as host
from ..models.npu import NpuState
from .tb_npu import NpuBench


@cocotb.test()
async def test_infer(dut):
    """Load the program, then run every image of the batch and read its output."""
    spec = json.loads(Path(os.environ["NPUGEN_INFER"]).read_text())
    compiled = read_compiled(spec["compiled"])
    h = NpuBench(dut)
    p = h.p
    assert compiled.params == p, "the compiled network is for another NPU"
    await h.start()
    await h.command(host.load_program(compiled.program, p.lanes))
    address = compiled.plan["input"]["address"]
    out, count = compiled.plan["output"]["address"], output_words_count(compiled)
    words, cycles, began = [], [], time.perf_counter()
    for n, image in enumerate(spec["inputs"]):
        await h.command(host.write("act", address, image, p.lanes))
        st, _ = await h.execute(timeout_us=100_000_000)
        assert st["state"] is NpuState.DONE, f"image {n}: {st}"
        words.append(await h.read("act", out, count))
        cycles.append(st["cycles"])
    Path(spec["result"]).write_text(json.dumps({
        "outputs": words, "cycles": cycles, "seconds": time.perf_counter() - began}))
