"""Train the digits CNN and MLP, quantize them with onnxruntime (see npugen.sim.flow.digits)."""

import sys

from npugen.sim.flow.digits import main

if __name__ == "__main__":
    sys.exit(main())
