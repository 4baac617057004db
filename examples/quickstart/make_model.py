"""Make the bundled quickstart model: a 16-32-4 snnTorch network with integer weights and dyadic betas,
exported as the single-timestep ONNX graph snn2hw compiles (membranes as explicit inputs/outputs).

    python examples/quickstart/make_model.py     # rewrites examples/quickstart/model.onnx
"""

from pathlib import Path

import snntorch as snn
import torch
from torch import nn


class Step(nn.Module):
    """One timestep: two Linear + Leaky layers, membranes in and out."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(16, 32)
        self.lif1 = snn.Leaky(beta=0.9375, threshold=6.0, reset_mechanism="subtract")
        self.fc2 = nn.Linear(32, 4, bias=False)
        self.lif2 = snn.Leaky(beta=0.875, threshold=4.0, reset_mechanism="zero")

    def forward(self, x, mem1, mem2):
        s1, mem1 = self.lif1(self.fc1(x), mem1)
        s2, mem2 = self.lif2(self.fc2(s1), mem2)
        return s2, mem1, mem2


def main():
    torch.manual_seed(0)
    step = Step()
    with torch.no_grad():  # integer-valued weights: the model compiles exactly, no rescaling
        step.fc1.weight.copy_(torch.randint(-7, 8, step.fc1.weight.shape).float())
        step.fc1.bias.copy_(torch.randint(-2, 3, step.fc1.bias.shape).float())
        step.fc2.weight.copy_(torch.randint(-7, 8, step.fc2.weight.shape).float())
    args = (torch.zeros(1, 16), torch.zeros(1, 32), torch.zeros(1, 4))
    path = Path(__file__).with_name("model.onnx")
    torch.onnx.export(step, args, path, input_names=["x", "mem1", "mem2"],
                      output_names=["spk", "mem1_out", "mem2_out"], dynamo=False)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
