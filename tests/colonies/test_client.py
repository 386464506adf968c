"""The Colonies client against a real Colonies server (started by the suite)."""

import threading
import time

import pytest

from colonies_operator.colonies import (
    ColoniesClient,
    ColoniesUnreachable,
    Conditions,
    ExecutorState,
    Forbidden,
    FunctionSpec,
    InvalidRequest,
    NotFound,
    ProcessState,
    ServerError,
    crypto,
)
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.colonies


def spec_for(colony, executortype="test-executor", **overrides) -> FunctionSpec:
    spec = FunctionSpec(funcname="execute", kwargs={"docker-image": "busybox:1.35", "cmd": "echo hi"},
                        conditions=Conditions(colonyname=colony.name, executortype=executortype))
    for key, value in overrides.items():
        setattr(spec, key, value)
    return spec


def test_server_version_and_stats(colony):
    assert colony.client.version()["msgtype"] == "versionmsg"
    stats = colony.client.colony_stats(colony.name, colony.user_prvkey)
    assert stats["waitingprocesses"] == 0


def test_register_and_approve_an_executor(colony):
    name, prvkey = colony.new_executor(approve=False)
    executor = colony.client.get_executor(colony.name, name, colony.user_prvkey)
    assert executor.executorid == crypto.prvkey_to_id(prvkey)
    assert executor.state == ExecutorState.PENDING
    colony.client.approve_executor(colony.name, name, colony.colony_prvkey)
    assert colony.client.get_executor(colony.name, name, prvkey).state == ExecutorState.APPROVED


def test_an_unapproved_executor_is_forbidden_to_assign(colony):
    _, prvkey = colony.new_executor(approve=False)
    with pytest.raises(Forbidden):
        colony.client.assign(colony.name, -1, prvkey)


def test_functions_are_registered_and_listed(colony):
    name, prvkey = colony.new_executor()
    colony.client.add_function(colony.name, name, "test-executor", "execute", prvkey)
    functions = colony.client.get_functions(colony.name, name, prvkey)
    assert [f.funcname for f in functions] == ["execute"]


def test_submit_assign_log_output_close_and_read_back(colony):
    client = colony.client
    name, prvkey = colony.new_executor()
    submitted = client.submit(spec_for(colony, maxexectime=60, env={"GREETING": "hi"}), colony.user_prvkey)
    assert submitted.state == ProcessState.WAITING and submitted.spec.maxexectime == 60

    process = client.assign(colony.name, 5, prvkey)
    assert process is not None and process.processid == submitted.processid
    assert process.state == ProcessState.RUNNING and process.spec.kwargs["cmd"] == "echo hi"

    client.add_log(process.processid, "line 1\nline 2\n", prvkey)
    client.add_log(process.processid, "with a NUL \x00 byte\n", prvkey)
    client.set_output(process.processid, ["partial"], prvkey)
    client.close_successful(process.processid, prvkey, output=["done", 42])

    final = client.get_process(process.processid, colony.user_prvkey)
    assert final.state == ProcessState.SUCCESS
    assert final.output == ["done", 42]
    assert final.spec.env == {"GREETING": "hi"}
    messages = [entry.message for entry in client.all_logs(colony.name, process.processid, colony.user_prvkey)]
    assert messages == ["line 1\nline 2\n", "with a NUL \u2400 byte\n"]


def test_assign_without_work_returns_none(colony):
    _, prvkey = colony.new_executor()
    assert colony.client.assign(colony.name, -1, prvkey) is None
    started = time.monotonic()
    assert colony.client.assign(colony.name, 1, prvkey) is None
    assert time.monotonic() - started >= 0.9


def test_close_failed_keeps_the_errors(colony):
    _, prvkey = colony.new_executor()
    colony.client.submit(spec_for(colony), colony.user_prvkey)
    process = colony.client.assign(colony.name, 5, prvkey)
    colony.client.close_failed(process.processid, ["exit code 3", "last line: boom"], prvkey)
    final = colony.client.get_process(process.processid, colony.user_prvkey)
    assert final.state == ProcessState.FAILED
    assert final.errors == ["exit code 3", "last line: boom"]


