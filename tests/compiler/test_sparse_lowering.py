"""Fully connected layers on the sparse engine: which engine a layer gets, and exactness.

The layers are IR networks with pruned, weight-shared weights; a network lowered to SPFC
must give the instruction-level simulator's outputs that the same network lowered to the
systolic array gives (the array's lowering is checked against onnxruntime elsewhere), and
the engine choice must follow the documented rule.
"""

import numpy as np
import pytest

from npugen.rtl.npu.isa import Op
from npugen.rtl.npu.params import NpuParams
from npugen.rtl.sparse.params import SparseParams
from npugen.sim.compiler.ir import Conv, Network, TensorQuant
from npugen.sim.compiler.lower import LowerError, lower
from npugen.sim.formats.program import disassemble, tensor_of, tensor_words
from npugen.sim.models.npu import NpuModel, NpuState

SPARSE = SparseParams(n_pe=4, rows_max=64, cols_max=64, entries_max=1024, act_width=16,
                      act_lanes=8)


def fc(rng, cin, cout, density=0.2, distinct=9, relu=False):
    """Return a fully connected layer (1 x 1 conv) with pruned, weight-shared int8 weights."""
    values = rng.choice([v for v in range(-128, 128) if v], size=distinct, replace=False)
    w = np.where(rng.random((cout, cin)) < density, rng.choice(values, size=(cout, cin)), 0)
    zp_out = int(rng.integers(-128, 128))
    return Conv(weights=w.reshape(cout, cin, 1, 1).astype(np.int64),
                bias=rng.integers(-(1 << 20), 1 << 20, size=cout),
                scales=np.float32(2.0 ** rng.uniform(-14, -8, size=cout)),
                zp_in=int(rng.choice([-128, 127, rng.integers(-128, 128)])), zp_out=zp_out,
                lo=zp_out if relu else -128)


def network(layers, cin, mode="ort"):
    q = TensorQuant(0.05, 0)
    return Network(input_shape=(1, 1, cin), input_quant=q, layers=layers, output_quant=q,
                   output_layout="flat", mode=mode)


def engines(lowered):
    return [disassemble(w)[0] for w in lowered.program.insns[1:-1]]


