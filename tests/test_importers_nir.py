"""Tests for snn2hw.importers.nir_model: snnTorch's own NIR export round-trips exactly, Euler discretization,
reset choice, refusals naming the node, malformed files, files that hang or crash libhdf5."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import time

import h5py
import nir
import numpy as np
import pytest
import torch
from importer_checks import assert_import_fails
from model_factory import assert_imported, export_nir, make_sequential, per_neuron_sequential, save_state_dict

from snn2hw import golden
from snn2hw.cli import main
from snn2hw.errors import ModelFormatError, QuantizationError, UnsupportedModelError
from snn2hw.importers import load_model, nir_model
from snn2hw.importers.nir_model import READ_TIMEOUT_S
from snn2hw.ir import Network, Reset
from snn2hw.passes.quantize import quantize


def write_graph(path, nodes: dict, edges: list) -> str:
    nir.write(path, nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))
    return path


def lif(n, tau=1e-3, r=None, v_threshold=1.0, v_leak=0.0, v_reset=0.0, dt=1e-4):
    """A LIF node of n neurons; r defaults to tau/dt (input scale 1 at dt)."""
    full = lambda value: np.broadcast_to(np.asarray(value, dtype=np.float64), (n,)).copy()  # noqa: E731
    return nir.LIF(tau=full(tau), r=full(np.asarray(tau) / dt if r is None else r), v_leak=full(v_leak),
                   v_threshold=full(v_threshold), v_reset=full(v_reset))


def affine(n_out, n_in, seed=0):
    rng = np.random.default_rng(seed)
    return nir.Affine(weight=rng.integers(-4, 5, (n_out, n_in)).astype(np.float64),
                      bias=rng.integers(-2, 3, n_out).astype(np.float64))


def chain(*nodes, n_in=4):
    """(nodes, edges) of Input -> nodes... -> Output, edges listed in reverse order."""
    names = ["input"] + [name for name, _ in nodes] + ["output"]
    graph = {"input": nir.Input(input_type={"input": np.array([n_in])}), **dict(nodes),
             "output": nir.Output(output_type={"output": np.array([1])})}
    return graph, [(a, b) for a, b in zip(names, names[1:])][::-1]


# --- snnTorch's exporter ------------------------------------------------------------------------------------

@pytest.mark.parametrize("reset, integer_weights, bias", [("zero", True, True), ("subtract", False, True),
                                                          ("zero", False, False)])
def test_snntorch_export_round_trips(tmp_path, reset, integer_weights, bias):
    module = per_neuron_sequential([4, 6, 5, 3], betas=[0.875, 0.9, 0.5], thresholds=[1.0, 2.5, 0.75],
                                   resets=reset, integer_weights=integer_weights, bias=bias, seed=4)
    path = export_nir(module, tmp_path / "model.nir")
    network = load_model(path, reset=reset)
    assert_imported(network, module)
    assert [layer.name for layer in network.layers] == ["layer0", "layer2", "layer4"]


def test_default_reset_is_zero_and_subtract_is_chosen(tmp_path):
    path = export_nir(per_neuron_sequential([3, 2], 0.5, 1.0, "zero"), tmp_path / "model.nir")
    assert load_model(path).layers[0].reset is Reset.ZERO
    assert load_model(path, reset="subtract").layers[0].reset is Reset.SUBTRACT
    assert_import_fails(UnsupportedModelError, path, "reset 'none'", "NIR neurons always reset", reset="none")


def test_every_float32_beta_from_one_half_up_round_trips(tmp_path):
    """beta -> tau = dt/(1 - beta) in float32 -> beta is exact for any float32 beta in [0.5, 1], incl. 1 (tau inf)."""
    rng = np.random.default_rng(3)
    betas = [0.5, 1.0, 0.9, 0.95, 0.99, 0.999, 0.96875] + list(0.5 + 0.5 * rng.random(40))
    module = per_neuron_sequential([2] * (len(betas) + 1), betas=[float(np.float32(b)) for b in betas],
                                   thresholds=1.0, resets="zero", seed=1)
    assert_imported(load_model(export_nir(module, tmp_path / "model.nir")), module)


def compiled(module, tmp_path, reset: str) -> list[Network]:
    """The integer networks `snn2hw compile` makes of ``module``'s NIR export and of its state dict."""
    nir_path = export_nir(module, tmp_path / "model.nir")
    pt_path = save_state_dict(module, tmp_path / "model.pt")
    assert main(["-q", "compile", str(nir_path), "-o", str(tmp_path / "nir"), "--reset", reset]) == 0
    assert main(["-q", "compile", str(pt_path), "-o", str(tmp_path / "pt")]) == 0
    return [Network.from_json(json.loads((tmp_path / name / "network.json").read_text())) for name in ("nir", "pt")]