def test_long_poll_wakes_up_on_submit(colony):
    _, prvkey = colony.new_executor()
    result = {}

    def poll():
        started = time.monotonic()
        result["process"] = colony.client.assign(colony.name, 20, prvkey)
        result["returned"] = time.monotonic()
        result["started"] = started

    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(0.5)  # let the long-poll reach the server before submitting
    submitted_at = time.monotonic()
    submitted = colony.client.submit(spec_for(colony), colony.user_prvkey)
    poller.join(25)
    assert result["process"].processid == submitted.processid
    assert result["returned"] - submitted_at < 3, "the long-poll should return right after the submit"


def test_a_cancelled_running_process_is_detected(colony):
    _, prvkey = colony.new_executor()
    colony.client.submit(spec_for(colony), colony.user_prvkey)
    process = colony.client.assign(colony.name, 5, prvkey)
    colony.client.cancel(process.processid, colony.user_prvkey)
    assert colony.client.get_process(process.processid, prvkey).state == ProcessState.CANCELLED
    with pytest.raises(Forbidden):
        colony.client.add_log(process.processid, "too late", prvkey)
    with pytest.raises(InvalidRequest, match="cancelled"):
        colony.client.close_successful(process.processid, prvkey)


def test_a_process_requeued_after_maxexectime_is_detected_by_the_executor_that_lost_it(colony):
    _, prvkey = colony.new_executor()
    colony.client.submit(spec_for(colony, maxexectime=2, maxretries=3), colony.user_prvkey)
    process = colony.client.assign(colony.name, 5, prvkey)
    requeued = wait_for(
        lambda: (p := colony.client.get_process(process.processid, prvkey)).state == ProcessState.WAITING and p,
        timeout=15, description="the server re-queues the process after maxexectime")
    assert requeued.retries == 1 and not requeued.isassigned
    with pytest.raises(Forbidden):
        colony.client.add_log(process.processid, "still here?", prvkey)
    with pytest.raises(Forbidden):
        colony.client.close_successful(process.processid, prvkey)


def test_an_executor_key_reused_across_a_restart_keeps_its_running_processes(colony):
    name, prvkey = colony.new_executor()
    colony.client.submit(spec_for(colony), colony.user_prvkey)
    process = colony.client.assign(colony.name, 5, prvkey)

    # A restarted executor: a new client with the same key finds itself registered and approved,
    # so it does not register again, and may still close what it was running.
    restarted = ColoniesClient(colony.server.host, colony.server.port)
    me = restarted.get_executor(colony.name, name, prvkey)
    assert me.executorid == crypto.prvkey_to_id(prvkey) and me.state == ExecutorState.APPROVED
    restarted.add_log(process.processid, "after restart\n", prvkey)
    restarted.close_successful(process.processid, prvkey, output=["ok"])
    assert restarted.get_process(process.processid, colony.user_prvkey).state == ProcessState.SUCCESS


def test_errors_are_typed_and_carry_the_server_message(colony):
    _, prvkey = colony.new_executor()
    with pytest.raises(NotFound):
        colony.client.get_process("0" * 64, prvkey)
    with pytest.raises(ServerError, match="process is nil"):
        colony.client.close_successful("0" * 64, prvkey)
    outsider = crypto.generate_prvkey()
    with pytest.raises(Forbidden, match="not a member"):
        colony.client.get_processes(colony.name, ProcessState.WAITING, outsider)
    # The server answers a NUL in a log with two error objects back to back; the first one counts.
    colony.client.submit(spec_for(colony), colony.user_prvkey)
    process = colony.client.assign(colony.name, 5, prvkey)
    with pytest.raises(InvalidRequest):
        colony.client.rpc("addlogmsg", {"processid": process.processid, "message": "a\x00b"}, prvkey)


def test_maxexectime_zero_is_never_sent(colony):
    with pytest.raises(ValueError, match="maxexectime 0"):
        colony.client.submit(spec_for(colony, maxexectime=0), colony.user_prvkey)
    # A dict spec without maxexectime gets -1 (no limit), not the server's 0.
    process = colony.client.submit({"funcname": "execute", "conditions": {"colonyname": colony.name,
                                                                          "executortype": "t"}}, colony.user_prvkey)
    assert process.spec.maxexectime == -1


def test_an_unreachable_server_is_reported_as_such():
    client = ColoniesClient("127.0.0.1", 9, connect_timeout=1)
    with pytest.raises(ColoniesUnreachable, match="cannot reach"):
        client.version()
