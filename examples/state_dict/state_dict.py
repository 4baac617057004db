"""A float snnTorch ``nn.Sequential`` saved as a state_dict, quantized by snn2hw, verified in Verilator.

The network is ``nn.Sequential(nn.Linear(32, 24), snn.Leaky, nn.Linear(24, 4), snn.Leaky)`` (state_dict keys
``0.weight``, ``0.bias``, ``1.beta``, ``1.threshold``, ..., ``3.reset_mechanism_val``), trained for a few seconds
on a synthetic task: four classes, each a fixed vector of 32 firing probabilities, and a sample is Bernoulli
spikes drawn at its class's probabilities for 20 timesteps. Its weights stay float; ``snn2hw compile
--weight-bits 4`` quantizes them (post-training), and the script compares the float network's accuracy with
the golden model's and the RTL's. Task, training and evaluation are shared with the NIR example
(``examples/synthetic_task.py``).

    python examples/state_dict/state_dict.py all out/state_dict   # compile model.pt, verify, evaluate
    python examples/state_dict/state_dict.py evaluate out/state_dict
    python examples/state_dict/state_dict.py train                 # retrain: rewrites model.pt
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

sys.path.append(str(Path(__file__).resolve().parent.parent))  # examples/: the task shared with examples/nir
from synthetic_task import (Example, accuracy, held_out_split, make_network, network_outputs,  # noqa: E402
                            verify_design)

HERE = Path(__file__).resolve().parent
MODEL = HERE / "model.pt"          # torch.save(net.state_dict(), MODEL)


def save_network(net: nn.Sequential, model: Path) -> None:
    torch.save(net.state_dict(), model)


def load_network(model: Path = MODEL) -> nn.Sequential:
    net = make_network()
    net.load_state_dict(torch.load(model, weights_only=True))
    return net


EXAMPLE = Example(model=MODEL, make_network=make_network, save=save_network, load=load_network)
train, compile_design, evaluate = EXAMPLE.train, EXAMPLE.compile_design, EXAMPLE.evaluate
__all__ = ["MODEL", "EXAMPLE", "train", "compile_design", "verify_design", "evaluate", "load_network",
           "held_out_split", "accuracy", "network_outputs"]


if __name__ == "__main__":
    sys.exit(EXAMPLE.main(__doc__.splitlines()[0]))
