"""NIR Conv2d, SumPool2d, AvgPool2d and Flatten nodes (snn2hw.importers.nir_spatial): graphs built with the nir
package import to dense layers that spike like an independent PyTorch run of the NIR nodes (conv2d, avg_pool2d,
forward-Euler LIF/IF); snnTorch's own export of a conv network round-trips; refusals name the node."""

from __future__ import annotations

import contextlib
import io
import warnings

import nir
import numpy as np
import pytest
import snntorch as snn
import torch
import torch.nn.functional as F
from importer_checks import assert_import_fails
from snntorch.export_nir import export_to_nir
from snntorch.utils import reset as reset_hidden
from torch import nn

from cli_helpers import run_cli
from snn2hw import golden
from snn2hw.errors import UnsupportedModelError
from snn2hw.importers import load_model

DT = 2.0 ** -13   # with tau and r powers of two every discretized value is exact


def _ints(rng, low, high, shape):
    return rng.integers(low, high + 1, shape).astype(np.float64)


def conv(rng, c_out, c_in, kernel, input_shape, stride=1, padding=0, dilation=1):
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    return nir.Conv2d(input_shape=input_shape, weight=_ints(rng, -2, 2, (c_out, c_in, kh, kw)), stride=stride,
                      padding=padding, dilation=dilation, groups=1, bias=_ints(rng, -1, 1, c_out))


def neuron(kind, shape, tau=2.0 ** -10, scale=1.0, threshold=2.0):
    """A LIF (beta = 1 - DT/tau) or IF of ``shape`` whose input scale r DT/tau (IF: r DT) is ``scale``; tau, scale
    and threshold may be arrays broadcasting to ``shape`` (e.g. per channel [C, 1, 1])."""
    full = lambda value: np.broadcast_to(np.asarray(value, dtype=np.float64), shape).copy()  # noqa: E731
    if kind == "IF":
        return nir.IF(r=full(np.asarray(scale) / DT), v_threshold=full(threshold), v_reset=full(0.0))
    return nir.LIF(tau=full(tau), r=full(np.asarray(scale) * np.asarray(tau) / DT), v_leak=full(0.0),
                   v_threshold=full(threshold), v_reset=full(0.0))


def write_chain(path, input_dims, named_nodes) -> str:
    """Input (shape ``input_dims``) -> named_nodes... -> Output written with nir.write; edges listed in reverse."""
    names = ["input"] + [name for name, _ in named_nodes] + ["output"]
    nodes = {"input": nir.Input(input_type={"input": np.array(input_dims)}), **dict(named_nodes),
             "output": nir.Output(output_type={"output": np.array([1])})}
    edges = [(a, b) for a, b in zip(names, names[1:])][::-1]
    nir.write(path, nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))
    return path


# --- an independent reference: the NIR nodes in PyTorch -----------------------------------------------------

def _pair(value):
    values = tuple(int(v) for v in np.atleast_1d(value))
    return values * 2 if len(values) == 1 else values


def _tensor(values, shape):
    return torch.as_tensor(np.broadcast_to(np.asarray(values, dtype=np.float64), shape).copy())


def torch_reference(named_nodes, input_shape, spikes, reset: str, dt: float = DT) -> np.ndarray:
    """The output spikes [B, T, n_out] of the chain run node by node on [B, C, H, W] tensors (float64): Conv2d by
    F.conv2d, SumPool2d by F.avg_pool2d times the window size, LIF ``v[t] = (1 - dt/tau) v[t-1] + (r dt/tau) I[t]``
    and IF ``v[t] = v[t-1] + r dt I[t]`` by forward Euler at ``dt``, spiking when ``v > v_threshold``, the spike of t-1
    resetting at t (zero: the decayed membrane is cleared before the input is added; subtract: minus threshold)."""
    batch, steps, _ = spikes.shape
    membranes, fired, out = {}, {}, []
    for t in range(steps):
        x = torch.as_tensor(spikes[:, t], dtype=torch.float64).reshape(batch, *input_shape)
        for name, node in named_nodes:
            if isinstance(node, nir.Conv2d):
                padding = node.padding if isinstance(node.padding, str) else _pair(node.padding)
                x = F.conv2d(x, torch.as_tensor(node.weight), torch.as_tensor(node.bias), stride=_pair(node.stride),
                             padding=padding, dilation=_pair(node.dilation), groups=int(node.groups))
            elif isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
                kernel = _pair(node.kernel_size)
                x = F.avg_pool2d(x, kernel, _pair(node.stride), _pair(node.padding), count_include_pad=True)
                x = x * (kernel[0] * kernel[1] if isinstance(node, nir.SumPool2d) else 1)
            elif isinstance(node, nir.Flatten):
                x = x.flatten(1)
            elif isinstance(node, (nir.Affine, nir.Linear)):
                x = F.linear(x, torch.as_tensor(node.weight),
                             torch.as_tensor(node.bias) if isinstance(node, nir.Affine) else None)
            else:
                x = _neuron_step(node, name, x, membranes, fired, reset, dt)
        out.append(x.flatten(1).numpy())
    return np.stack(out, axis=1).astype(np.uint8)


