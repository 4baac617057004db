"""Run the snn2hw CLI in-process or as a subprocess, and build contract references from torch modules."""

import subprocess
import sys

import numpy as np

from model_factory import expected_layers
from reference_lif import reference_run


def run_cli(*args, check=None):
    """Run ``snn2hw ARGS`` as a real subprocess; return CompletedProcess (text)."""
    result = subprocess.run([sys.executable, "-m", "snn2hw.cli", *map(str, args)], capture_output=True, text=True)
    if check is not None:
        assert result.returncode == check, (result.returncode, result.stdout, result.stderr)
    return result


def _as_int(value):
    """An integer-valued parameter as an int, or a per-neuron list of ints (as reference_run takes it)."""
    return np.asarray(value).astype(int).tolist()


def reference_outputs(module, state_bits, spikes, frac_bits=8):
    """The contract evaluated on ``module``'s own parameters (integer-valued weights), [B, T, n_out]."""
    layers = [{"weight": layer.weight.astype(int).tolist(), "bias": layer.bias.astype(int).tolist(),
               "beta_q": _as_int(np.round(layer.beta * (1 << frac_bits))), "frac_bits": frac_bits,
               "threshold": _as_int(layer.threshold), "reset": layer.reset.value}
              for layer in expected_layers(module)]
    return np.array([reference_run(layers, state_bits, sample) for sample in spikes], np.uint8)
