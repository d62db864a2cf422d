"""Reading nextpnr's --report JSON: the critical path in words (`npugen synth`)."""

from npugen.sim.flow.synth import critical_path, multiply_driven


def _step(kind, delay, cell):
    return {"type": kind, "delay": delay, "from": {"cell": cell}, "to": {"cell": cell}}


def _report():
    """Return a shortened report with three paths.

    A register -> DSP -> two carry cells -> register path, an asynchronous reset path
    (longer, but not between two clock edges) and an output path.
    """
    dsp = "core.rq.product_MULT18X18D_P9"
    carry = ["core.rq.product_MULT18X18D_P9_P19_CCU2C_B1", "core.rq.x_TRELLIS_FF_Q_DI_CCU2C_S1"]
    path = [_step("clk-to-q", 0.5, "core.rq.operand_4_TRELLIS_FF_Q_9"),
            _step("routing", 2.0, dsp), _step("logic", 3.9, dsp),
            _step("routing", 3.1, carry[0]),
            _step("logic", 0.4, carry[0] + "$CCU2_COMB0"),
            _step("logic", 0.1, carry[0] + "$CCU2_COMB1"),
            _step("logic", 0.1, carry[1] + "$CCU2_COMB0"),
            _step("routing", 0.2, "core.rq.product_5_TRELLIS_FF_Q"),
            _step("setup", 0.0, "core.rq.product_5_TRELLIS_FF_Q")]
    reset = [_step("routing", 30.0, "rst$tr_io")]
    return {"critical_paths": [
        {"from": "<async>", "to": "posedge clk", "path": reset},
        {"from": "posedge clk", "to": "posedge clk", "path": path},
        {"from": "posedge clk", "to": "<async>", "path": path[:2]}]}


def test_the_worst_register_path_in_words():
    assert critical_path(_report()) == {
        "ns": 10.3, "logic_ns": 5.0, "routing_ns": 5.3,
        "from": "core.rq.operand_4", "to": "core.rq.product_5",
        "through": ["core.rq: DSP", "core.rq: carry x2"]}


def test_no_register_path_gives_none():
    report = _report()
    report["critical_paths"] = report["critical_paths"][:1]
    assert critical_path(report) is None
    assert critical_path({}) is None


def _netlist(q_bits):
    """Return a yosys JSON netlist: a block RAM's two outputs and a flip-flop's, on nets."""
    top = {"attributes": {"top": "00000000000000000000000000000001"},
           "netnames": {"rd_data": {"bits": [5, 6]}, "q": {"bits": q_bits}},
           "cells": {
               "ram": {"type": "DP16KD", "port_directions": {"DOB0": "output", "DOB1": "output",
                                                             "ADB0": "input"},
                       "connections": {"DOB0": [5], "DOB1": [6], "ADB0": [7]}},
               "ff": {"type": "TRELLIS_FF", "port_directions": {"Q": "output", "DI": "input"},
                      "connections": {"Q": q_bits, "DI": [5]}}}}
    # a library model whose own nets repeat numbers (not the design: never checked)
    model = {"attributes": {"blackbox": "00000000000000000000000000000001"},
             "netnames": {}, "cells": {
                 "a": {"type": "$_BUF_", "port_directions": {"Y": "output"},
                       "connections": {"Y": [2]}},
                 "b": {"type": "$_BUF_", "port_directions": {"Y": "output"},
                       "connections": {"Y": [2]}}}}
    return {"modules": {"box": top, "DP16KD": model}}


def test_a_net_with_two_drivers_is_found():
    assert multiply_driven(_netlist([8])) is None
    assert multiply_driven(_netlist([6])) == ("rd_data", [("ram", "DOB1"), ("ff", "Q")])
