"""cocotb side: payload packing from the RTL layouts, stream drivers, and the benches."""
