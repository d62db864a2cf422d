#!/usr/bin/env python3
"""Systolic-array GEMM benchmark (see npugen.sim.flow.perf_systolic)."""

import sys

from npugen.sim.flow.perf_systolic import main

if __name__ == "__main__":
    sys.exit(main())