def _neuron_step(node, name, current, membranes, fired, reset, dt):
    shape = current.shape[1:]
    threshold = _tensor(node.v_threshold, shape)
    if isinstance(node, nir.IF):
        beta, scale = torch.ones(shape, dtype=torch.float64), _tensor(node.r, shape) * dt
    else:
        tau = _tensor(node.tau, shape)
        beta, scale = 1 - dt / tau, _tensor(node.r, shape) * dt / tau
    v = membranes.get(name, torch.zeros_like(current))
    previous = fired.get(name, torch.zeros_like(current))
    if reset == "zero":
        v = beta * v * (1 - previous) + scale * current
    else:
        v = beta * v + scale * current - previous * threshold
    membranes[name], fired[name] = v, (v > threshold).double()
    return fired[name]


# --- graphs built with the nir package ----------------------------------------------------------------------

def _case_pool(rng):
    """Conv2d -> LIF (every parameter per channel, [C, 1, 1]) -> SumPool2d -> Flatten -> Affine -> LIF."""
    return (1, 6, 6), [
        ("conv1", conv(rng, 2, 1, 3, (6, 6), padding=1)),
        ("lif1", neuron("LIF", (2, 1, 1), tau=np.array([2.0 ** -10, 2.0 ** -11])[:, None, None],
                        scale=np.array([1.0, 0.5])[:, None, None], threshold=np.array([1.0, 2.0])[:, None, None])),
        ("pool", nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))),
        ("flat", nir.Flatten(input_type={"input": np.array([2, 3, 3])}, start_dim=0)),
        ("fc2", nir.Affine(weight=_ints(rng, -1, 2, (3, 18)), bias=_ints(rng, -1, 1, 3))),
        ("lif2", neuron("LIF", (3,), tau=2.0 ** -12, threshold=2.0)),
    ]


def _case_strided(rng):
    """Conv2d (stride 2, padding 1) -> IF (per-neuron thresholds) -> Flatten -> Linear -> LIF -> Flatten."""
    return (2, 7, 7), [
        ("conv1", conv(rng, 3, 2, 3, (7, 7), stride=2, padding=1)),
        ("if1", neuron("IF", (3, 4, 4), threshold=_ints(rng, 1, 3, (3, 4, 4)))),
        ("flat", nir.Flatten(input_type={"input": np.array([3, 4, 4])}, start_dim=0)),
        ("fc2", nir.Linear(weight=_ints(rng, -1, 2, (4, 48)))),
        ("lif2", neuron("LIF", (4,), tau=2.0 ** -10, scale=0.5, threshold=1.0)),
        ("flat_out", nir.Flatten(input_type={"input": np.array([4])}, start_dim=0)),
    ]


def _case_composed(rng):
    """Conv2d ('same' padding, a 2x3 kernel) -> AvgPool2d (pooled currents, one matrix with the conv) -> LIF ->
    Flatten -> Affine -> IF."""
    return (1, 6, 6), [
        ("conv1", conv(rng, 2, 1, (2, 3), (6, 6), padding="same")),
        ("avg", nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))),
        ("lif1", neuron("LIF", (2, 3, 3), tau=2.0 ** -11, threshold=0.5)),
        ("flat", nir.Flatten(input_type={"input": np.array([2, 3, 3])}, start_dim=0)),
        ("fc2", nir.Affine(weight=_ints(rng, -1, 2, (3, 18)), bias=np.zeros(3))),
        ("if2", neuron("IF", (3,), threshold=1.0)),
    ]


