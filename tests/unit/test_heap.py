"""When the operator hands freed memory back to the system (heap.py): while its work changes, once more when
the work has come to rest, and never while it stays the same."""

from colonies_operator.heap import CHECK_SECONDS, SETTLE_SECONDS, HeapTrimmer, glibc_malloc_trim


def trimmer() -> tuple[HeapTrimmer, list[bool]]:
    calls: list[bool] = []  # per trim: whether the garbage was collected first
    return HeapTrimmer(calls.append), calls


def test_an_unchanging_load_is_never_trimmed():
    heap, calls = trimmer()
    for step in range(100):
        heap.observe(0, step * CHECK_SECONDS)
    assert calls == []


def test_a_burst_is_trimmed_at_each_look_while_it_changes_then_once_at_rest_with_a_collection():
    heap, calls = trimmer()
    now = 0.0
    loads = list(range(0, 2001, 200)) + list(range(1900, -1, -100))  # up, then drained
    for load in loads[1:]:
        now += CHECK_SECONDS
        assert heap.observe(load, now)
    assert calls and not any(calls)  # while busy: no full collection (hundreds of ms on a large heap)
    busy_trims = len(calls)
    drained_at, at_rest = now, []
    for _ in range(30):  # what finished processes held goes later: one more trim at rest, then none
        now += CHECK_SECONDS
        if heap.observe(0, now):
            at_rest.append(now)
    assert at_rest == [drained_at + SETTLE_SECONDS]
    assert calls[busy_trims:] == [True]
    assert heap.trims == busy_trims + 1


def test_a_load_that_keeps_changing_comes_to_rest_only_when_it_stops():
    heap, calls = trimmer()
    now = 0.0
    for load in (40, 39, 40, 39, 40, 39):
        now += CHECK_SECONDS
        heap.observe(load, now)
    assert True not in calls
    assert not heap.observe(39, now + SETTLE_SECONDS - 1)
    assert heap.observe(39, now + SETTLE_SECONDS)
    assert calls[-1] is True
    assert not heap.observe(39, now + 10 * SETTLE_SECONDS)  # once


def test_without_malloc_trim_nothing_is_called_and_nothing_breaks():
    heap = HeapTrimmer(None)
    assert not heap.observe(100, 0.0)
    assert not heap.observe(0, 10.0)
    assert not heap.observe(0, 10.0 + SETTLE_SECONDS)
    assert heap.trims == 0


def test_glibc_trim_is_found_and_callable_here():
    trim = glibc_malloc_trim()
    assert trim is not None  # the test machine and the image are Debian: glibc
    trim(True)
    trim(False)
