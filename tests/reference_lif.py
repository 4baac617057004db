"""An independent, loop-by-loop Python-int transcription of the numeric contract (README "Numeric
contract"), written without numpy so that it shares no code with snn2hw.golden."""


def floor_div_pow2(value: int, bits: int) -> int:
    return value // (1 << bits)  # Python's // rounds toward minus infinity


def neuron_value(value, i: int) -> int:
    """Neuron i's value of a parameter given as one number or a list of per-neuron numbers."""
    return value[i] if isinstance(value, list) else value


def recurrent_input(recurrent, i: int, s_prev) -> int:
    """Neuron i's recurrent current: sum_j V[i][j] s_prev[j] (dense), V[i] s_prev[i] (one-to-one), or 0."""
    if recurrent is None:
        return 0
    if isinstance(recurrent[0], list):
        return sum(w * sj for w, sj in zip(recurrent[i], s_prev))
    return recurrent[i] * s_prev[i]


def reference_run(layers, state_bits, spikes, membranes=False):
    """layers: list of dicts with weight (list of rows), bias, beta_q, frac_bits, threshold (beta_q and
    threshold: a number or a per-neuron list), reset, and optionally alpha_q (Synaptic), recurrent (RLeaky V:
    a list of rows or a per-neuron list) and readout (True: never fires, threshold and reset ignored). spikes:
    [T][n_in] of 0/1. Returns the last layer's spikes [T][n_out], with ``membranes`` also its v [T][n_out]."""
    lo, hi = -(1 << (state_bits - 1)), (1 << (state_bits - 1)) - 1
    v = [[0] * len(layer["bias"]) for layer in layers]
    syn = [[0] * len(layer["bias"]) for layer in layers]
    s = [[0] * len(layer["bias"]) for layer in layers]
    out, out_v = [], []
    for x in spikes:
        x = [int(value) for value in x]
        for index, layer in enumerate(layers):
            alpha_q, recurrent = layer.get("alpha_q"), layer.get("recurrent")
            whole_clear = layer["reset"] == "zero" and (alpha_q is not None or recurrent is not None)
            new_v, new_s = [], []
            for i, row in enumerate(layer["weight"]):
                current = sum(w * xi for w, xi in zip(row, x)) + layer["bias"][i]
                current += recurrent_input(recurrent, i, s[index])
                if alpha_q is not None:
                    syn[index][i] = min(max(floor_div_pow2(neuron_value(alpha_q, i) * syn[index][i],
                                                           layer["frac_bits"]) + current, lo), hi)
                    current = syn[index][i]
                beta_q, threshold = neuron_value(layer["beta_q"], i), neuron_value(layer["threshold"], i)
                spiked = s[index][i]
                if layer["reset"] == "zero" and not whole_clear:
                    u = floor_div_pow2(beta_q * (1 - spiked) * v[index][i], layer["frac_bits"]) + current
                else:
                    u = floor_div_pow2(beta_q * v[index][i], layer["frac_bits"]) + current
                    if layer["reset"] == "subtract":
                        u -= spiked * threshold
                vi = min(max(u, lo), hi)
                if whole_clear and spiked:
                    vi = 0
                new_v.append(vi)
                new_s.append(0 if layer.get("readout") else 1 if vi > threshold else 0)
            v[index], s[index] = new_v, new_s
            x = new_s
        out.append(x)
        out_v.append(v[-1])
    return (out, out_v) if membranes else out


def reference_from_network_json(description, spikes):
    """Run the reference on a compiled network.json description and [T][n_in] spikes."""
    return reference_run(description["layers"], description["state_bits"], spikes)