CASES = {"conv-lif-sumpool-affine": (_case_pool, "zero", [72, 3], ["conv1", "fc2"]),
         "strided-conv-if-linear": (_case_strided, "subtract", [48, 4], ["conv1", "fc2"]),
         "conv-avgpool-composed": (_case_composed, "zero", [18, 3], ["conv1", "fc2"])}


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")   # PyTorch copies the input
@pytest.mark.parametrize("case", sorted(CASES))
def test_spikes_like_pytorch_running_the_nir_nodes(tmp_path, case):
    make, reset, sizes, names = CASES[case]
    input_shape, named_nodes = make(np.random.default_rng(len(case)))
    network = load_model(write_chain(tmp_path / "model.nir", input_shape, named_nodes), nir_dt=DT, reset=reset)
    assert [layer.n_out for layer in network.layers] == sizes and [layer.name for layer in network.layers] == names
    rng = np.random.default_rng(7)
    spikes = (rng.random((4, 12, int(np.prod(input_shape)))) < rng.choice([0.3, 0.6], (4, 1, 1))).astype(np.uint8)
    expected = torch_reference(named_nodes, input_shape, spikes, reset)
    assert 0 < expected.mean() < 1, "the test network should spike, not always"
    assert np.array_equal(golden.run_float(network, spikes).output, expected)


def test_per_channel_parameters_spread_in_chw_order(tmp_path):
    input_shape, named_nodes = _case_pool(np.random.default_rng(1))
    layer = load_model(write_chain(tmp_path / "model.nir", input_shape, named_nodes), nir_dt=DT).layers[0]
    assert layer.beta.tolist() == [0.875] * 36 + [0.75] * 36 and layer.threshold.tolist() == [1.0] * 36 + [2.0] * 36
    bias = named_nodes[0][1].bias   # channel 1's input scale is 1/2
    assert layer.bias.tolist() == [bias[0]] * 36 + [bias[1] / 2] * 36


def test_cubalif_over_a_map_takes_per_channel_time_constants(tmp_path):
    """tau_syn [C, 1, 1] = 2^-11, 2^-12 at DT = 2^-13: alpha 3/4 on channel 0's 16 neurons, 1/2 on channel 1's."""
    per_channel = lambda a, b: np.array([a, b], dtype=np.float64)[:, None, None]  # noqa: E731
    cuba = nir.CubaLIF(tau_syn=per_channel(2.0 ** -11, 2.0 ** -12), tau_mem=per_channel(2.0 ** -10, 2.0 ** -10),
                       r=per_channel(8.0, 8.0), w_in=per_channel(4.0, 2.0), v_leak=per_channel(0.0, 0.0),
                       v_threshold=per_channel(1.0, 1.0), v_reset=per_channel(0.0, 0.0))
    named_nodes = [("conv", conv(np.random.default_rng(6), 2, 1, 3, (6, 6))), ("cuba", cuba)]
    (layer,) = load_model(write_chain(tmp_path / "model.nir", (1, 6, 6), named_nodes), nir_dt=DT).layers
    assert layer.alpha.tolist() == [0.75] * 16 + [0.5] * 16 and layer.beta == 0.875


def test_consecutive_linear_nodes_compose_by_matrix_products(tmp_path):
    """Affine -> Flatten -> Linear -> LIF is one layer: weight W2 W1, bias W2 b1 (input scale 1)."""
    rng = np.random.default_rng(4)
    first = nir.Affine(weight=_ints(rng, -2, 2, (5, 4)), bias=_ints(rng, -2, 2, 5))
    second = nir.Linear(weight=_ints(rng, -2, 2, (3, 5)))
    named_nodes = [("fc1", first), ("flat", nir.Flatten(input_type={"input": np.array([5])})), ("fc2", second),
                   ("lif", neuron("LIF", (3,)))]
    (layer,) = load_model(write_chain(tmp_path / "model.nir", [4], named_nodes), nir_dt=DT).layers
    assert layer.name == "fc2"
    assert np.array_equal(layer.weight, second.weight @ first.weight)
    assert np.array_equal(layer.bias, second.weight @ first.bias)


