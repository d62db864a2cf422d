"""npugen's host side: everything that runs on the computer, not in the FPGA.

Layers, lowest first (a module imports only its own layer and the ones below, and the
gateware in :mod:`npugen.rtl` and :mod:`npugen.boards`):

- :mod:`.models`: numpy golden models, one per block, written independently of the gateware;
- :mod:`.formats`: stream beats, the compressed-matrix file, link frames;
- :mod:`.host`: the link client and the per-block workloads it runs;
- :mod:`.blocks`: the block registry;
- :mod:`.cocotb`: Verilator benches (run by cocotb, which loads them by name);
- :mod:`.flow`: Verilog, Verilator, synthesis, bitstreams, demo, sweep, benchmarks;
- :mod:`.cli`: the ``npugen`` command.
"""
