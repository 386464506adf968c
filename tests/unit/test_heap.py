"""When the operator hands freed memory back to the system (heap.py): while its work changes and for a while
after, with a full collection once it has settled and at the end; never while it stays the same."""

from colonies_operator.engine.heap import CHECK_SECONDS, REST_SECONDS, SETTLE_SECONDS, HeapTrimmer, glibc_malloc_trim


def trimmer() -> tuple[HeapTrimmer, list[bool]]:
    calls: list[bool] = []  # per trim: whether the garbage was collected first
    return HeapTrimmer(calls.append), calls


def test_an_unchanging_load_is_never_trimmed():
    heap, calls = trimmer()
    for step in range(100):
        heap.observe(0, step * CHECK_SECONDS)
    assert calls == []


def test_a_burst_is_trimmed_while_it_changes_then_collected_at_rest_then_left_alone():
    heap, calls = trimmer()
    now = 0.0
    loads = list(range(0, 2001, 200)) + list(range(1900, -1, -100))  # up, then drained
    for load in loads[1:]:
        now += CHECK_SECONDS
        assert heap.observe(load, now)
    assert len(calls) == len(loads) - 1 and not any(calls)  # while busy: cheap trims, no full collection
    drained_at, at_rest = now, []  # (seconds since the load last changed, collected first) per trim
    for _ in range(60):
        now += CHECK_SECONDS
        if heap.observe(0, now):
            at_rest.append((now - drained_at, calls[-1]))
    quiet = [seconds for seconds, _ in at_rest]
    assert quiet == [SETTLE_SECONDS + i * CHECK_SECONDS for i in range(len(quiet))]  # each look, then none
    assert quiet[-1] == REST_SECONDS
    assert [seconds for seconds, collected in at_rest if collected] == [SETTLE_SECONDS, REST_SECONDS]


def test_a_load_that_keeps_changing_is_collected_only_once_it_stops():
    heap, calls = trimmer()
    now = 0.0
    for load in (40, 39, 40, 39, 40, 39):
        now += CHECK_SECONDS
        heap.observe(load, now)
    assert True not in calls
    assert not heap.observe(39, now + SETTLE_SECONDS - 1)
    assert heap.observe(39, now + SETTLE_SECONDS)
    assert calls[-1] is True


def test_without_malloc_trim_nothing_is_called_and_nothing_breaks():
    heap = HeapTrimmer(None)
    for now, load in ((0.0, 100), (10.0, 0), (10.0 + SETTLE_SECONDS, 0), (10.0 + REST_SECONDS, 0)):
        assert not heap.observe(load, now)
    assert heap.trims == 0


def test_glibc_trim_is_found_and_callable_here():
    trim = glibc_malloc_trim()
    assert trim is not None  # the test machine and the image are Debian: glibc
    trim(True)
    trim(False)