def test_flat_input_takes_the_conv_input_shape(tmp_path):
    """An Input declaring 36 values feeding a Conv2d with input_shape (6, 6) is the 1x6x6 map."""
    input_shape, named_nodes = _case_pool(np.random.default_rng(2))
    as_map = load_model(write_chain(tmp_path / "map.nir", input_shape, named_nodes), nir_dt=DT)
    flat = load_model(write_chain(tmp_path / "flat.nir", [36], named_nodes), nir_dt=DT)
    for a, b in zip(as_map.layers, flat.layers):
        assert np.array_equal(a.weight, b.weight) and np.array_equal(a.bias, b.bias)


# --- snnTorch's exporter ------------------------------------------------------------------------------------

def _snntorch_conv_net(reset: str) -> nn.Sequential:
    """Conv2d -> Leaky -> AvgPool2d -> Flatten -> Linear -> Leaky with integer weights; snnTorch 1.0's exporter
    needs the Leaky parameters as per-neuron tensors of the feature map's shape [C, H, W]."""
    torch.manual_seed(3)
    conv1, fc2 = nn.Conv2d(1, 2, 3, padding=1), nn.Linear(18, 3)
    with torch.no_grad():
        for module in (conv1, fc2):
            module.weight.copy_(torch.randint(-2, 3, module.weight.shape))
            module.bias.copy_(torch.randint(-1, 2, module.bias.shape))
    per_channel = lambda values: torch.tensor(values)[:, None, None].expand(2, 6, 6).clone()  # noqa: E731
    return nn.Sequential(
        conv1, snn.Leaky(beta=per_channel([0.5, 0.875]), threshold=per_channel([1.0, 2.0]), reset_mechanism=reset,
                         init_hidden=True),
        nn.AvgPool2d(2), nn.Flatten(), fc2,
        snn.Leaky(beta=torch.full((3,), 0.75), threshold=torch.full((3,), 1.0), reset_mechanism=reset,
                  init_hidden=True, output=True))


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_snntorch_conv_export_round_trips_and_spikes_like_snntorch(tmp_path, reset):
    net = _snntorch_conv_net(reset)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        nir.write(tmp_path / "model.nir", export_to_nir(net, torch.zeros(1, 1, 6, 6), ignore_dims=[0]))
    network = load_model(tmp_path / "model.nir", reset=reset)
    assert [layer.name for layer in network.layers] == ["layer0", "layer4"]
    assert network.layers[0].beta.tolist() == [0.5] * 36 + [0.875] * 36
    rng = np.random.default_rng(5)
    spikes = (rng.random((3, 16, 36)) < 0.5).astype(np.uint8)
    reset_hidden(net)
    with torch.no_grad():
        expected = np.stack([net(torch.tensor(spikes[:, t], dtype=torch.float32).reshape(3, 1, 6, 6))[0].numpy()
                             for t in range(16)], axis=1).astype(np.uint8)
    assert 0 < expected.mean() < 1
    assert np.array_equal(golden.run_float(network, spikes).output, expected)


# --- refusals -----------------------------------------------------------------------------------------------

