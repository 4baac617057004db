import numpy as np
import pytest

from snn2hw.hw.events import EventFormat
from snn2hw.verify.protocol import decode_outputs, encode_inputs


def test_encode_decode_round_trip():
    spikes = (np.random.default_rng(0).random((5, 9)) < 0.4).astype(np.uint8)
    assert np.array_equal(decode_outputs(encode_inputs(spikes), 5, 9), spikes)


def test_packing_is_index_then_eot_then_last():
    fmt = EventFormat(9)                  # 4 index bits
    assert fmt.pack(5) == 5 and fmt.pack(eot=True) == 16 and fmt.pack(eot=True, last=True) == 48
    assert fmt.unpack(48) == (0, True, True)


def test_malformed_output_streams_are_rejected():
    fmt = EventFormat(3)
    with pytest.raises(ValueError, match="ended after 1 of 2"):
        decode_outputs([fmt.pack(eot=True)], 2, 3)
    with pytest.raises(ValueError, match="index 3"):
        decode_outputs([fmt.pack(3), fmt.pack(eot=True, last=True)], 1, 3)
