"""cocotb benches: one per block (and per tested sub-block), on a shared bench base."""