def _refusals():
    rng = np.random.default_rng(0)
    lif72, pool = neuron("LIF", (2, 6, 6)), nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                                                          padding=np.array([0, 0]))
    return [
        ([36], [("fc", nir.Affine(weight=np.ones((8, 36)), bias=np.zeros(8))), ("pool", pool), ("lif", lif72)],
         "NIR node 'pool' (SumPool2d) needs a C,H,W feature map, but NIR node 'fc' (Affine) gives a flat vector"),
        ((1, 6, 6), [("conv", conv(rng, 2, 1, 3, (6, 6), padding=1)), ("lif", lif72),
                     ("fc", nir.Affine(weight=np.ones((3, 10)), bias=np.zeros(3))), ("lif2", neuron("LIF", (3,)))],
         "NIR node 'lif' (LIF) gives a 2x6x6 map, but NIR node 'fc' (Affine) takes 10 inputs"),
        ((1, 6, 6), [("conv", conv(rng, 2, 1, 3, (5, 5), padding=1)), ("lif", lif72)],
         "NIR node 'conv' (Conv2d): input_shape (5, 5) differs from the 1x6x6 map"),
        ((1, 6, 6), [("conv", conv(rng, 2, 1, 3, (6, 6), stride=2, padding="same")), ("lif", lif72)],
         "NIR node 'conv' (Conv2d): padding 'same' with stride (2, 2) is not supported"),
        ((2, 6, 6), [("conv", conv(rng, 2, 1, 3, (6, 6), padding=1)), ("lif", lif72)],
         "NIR node 'conv' (Conv2d): weight (2, 1, 3, 3) with groups 1 does not take the 2 channels"),
        ((1, 6, 6), [("conv", conv(rng, 2, 1, 3, (6, 6), padding=1)), ("lif", neuron("LIF", (3,)))],
         "NIR node 'lif' (LIF): v_leak has 3 values for the 72 outputs"),
        ([36], [("flat", nir.Flatten(input_type={"input": np.array([36])})), ("conv", conv(rng, 2, 1, 3, (6, 6))),
                ("lif", lif72)],
         "NIR node 'conv' (Conv2d) needs a C,H,W feature map, but NIR node 'flat' (Flatten) gives a flat vector"),
        ((1, 6, 6), [("conv", conv(rng, 2, 1, 3, (6, 6), padding=1)), ("lif", lif72), ("pool", pool)],
         "NIR node 'pool' (SumPool2d) is not followed by a LIF, CubaLIF or IF"),
    ]


@pytest.mark.parametrize("index", range(len(_refusals())))
def test_unsupported_geometry_named(tmp_path, index):
    input_shape, named_nodes, expected = _refusals()[index]
    assert_import_fails(UnsupportedModelError, write_chain(tmp_path / "model.nir", input_shape, named_nodes), expected)


# --- through the CLI ----------------------------------------------------------------------------------------

def test_compile_for_ice40_and_simulate_in_verilator_match_golden_and_pytorch(tmp_path):
    """Conv2d (stride 2, padding 1) -> IF -> SumPool2d -> Flatten -> Affine -> LIF (tau = dt: beta 0) at the
    default --nir-dt: an integer model whose contract (no leak to floor) equals the float reference."""
    rng = np.random.default_rng(11)
    dt = 1e-4
    named_nodes = [
        ("conv1", conv(rng, 2, 1, 3, (8, 8), stride=2, padding=1)),
        ("if1", nir.IF(r=np.full((2, 4, 4), 1 / dt), v_threshold=np.full((2, 4, 4), 2.0), v_reset=np.zeros((2, 4, 4)))),
        ("pool", nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([1, 1]), padding=np.array([0, 0]))),
        ("flat", nir.Flatten(input_type={"input": np.array([2, 3, 3])}, start_dim=0)),
        ("fc2", nir.Affine(weight=_ints(rng, -1, 2, (3, 18)), bias=_ints(rng, -1, 1, 3))),
        ("lif2", nir.LIF(tau=np.full(3, dt), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.full(3, 1.0),
                         v_reset=np.zeros(3))),
    ]
    path = write_chain(tmp_path / "model.nir", (1, 8, 8), named_nodes)
    out = tmp_path / "out"
    result = run_cli("compile", path, "--board", "ice40", "-o", out, "--timesteps", 8, check=0)
    assert "64 -> 32 -> 3 neurons" in result.stdout and "compiled exactly as given" in result.stdout
    spikes = (rng.random((4, 8, 64)) < rng.choice([0.3, 0.6], (4, 1, 1))).astype(np.uint8)
    np.save(tmp_path / "in.npy", spikes)
    run_cli("simulate", out, "--input", tmp_path / "in.npy", "--output", tmp_path / "rtl.npy", check=0)
    run_cli("simulate", out, "--input", tmp_path / "in.npy", "--output", tmp_path / "golden.npy", "--engine",
            "golden", check=0)
    expected = torch_reference(named_nodes, (1, 8, 8), spikes, "zero", dt)
    assert 0 < expected.mean() < 1
    assert np.array_equal(np.load(tmp_path / "golden.npy"), expected)
    assert np.array_equal(np.load(tmp_path / "rtl.npy"), expected)