def test_per_neuron_tau_and_threshold_become_per_neuron_beta_and_threshold(tmp_path):
    nodes, edges = chain(("fc", affine(3, 4)), ("lif", lif(3, tau=[1e-3, 2e-4, 1e-3], r=[10.0, 10.0, 10.0],
                                                          v_threshold=[1.0, 1.0, 2.0])))
    layer = load_model(write_graph(tmp_path / "model.nir", nodes, edges)).layers[0]
    assert layer.beta.tolist() == [0.9, 0.5, 0.9] and layer.threshold.tolist() == [1.0, 1.0, 2.0]
    assert np.array_equal(layer.weight, affine(3, 4).weight * np.array([[1.0], [5.0], [1.0]]))


def test_snntorch_per_neuron_export_compiles_like_the_state_dict(tmp_path):
    module = make_sequential([5, 4, 3], betas=[torch.tensor([0.5, 0.75, 0.875, 1.0]), torch.tensor([0.9, 0.5, 0.5])],
                             thresholds=[torch.tensor([1.0, 2.0, 3.0, 1.0]), torch.tensor([2.0, 1.0, 4.0])],
                             resets="zero", seed=2)
    assert_imported(load_model(export_nir(module, tmp_path / "model.nir")), module)
    from_nir, from_pt = compiled(module, tmp_path, "zero")
    assert from_nir.layers[0].per_neuron and from_nir.layers[1].per_neuron
    assert [layer.to_json() for layer in from_nir.layers] == [layer.to_json() for layer in from_pt.layers]


def test_compiles_like_the_state_dict(tmp_path):
    """A float model with subtract reset: the NIR export and the state dict compile to the same integer
    network, so the golden model gives the same spikes."""
    module = per_neuron_sequential([6, 8, 3], betas=[0.75, 0.9], thresholds=[0.5, 0.25], resets="subtract",
                                   integer_weights=False, seed=5)
    from_nir, from_pt = compiled(module, tmp_path, "subtract")
    assert [layer.to_json() for layer in from_nir.layers] == [layer.to_json() for layer in from_pt.layers]
    spikes = (np.random.default_rng(0).random((8, 20, 6)) < 0.4).astype(np.uint8)
    outputs = [golden.run(network, spikes).output for network in (from_nir, from_pt)]
    assert outputs[0].sum() > 0 and np.array_equal(outputs[0], outputs[1])


def test_integer_model_stays_exact(tmp_path):
    """Integer weights and thresholds stay integer through NIR (input scale exactly 1): compiled as given."""
    module = per_neuron_sequential([5, 4, 3], betas=[0.875, 0.5], thresholds=[2.0, 3.0], resets="zero", seed=6)
    network, report = quantize(load_model(export_nir(module, tmp_path / "model.nir")))
    assert report.exact
    assert [layer.beta for layer in network.layers] == [0.875, 0.5]
    assert np.array_equal(network.layers[0].weight, module[0].weight.detach().numpy().astype(np.int64))


def test_cli_reset_is_refused_for_other_formats(tmp_path, capsys):
    pt_path = save_state_dict(make_sequential([3, 2]), tmp_path / "model.pt")
    assert main(["compile", str(pt_path), "-o", str(tmp_path / "out"), "--reset", "zero"]) == 2
    assert "can only be chosen for a NIR model" in capsys.readouterr().err


