"""Numpy golden models, one module per RTL block, written independently of the gateware."""
