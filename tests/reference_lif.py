"""An independent, loop-by-loop Python-int transcription of the numeric contract (README "Numeric
contract"), written without numpy so that it shares no code with snn2hw.golden."""


def floor_div_pow2(value: int, bits: int) -> int:
    return value // (1 << bits)  # Python's // rounds toward minus infinity


def neuron_value(value, i: int) -> int:
    """Neuron i's value of a parameter given as one number or a list of per-neuron numbers."""
    return value[i] if isinstance(value, list) else value


def reference_run(layers, state_bits, spikes):
    """layers: list of dicts with weight (list of rows), bias, beta_q, frac_bits, threshold (beta_q and
    threshold: a number or a per-neuron list), reset. spikes: [T][n_in] of 0/1. Returns the last layer's
    spikes [T][n_out]."""
    lo, hi = -(1 << (state_bits - 1)), (1 << (state_bits - 1)) - 1
    v = [[0] * len(layer["bias"]) for layer in layers]
    s = [[0] * len(layer["bias"]) for layer in layers]
    out = []
    for x in spikes:
        x = [int(value) for value in x]
        for index, layer in enumerate(layers):
            new_v, new_s = [], []
            for i, row in enumerate(layer["weight"]):
                current = sum(w * xi for w, xi in zip(row, x)) + layer["bias"][i]
                beta_q, threshold = neuron_value(layer["beta_q"], i), neuron_value(layer["threshold"], i)
                if layer["reset"] == "zero":
                    u = floor_div_pow2(beta_q * (1 - s[index][i]) * v[index][i], layer["frac_bits"]) + current
                else:
                    u = floor_div_pow2(beta_q * v[index][i], layer["frac_bits"]) + current
                    if layer["reset"] == "subtract":
                        u -= s[index][i] * threshold
                vi = min(max(u, lo), hi)
                new_v.append(vi)
                new_s.append(1 if vi > threshold else 0)
            v[index], s[index] = new_v, new_s
            x = new_s
        out.append(x)
    return out


def reference_from_network_json(description, spikes):
    """Run the reference on a compiled network.json description and [T][n_in] spikes."""
    return reference_run(description["layers"], description["state_bits"], spikes)