# --- discretization -----------------------------------------------------------------------------------------

def test_forward_euler_beta_and_input_scale(tmp_path):
    """tau = 2^-10, dt = 2^-13: beta = 1 - 1/8; r = 4: scale r dt/tau = 1/2 folded into weights and bias.
    IF: beta 1, scale r dt = 2^11 * 2^-13 = 1/4. Powers of two keep every value exact."""
    dense1, dense2 = affine(3, 4, seed=1), affine(2, 3, seed=2)
    nodes, edges = chain(("fc1", dense1), ("lif1", lif(3, tau=2.0 ** -10, r=4.0, v_threshold=1.5)),
                         ("fc2", dense2), ("if2", nir.IF(r=np.full(2, 2.0 ** 11), v_threshold=np.full(2, 3.0))))
    network = load_model(write_graph(tmp_path / "model.nir", nodes, edges), nir_dt=2.0 ** -13)
    first, second = network.layers
    assert (first.name, first.beta, first.threshold) == ("fc1", 0.875, 1.5)
    assert np.array_equal(first.weight, dense1.weight / 2) and np.array_equal(first.bias, dense1.bias / 2)
    assert (second.name, second.beta, second.threshold) == ("fc2", 1.0, 3.0)
    assert np.array_equal(second.weight, dense2.weight / 4) and np.array_equal(second.bias, dense2.bias / 4)
    assert load_model(tmp_path / "model.nir", nir_dt=2.0 ** -12).layers[0].beta == 0.75


def test_per_neuron_r_scales_weight_rows(tmp_path):
    dense = affine(3, 4)
    nodes, edges = chain(("fc", dense), ("lif", lif(3, tau=2.0 ** -10, r=[8.0, 4.0, 16.0])))
    layer = load_model(write_graph(tmp_path / "model.nir", nodes, edges), nir_dt=2.0 ** -13).layers[0]
    assert np.array_equal(layer.weight, dense.weight * np.array([[1.0], [0.5], [2.0]]))


def test_linear_has_no_bias(tmp_path):
    weight = np.arange(12.0).reshape(3, 4)
    nodes, edges = chain(("w", nir.Linear(weight=weight)), ("lif", lif(3)))
    layer = load_model(write_graph(tmp_path / "model.nir", nodes, edges)).layers[0]
    assert np.array_equal(layer.weight, weight) and np.array_equal(layer.bias, np.zeros(3))


def test_tau_shorter_than_dt(tmp_path):
    nodes, edges = chain(("fc", affine(3, 4)), ("lif", lif(3, tau=5e-5, r=1.0)))
    assert_import_fails(QuantizationError, write_graph(tmp_path / "model.nir", nodes, edges), "'lif' (LIF)",
                        "shorter than the time step", "--nir-dt")


# --- refusals -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("culprit, expected", [
    (nir.Scale(scale=np.full(3, 2.0)), "'bad' (Scale): this node type"),
    (nir.Conv1d(input_shape=3, weight=np.ones((1, 1, 1)), stride=1, padding=0, dilation=1, groups=1,
                bias=np.zeros(1)), "'bad' (Conv1d): this node type"),
    (nir.NIRGraph(nodes={"i": nir.Input(input_type={"input": np.array([3])}),
                         "o": nir.Output(output_type={"output": np.array([3])})}, edges=[("i", "o")],
                  type_check=False), "'bad' (NIRGraph): a subgraph"),
])
def test_unsupported_node_named(tmp_path, culprit, expected):
    nodes, edges = chain(("fc", affine(3, 4)), ("bad", culprit), ("lif", lif(3)))
    assert_import_fails(UnsupportedModelError, write_graph(tmp_path / "model.nir", nodes, edges), expected)


def test_recurrent_cycle_named(tmp_path):
    nodes, edges = chain(("fc", affine(3, 4)), ("lif", lif(3)))
    nodes["w_rec"] = nir.Linear(weight=np.eye(3))
    edges += [("lif", "w_rec"), ("w_rec", "lif")]
    assert_import_fails(UnsupportedModelError, write_graph(tmp_path / "model.nir", nodes, edges),
                        "closes a cycle", "'lif' (LIF)", "recurrent connections are not supported yet")


