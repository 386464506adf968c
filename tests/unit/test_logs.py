"""Log batching and exactly-once positions."""

import threading

from colonies_operator.colonies import ColoniesUnreachable
from colonies_operator.logs import (
    ContainerFollower,
    LogShipper,
    StreamPosition,
    count_shipped_lines,
    split_timestamped_lines,
)


def test_lines_are_batched_in_order():
    sent = []
    shipper = LogShipper(sent.append)
    for i in range(5000):
        shipper.add(f"line {i}")
    shipper.flush()
    lines = "".join(sent).splitlines()
    assert lines == [f"line {i}" for i in range(5000)]
    assert len(sent) <= 3


def test_lines_stay_buffered_while_colonies_is_unreachable():
    sent, down = [], [True]

    def send(message):
        if down[0]:
            raise ColoniesUnreachable("down")
        sent.append(message)

    shipper = LogShipper(send)
    shipper.add("a")
    assert shipper.flush() is False and shipper.pending == 1
    down[0] = False
    shipper.add("b")
    assert shipper.flush() is True
    assert "".join(sent) == "a\nb\n"


def test_split_handles_lines_across_chunks():
    chunks = [b"2026-01-01T00:00:00.1Z hel", b"lo\n2026-01-01T00:00:00.2Z wor", b"ld\n"]
    assert list(split_timestamped_lines(chunks)) == [("2026-01-01T00:00:00.100000000Z", "hello"),
                                                      ("2026-01-01T00:00:00.200000000Z", "world")]


def test_timestamps_compare_in_time_order_whatever_their_precision():
    from colonies_operator.logs import normalize_timestamp
    assert normalize_timestamp("2026-01-01T00:00:00.12Z") < normalize_timestamp("2026-01-01T00:00:00.123Z")
    assert normalize_timestamp("2026-01-01T00:00:01Z") > normalize_timestamp("2026-01-01T00:00:00.999999999Z")


def test_an_error_body_is_not_taken_for_log_lines():
    import pytest
    with pytest.raises(ValueError, match="not a timestamped log line"):
        list(split_timestamped_lines([b'{"kind":"Status","code":503}\n']))


def test_a_reconnect_skips_what_was_read():
    position = StreamPosition()
    first = [("2026-01-01T00:00:01.1Z", "a"), ("2026-01-01T00:00:01.5Z", "b"), ("2026-01-01T00:00:01.5Z", "c")]
    position.begin_resume()
    assert [position.accept(ts, False) for ts, _ in first] == [True, True, True]
    assert position.since_time() == "2026-01-01T00:00:01Z"
    # The API server replays from the second: everything up to and including the two lines at .5 again.
    position.begin_resume()
    replay = first + [("2026-01-01T00:00:02.0Z", "d")]
    assert [position.accept(ts, True) for ts, _ in replay] == [False, False, False, True]


def test_an_adopted_stream_skips_the_lines_colonies_already_has():
    position = StreamPosition(skip_lines=2)
    position.begin_resume()
    assert [position.accept(f"2026-01-01T00:00:0{i}Z", False) for i in range(4)] == [False, False, True, True]


def test_count_shipped_lines_per_container():
    messages = ["[0/proc-0] a\n[0/proc-1] b\n", "[0/proc-0] c\n"]
    assert count_shipped_lines(messages, ["[0/proc-0] ", "[0/proc-1] "]) == {"[0/proc-0] ": 2, "[0/proc-1] ": 1}
    assert count_shipped_lines(["x\ny\n", "z\n"], [""]) == {"": 3}


def test_follower_reopens_a_stream_that_ends_while_the_container_runs():
    streams = [
        [b"2026-01-01T00:00:01.1Z one\n"],
        [b"2026-01-01T00:00:01.1Z one\n2026-01-01T00:00:02.1Z two\n"],
        [b"2026-01-01T00:00:01.1Z one\n2026-01-01T00:00:02.1Z two\n2026-01-01T00:00:03.1Z three\n"],
        # opened after the container ended: the final read that drains the log
        [b"2026-01-01T00:00:01.1Z one\n2026-01-01T00:00:02.1Z two\n2026-01-01T00:00:03.1Z three\n"
         b"2026-01-01T00:00:03.2Z four\n"],
    ]
    opened = []

    def open_stream(since):
        opened.append(since)
        return streams[len(opened) - 1]

    sent = []
    shipper = LogShipper(sent.append)
    follower = ContainerFollower(open_stream=open_stream, container_done=lambda: len(opened) >= 3, shipper=shipper,
                                 prefix="", position=StreamPosition(), stop=threading.Event(), name="t")
    follower.run()
    shipper.flush()
    assert "".join(sent) == "one\ntwo\nthree\nfour\n"
    assert opened == [None, "2026-01-01T00:00:01Z", "2026-01-01T00:00:02Z", "2026-01-01T00:00:03Z"]
