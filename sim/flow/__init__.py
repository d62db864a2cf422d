"""Tool flows: Verilog and manifests, Verilator runs, synthesis, bitstreams, demo, benchmarks."""