def test_branch_named(tmp_path):
    nodes, edges = chain(("fc", affine(3, 4)), ("lif", lif(3)))
    nodes["lif_b"] = lif(3)
    edges.append(("fc", "lif_b"))
    assert_import_fails(UnsupportedModelError, write_graph(tmp_path / "model.nir", nodes, edges),
                        "'fc' (Affine) feeds 2 nodes", "branches are not supported yet")


def test_stray_node_named(tmp_path):
    nodes, edges = chain(("fc", affine(3, 4)), ("lif", lif(3)))
    nodes["loose"] = lif(3)
    assert_import_fails(UnsupportedModelError, write_graph(tmp_path / "model.nir", nodes, edges),
                        "'loose' (LIF) is not on the chain")


@pytest.mark.parametrize("nodes, expected", [
    ((("lif", lif(4)),), "'lif' (LIF) follows NIR node 'input' (Input) where an Affine"),
    ((("flat", nir.Flatten(input_type={"input": np.array([4])})), ("lif", lif(4))),
     "'lif' (LIF) follows NIR node 'flat' (Flatten) where"),
    ((("fc", affine(3, 4)), ("lif", lif(3)), ("lif2", lif(3))), "'lif2' (LIF) follows NIR node 'lif' (LIF) where"),
    ((("fc", affine(3, 4)),), "'fc' (Affine) is not followed by a LIF, CubaLIF or IF"),
    ((("fc", affine(3, 4)), ("lif", lif(3)), ("fc2", affine(2, 3)),
      ("flat", nir.Flatten(input_type={"input": np.array([2])}))),
     "'fc2' (Affine) is not followed by a LIF"),
    ((), "no layers between Input"),
])
def test_wrong_order_named(tmp_path, nodes, expected):
    graph, edges = chain(*nodes)
    assert_import_fails(UnsupportedModelError, write_graph(tmp_path / "model.nir", graph, edges), expected)


@pytest.mark.parametrize("neuron, expected", [
    (lif(3, v_leak=0.5), "'lif' (LIF): v_leak 0.5 is not 0"),
    (lif(3, v_reset=[0.0, -1.0, 0.0]), "'lif' (LIF): v_reset from -1 to 0 is not 0"),
    (nir.IF(r=np.ones(3), v_threshold=np.ones(3), v_reset=np.ones(3)), "'lif' (IF): v_reset 1 is not 0"),
    (lif(2), "'lif' (LIF): v_leak has 2 values for the 3 outputs"),
])
def test_unsupported_parameters_named(tmp_path, neuron, expected):
    nodes, edges = chain(("fc", affine(3, 4)), ("lif", neuron))
    assert_import_fails(UnsupportedModelError, write_graph(tmp_path / "model.nir", nodes, edges), expected)


def test_input_shape_must_match(tmp_path):
    nodes, edges = chain(("fc", affine(3, 4)), ("lif", lif(3)), n_in=5)
    assert_import_fails(UnsupportedModelError, write_graph(tmp_path / "model.nir", nodes, edges),
                        "'input' (Input) gives a flat vector of 5 values, but NIR node 'fc' (Affine) takes 4 inputs")


# --- unreadable files ---------------------------------------------------------------------------------------

@pytest.fixture()
def nir_file(tmp_path):
    nodes, edges = chain(("fc", affine(3, 4)), ("lif", lif(3)))
    return write_graph(tmp_path / "model.nir", nodes, edges)


