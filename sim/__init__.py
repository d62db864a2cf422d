"""npugen simulation side: numpy golden models, cocotb benches and build helpers."""
