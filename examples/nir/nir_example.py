"""A float snnTorch network exported to NIR with ``export_to_nir``, quantized by snn2hw, verified in Verilator.

The network and task are the state_dict example's (``examples/synthetic_task.py``): ``nn.Sequential(
nn.Linear(32, 24), snn.Leaky, nn.Linear(24, 4), snn.Leaky)``, beta 0.875, threshold 1, trained for a few seconds on
four classes of rate-coded spikes (20 timesteps). Here the Leaky neurons reset to zero, which is what NIR's LIF
does (``v = v_reset = 0`` after a spike), and hold beta and threshold as per-neuron tensors, which snnTorch's
exporter needs. ``export_to_nir(net, torch.zeros(1, 32), ignore_dims=[0])`` writes the graph
``Input -> Affine 0 -> LIF 1 -> Affine 2 -> LIF 3 -> Output`` with ``tau = dt/(1 - beta)`` at ``dt = 1e-4``;
``snn2hw compile --nir-dt 1e-4 --reset zero --weight-bits 4`` reads it back, quantizes it, and the script compares
the float network's accuracy with the golden model's and the RTL's.

    python examples/nir/nir_example.py all out/nir        # compile model.nir, verify, evaluate
    python examples/nir/nir_example.py evaluate out/nir
    python examples/nir/nir_example.py train              # retrain: rewrites model.nir
"""

from __future__ import annotations

import contextlib
import io
import sys
import warnings
from pathlib import Path

import nir
import torch
from snntorch.export_nir import export_to_nir   # needs the nirtorch package
from torch import nn

sys.path.append(str(Path(__file__).resolve().parent.parent))  # examples/: the task shared with examples/state_dict
from synthetic_task import (SIZES, Example, accuracy, held_out_split, make_network,  # noqa: E402
                            network_outputs, verify_design)

HERE = Path(__file__).resolve().parent
MODEL = HERE / "model.nir"
NIR_DT = 1e-4                      # the time step export_to_nir assumes: tau = NIR_DT / (1 - beta)
RESET = "zero"                     # what snn.Leaky(reset_mechanism=...) does, and what compile --reset says
DENSE = ("0", "2")                 # the NIR nodes (and Sequential indices) of the two nn.Linear layers


def make_nir_network() -> nn.Sequential:
    """The untrained network, with per-neuron beta and threshold tensors and the zero reset."""
    return make_network(reset=RESET, per_neuron=True)


def save_network(net: nn.Sequential, model: Path) -> None:
    """``nir.write(model, export_to_nir(...))``; the batch dimension of the sample is ignored (``ignore_dims``).
    The exporter lists the edges in an order that changes from run to run; they are sorted so that the same
    network always gives the same file."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # nirtorch's deprecation notices
        graph = export_to_nir(net, torch.zeros(1, SIZES[0]), ignore_dims=[0])
    graph.edges = sorted(graph.edges)
    nir.write(model, graph)


def load_network(model: Path = MODEL) -> nn.Sequential:
    """The float network of a NIR file as snnTorch runs it: the weights and biases of its Affine nodes in
    :func:`make_nir_network` (beta and threshold are not trained)."""
    graph = nir.read(model)
    net = make_nir_network()
    with torch.no_grad():
        for name in DENSE:
            net[int(name)].weight.copy_(torch.from_numpy(graph.nodes[name].weight))
            net[int(name)].bias.copy_(torch.from_numpy(graph.nodes[name].bias))
    return net


EXAMPLE = Example(model=MODEL, make_network=make_nir_network, save=save_network, load=load_network,
                  compile_options=("--nir-dt", NIR_DT, "--reset", RESET))
train, compile_design, evaluate = EXAMPLE.train, EXAMPLE.compile_design, EXAMPLE.evaluate
__all__ = ["MODEL", "EXAMPLE", "train", "compile_design", "verify_design", "evaluate", "load_network",
           "held_out_split", "accuracy", "network_outputs"]


if __name__ == "__main__":
    sys.exit(EXAMPLE.main(__doc__.splitlines()[0]))