def test_truncated_file(tmp_path, nir_file):
    data = nir_file.read_bytes()
    for cut in (len(data) // 4, len(data) // 2, len(data) - 1):
        (tmp_path / "cut.nir").write_bytes(data[:cut])
        assert_import_fails(ModelFormatError, tmp_path / "cut.nir", "cut.nir", "not a readable NIR file")


def test_hdf5_without_a_graph(tmp_path):
    with h5py.File(tmp_path / "other.nir", "w") as file:
        file.create_dataset("data", data=np.arange(4))
    assert_import_fails(ModelFormatError, tmp_path / "other.nir", "other.nir", "not a readable NIR file")


def test_edge_to_missing_node(tmp_path):
    nodes, edges = chain(("fc", affine(3, 4)), ("lif", lif(3)))
    edges.append(("lif", "ghost"))
    assert_import_fails(ModelFormatError, write_graph(tmp_path / "model.nir", nodes, edges), "'ghost'")


# --- files that hang or crash libhdf5: read in a child process with a time limit ----------------------------

def _heap_size_mutations(data: bytes):
    """Copies of a NIR file with one byte of its global heap collection's size changed (the 8 bytes after the
    ``GCOL`` signature, version and reserved bytes): fuzzing found that libhdf5 2.0.0 loops forever on these."""
    heap = data.find(b"GCOL")
    assert heap > 0, "no global heap collection in the exported file"
    for offset, value in ((8, 0x80), (8, 0xFF), (9, 0x20), (9, 0x80)):
        mutated = bytearray(data)
        mutated[heap + offset] = value
        yield bytes(mutated)


def _in_fork(target, args=(), seconds: float = 2.0):
    """Run ``target(*args, send)`` in a forked process for at most ``seconds``; what it sent, or None if it had
    not finished (it is killed)."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=target, args=(*args, send))
    process.start()
    answer = receive.recv() if receive.poll(seconds) else None
    process.kill()
    process.join()
    return answer


def _plain_read(path, send):
    nir.read(path, type_check=False)
    send.send("returned")


def _timed_import(path, send):
    started = time.monotonic()
    try:
        load_model(path)
        send.send(("imported", "", time.monotonic() - started))
    except Exception as exc:  # noqa: BLE001 - the parent checks the type
        send.send((type(exc).__name__, str(exc), time.monotonic() - started))


def test_file_that_makes_libhdf5_loop_forever_is_refused_in_seconds(tmp_path):
    path = tmp_path / "heap.nir"
    seed = export_nir(per_neuron_sequential([5, 4, 3], 0.75, 1.5, "zero", seed=3), tmp_path / "seed.nir")
    for data in _heap_size_mutations(seed.read_bytes()):
        path.write_bytes(data)
        if _in_fork(_plain_read, (path,), seconds=2.0) is None:
            break  # nir.read did not return: this file hangs libhdf5
    else:
        pytest.skip(f"libhdf5 {h5py.version.hdf5_version} returns on every heap-size mutation of this file")
    answer = _in_fork(_timed_import, (path,), seconds=READ_TIMEOUT_S + 10)
    assert answer is not None, "load_model hung on a file that makes libhdf5 loop forever"
    kind, message, seconds = answer
    assert kind == "ModelFormatError" and "\n" not in message, answer
    assert "heap.nir" in message and f"did not finish within {READ_TIMEOUT_S:g} s" in message
    assert seconds < READ_TIMEOUT_S + 3


def _only_in_a_child(action):
    """A stand-in for ``nir.read`` that does ``action`` in a child process and fails the test if the importing
    process calls it itself."""
    parent = os.getpid()

    def read(*args, **kwargs):
        if os.getpid() == parent:
            pytest.fail("nir.read ran in the importing process")
        action()
    return read


def test_reader_that_never_returns_is_stopped(monkeypatch, nir_file):
    monkeypatch.setattr(nir, "read", _only_in_a_child(lambda: time.sleep(60)))
    monkeypatch.setattr(nir_model, "READ_TIMEOUT_S", 0.5)
    started = time.monotonic()
    assert_import_fails(ModelFormatError, nir_file, "model.nir", "did not finish within 0.5 s")
    assert time.monotonic() - started < 5


def test_reader_that_crashes_is_an_error(monkeypatch, nir_file):
    monkeypatch.setattr(nir, "read", _only_in_a_child(lambda: os.kill(os.getpid(), signal.SIGKILL)))
    assert_import_fails(ModelFormatError, nir_file, "model.nir", "died without an answer",
                        f"signal {signal.SIGKILL.value}")
