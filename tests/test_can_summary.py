"""Command-to-reply pairing of the CAN frame log (runtime.report.summary._can_summary)."""
from __future__ import annotations

from runtime.report.summary import _can_summary

CMD = bytes([0x7F, 0xFF, 0x7F, 0xF0, 0x00, 0x00, 0x07, 0xFF])       # an MIT command frame (8 bytes, not special)
ENTER = b"\xff" * 7 + b"\xfc"


def _log(rows):
    """rows: (t_ns, can_id, rx, data) -> the column dict the summary reads."""
    return {"t_ns": [r[0] for r in rows], "id": [r[1] for r in rows], "rx": [r[2] for r in rows],
            "err": [False] * len(rows), "data": [r[3] for r in rows]}


def test_replies_pair_in_time_order_even_when_logged_out_of_order():
    # motor 1: command at 1.000 ms, reply at 1.150 ms; the reply's record was written first
    rows = [(1_150_000, 0, True, bytes([1, 0, 0, 0, 0, 0])), (1_000_000, 1, False, CMD),
            (3_000_000, 1, False, CMD), (3_120_000, 0, True, bytes([1, 0, 0, 0, 0, 0]))]
    cs = _can_summary(_log(rows))
    assert cs["command_to_reply_s"]["count"] == 2
    assert abs(cs["command_to_reply_s"]["max"] - 150e-6) < 1e-12
    assert abs(cs["command_to_reply_s"]["p50"] - 135e-6) < 1e-9
    assert cs["commands_unanswered"] == 0 and cs["replies_unpaired"] == 0


def test_lost_replies_and_special_frame_answers_are_counted_not_paired():
    rows = [(0, 1, False, ENTER), (50_000, 0, True, bytes([1, 0, 0, 0, 0, 0])),     # answer to ENTER
            (1_000_000, 1, False, CMD),                                             # its reply is lost
            (3_000_000, 1, False, CMD), (3_200_000, 0, True, bytes([1, 0, 0, 0, 0, 0])),
            (5_000_000, 1, False, CMD)]                                             # the log ends first
    cs = _can_summary(_log(rows))
    assert cs["command_to_reply_s"]["count"] == 1
    assert abs(cs["command_to_reply_s"]["max"] - 200e-6) < 1e-12          # not paired with the 1.0 ms command
    assert cs["commands_unanswered"] == 2 and cs["replies_unpaired"] == 1
    assert (cs["frames_tx"], cs["frames_rx"]) == (4, 2)
