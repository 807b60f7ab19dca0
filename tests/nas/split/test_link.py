"""The link model and the wire format: parsing, transfer times, precisions."""

from __future__ import annotations

import numpy as np
import pytest

from nas.errors import EdgenasError
from nas.split.link import FRAME_BYTES, Link, parse_link, transfer_bytes
from nas.split.wire import HEADER, decode, encode


@pytest.mark.parametrize("text, rate, rtt, energy", [
    ("20mbit,40ms", 20e6, 40.0, None),
    ("1.5Mbit/s, 100ms, 80nj", 1.5e6, 100.0, 80.0),
    ("100kbps,5ms", 1e5, 5.0, None),
    ("1gbit,500us,2uj", 1e9, 0.5, 2000.0),
])
def test_links_parse(text, rate, rtt, energy):
    link = parse_link(text)
    assert (link.rate_bps, link.rtt_ms, link.energy_nj_per_bit) == (rate, rtt, energy)
    assert parse_link(link.label()) == link


@pytest.mark.parametrize("text", ["fast", "20mbit", "20,40ms", "20mbit,40", "20mbit,40ms,3", "0mbit,4ms", "",
                                  "20mbit,40ms,1nj,7"])
def test_bad_links_are_one_line_naming_the_fix(text):
    with pytest.raises(EdgenasError) as err:
        parse_link(text)
    message = str(err.value)
    assert "\n" not in message and ("20mbit,40ms" in message or "positive" in message)


def test_request_time_is_a_round_trip_plus_both_transfers():
    link = Link(8e6, 30.0, energy_nj_per_bit=100.0)  # 1 byte per microsecond
    assert link.request_ms(1000, 40) == pytest.approx(30.0 + (1000 + FRAME_BYTES + 40 + FRAME_BYTES) / 1e3)
    assert link.radio_mj(1000, 40) == pytest.approx(8 * (1040 + 2 * FRAME_BYTES) * 100e-9 * 1e3)
    assert Link(8e6, 30.0).radio_mj(1, 1) is None
    assert HEADER.size == FRAME_BYTES


def test_precisions_set_the_bytes_and_int8_stays_within_half_a_step():
    assert [transfer_bytes(1000, p) for p in ("fp32", "fp16", "int8")] == [4000, 2000, 1000]
    assert transfer_bytes(100, "int8", integer=True) == 400  # token ids are never quantised
    x = np.random.default_rng(0).standard_normal((1, 8, 4, 4)).astype(np.float32)
    for precision, tol in (("fp32", 0.0), ("fp16", 2e-3), ("int8", None)):
        data, scale = encode(x, precision)
        back = decode(data, scale)
        assert data.nbytes == transfer_bytes(x.size, precision) and back.dtype == np.float32
        bound = tol if tol is not None else scale / 2 + 1e-6
        assert np.max(np.abs(back - x)) <= bound
    ids = np.arange(6, dtype=np.int64).reshape(1, 6)
    assert decode(*encode(ids, "int8")).tolist() == ids.tolist()
