#!/usr/bin/env python3
"""Systolic-array GEMM benchmark (see npugen.sim.perf)."""

import sys

from npugen.sim.perf import main

if __name__ == "__main__":
    sys.exit(main())