def run(p, lowered, x):
    """Return the outputs and cycles of the lowered network on the ISA simulator."""
    model = NpuModel(p)
    lowered.program.load_into(model)
    out, cycles = [], []
    for image in x:
        model.write("act", lowered.input_address, tensor_words(image.reshape(1, 1, -1),
                                                               p.lanes))
        st = model.run(0)
        assert st.state is NpuState.DONE, st
        h, w, c = lowered.output_shape
        out.append(tensor_of(model.read("act", lowered.output_address, h * w * -(-c // p.lanes)),
                             lowered.output_shape, p.lanes))
        cycles.append(st.cycles)
    return np.array(out), cycles


@pytest.mark.parametrize("mode", ["ort", "tflite", "gemmlowp"])
def test_spfc_equals_the_array(seed, mode):
    """Two pruned layers (the second after a ReLU) on the sparse engine and on the array."""
    rng = np.random.default_rng([seed, 1])
    cin, hidden, cout = 40, 23, 11
    net = network([fc(rng, cin, hidden, relu=True), fc(rng, hidden, cout, density=0.5)], cin,
                  mode)
    p = NpuParams(sparse=SPARSE)
    sparse, dense = lower(net, p, {"fc": "sparse"}), lower(net, p, {"fc": "systolic"})
    assert engines(sparse) == [Op.SPFC, Op.SPFC] and engines(dense) == [Op.CONV, Op.CONV]
    x = rng.integers(-128, 128, size=(12, cin))
    x[:, rng.random(cin) < 0.5] = net.layers[0].zp_in  # inputs the engine skips
    got, cycles = run(p, sparse, x)
    want, _ = run(p, dense, x)
    assert np.array_equal(got, want)
    # The engine holds one matrix: with two SPFC every image loads both ...
    assert min(cycles) > 0.9 * max(cycles)
    assert set(sparse.predicted) == {1, 2}
    # ... so by default only the layer that saves the most goes there; the first image loads
    # it, the rest find it loaded.
    auto = lower(net, p)
    assert engines(auto) == [Op.SPFC, Op.CONV]
    got, cycles = run(p, auto, x)
    assert np.array_equal(got, want)
    assert cycles[0] > max(cycles[1:]) and max(cycles[1:]) < min(run(p, dense, x)[1])


def test_the_engine_choice(seed):
    """Auto: sparse where the engine takes the layer and is faster; the array otherwise."""
    rng = np.random.default_rng([seed, 2])
    p = NpuParams(sparse=SPARSE)
    shared = fc(rng, 64, 32)
    unshared = fc(rng, 64, 32, distinct=40)
    dense = fc(rng, 64, 40, density=1.0)
    for layer, want in ((shared, Op.SPFC), (unshared, Op.CONV), (dense, Op.CONV)):
        assert engines(lower(network([layer], 64), p)) == [want]
    # every weight stored: 4 PEs walking 2,560 entries lose to the 8 x 8 array (its weight
    # tiles run back to back at one pixel: 742 cycles against 795), 8 PEs still win (475)
    eight = NpuParams(sparse=SparseParams(n_pe=8, rows_max=64, cols_max=64,
                                          entries_max=1024, act_width=16, act_lanes=8))
    assert engines(lower(network([dense], 64), eight)) == [Op.SPFC]
    # two candidates: the one that saves more (the bigger matrix of the same density)
    two = network([fc(rng, 64, 12), fc(rng, 12, 40)], 64)
    assert engines(lower(two, p)) == [Op.SPFC, Op.CONV]
    # no sparse engine, or forced off: the array
    assert engines(lower(network([shared], 64), NpuParams())) == [Op.CONV]
    assert engines(lower(network([shared], 64), p, {"fc": "systolic"})) == [Op.CONV]
    # forced on: the dense one too; the unshared one cannot
    assert engines(lower(network([dense], 64), p, {"fc": "sparse"})) == [Op.SPFC]
    # (40 candidate values; a random draw may leave one out: seed 1595475164 used 39)
    used = len(np.unique(unshared.weights[unshared.weights != 0]))
    assert used > 15
    with pytest.raises(LowerError, match=f"{used} distinct non-zero values.*codebook holds 15"):
        lower(network([unshared], 64), p, {"fc": "sparse"})
    with pytest.raises(LowerError, match="built without the sparse engine"):
        lower(network([shared], 64), NpuParams(), {"fc": "sparse"})
    small = NpuParams(sparse=SparseParams(n_pe=1, rows_max=64, cols_max=64, entries_max=64,
                                          act_width=16, act_lanes=8))
    with pytest.raises(LowerError, match="entries in one PE; .*entries_max is 64"):
        lower(network([shared], 64), small, {"fc": "sparse"})
    with pytest.raises(LowerError, match="exceeds the sparse engine's rows_max=64"):
        lower(network([fc(rng, 64, 65)], 64), p, {"fc": "sparse"})
    with pytest.raises(LowerError, match="engine_for must map"):
        lower(network([shared], 64), p, {"conv": "sparse"})
    with pytest.raises(LowerError, match="conv=winograd: the NPU was built without"):
        lower(network([shared], 64), p, {"conv": "winograd"})


def test_sparse_only_npu(seed):
    """An NPU without the array runs a sparse MLP; a layer the engine cannot take is refused."""
    rng = np.random.default_rng([seed, 3])
    p = NpuParams(systolic=None, sparse=SPARSE)
    net = network([fc(rng, 30, 20, relu=True), fc(rng, 20, 7)], 30)
    lowered = lower(net, p)
    assert engines(lowered) == [Op.SPFC, Op.SPFC]
    x = rng.integers(-128, 128, size=(3, 30))
    got, _ = run(p, lowered, x)
    want, _ = run(NpuParams(sparse=SPARSE), lower(net, NpuParams(sparse=SPARSE),
                                                  {"fc": "systolic"}), x)
    assert np.array_equal(got, want)
    with pytest.raises(LowerError, match="without the systolic array"):
        lower(network([fc(rng, 30, 20, distinct=30)], 30), p)
