#!/usr/bin/env python3
"""Sparse engine benchmark: cycles vs dense, load balance (see npugen.sim.flow.perf_sparse)."""

import sys

from npugen.sim.flow.perf_sparse import main

if __name__ == "__main__":
    sys.exit(main())
