"""Every bad input is refused by the CLI with one line on stderr naming the problem, exit code 2, no
traceback and nothing left behind."""

import pytest
import torch
from torch import nn

from model_factory import export_onnx, make_sequential, make_step_module, save_state_dict
from cli_helpers import run_cli


def _onnx(tmp_path):
    return export_onnx(make_step_module([4, 3, 2], thresholds=2.0), tmp_path / "good.onnx", dynamo=False)


def _state_dict_with(tmp_path, key, value):
    module = make_sequential([4, 3, 2], thresholds=2.0)
    state = module.state_dict()
    state[key] = value
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    return path


class _ANN(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(4, 3), nn.Linear(3, 2)

    def forward(self, x):
        return torch.softmax(self.fc2(torch.relu(self.fc1(x))), dim=-1)


class _Sigmoid(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = make_step_module([4, 3], thresholds=2.0)

    def forward(self, x, mem):
        spk, mem = self.inner(torch.sigmoid(x), mem)
        return spk, mem


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def _truncated(tmp_path):
    data = _onnx(tmp_path).read_bytes()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    return path


def _wrong_extension(tmp_path):
    path = tmp_path / "model.txt"
    path.write_bytes(_onnx(tmp_path).read_bytes())
    return path


def _too_big(tmp_path):
    module = make_step_module([784, 512, 10], thresholds=4.0)
    return save_state_dict(module, tmp_path / "big.pt")


CASES = {
    # name: (make the model file, extra CLI options, text the error must contain)
    "missing file": (lambda p: p / "absent.onnx", [], "does not exist"),
    "empty file": (lambda p: _write(p / "e.onnx", b""), [], "is empty"),
    "random bytes": (lambda p: _write(p / "r.pt", bytes(range(256)) * 9), [], "r.pt"),
    "truncated onnx": (_truncated, [], "cut.onnx"),
    "wrong extension": (_wrong_extension, [], ".txt"),
    "ANN with softmax": (lambda p: export_onnx(_ANN(), p / "ann.onnx", dynamo=False, args=(torch.zeros(1, 4),),
                                               input_names=["x"], output_names=["y"]), [], "Softmax"),
    "unsupported op": (lambda p: export_onnx(_Sigmoid(), p / "sig.onnx", dynamo=False,
                                             args=(torch.zeros(1, 4), torch.zeros(1, 3)), input_names=["x", "m"],
                                             output_names=["s", "m_out"]), [], "Sigmoid"),
    "foreign state_dict keys": (lambda p: _state_dict_with(p, "conv.weight", torch.zeros(2, 1, 3, 3)), [], "conv"),
    "NaN weight": (lambda p: _state_dict_with(p, "0.weight", torch.full((3, 4), float("nan"))), [], "NaN"),
    "Inf weight": (lambda p: _state_dict_with(p, "2.weight", torch.full((2, 3), float("inf"))), [], "inf"),
    "zero threshold": (lambda p: _state_dict_with(p, "1.threshold", torch.tensor(0.0)), [], "threshold"),
    "negative threshold": (lambda p: _state_dict_with(p, "3.threshold", torch.tensor(-1.0)), [], "threshold"),
    "beta above 1": (lambda p: _state_dict_with(p, "1.beta", torch.tensor(1.5)), [], "beta"),
    "beta below 0": (lambda p: _state_dict_with(p, "3.beta", torch.tensor(-0.25)), [], "beta"),
    "weights too wide": (_onnx, ["--weight-bits", "2"], "--weight-bits 2"),
    "state width out of range": (_onnx, ["--state-bits", "1"], "--state-bits"),
    "model too big for the board": (_too_big, [], "block RAMs"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_refused_cleanly(case, tmp_path):
    make, options, fragment = CASES[case]
    model = make(tmp_path)
    before = sorted(path.name for path in tmp_path.iterdir())
    result = run_cli("compile", model, "--board", "ice40", "-o", tmp_path / "out", *options, check=2)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("snn2hw: error: "), result.stderr
    assert fragment.lower() in lines[0].lower(), lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert sorted(path.name for path in tmp_path.iterdir()) == before      # no OUTDIR, no staging left
