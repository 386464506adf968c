"""The Colonies client against a real Colonies server (started by the suite)."""

import threading
import time

import pytest

from colonies_operator.colonies import (
    ColoniesUnreachable,
    Conditions,
    Executor,
    ExecutorState,
    Forbidden,
    FunctionSpec,
    InvalidRequest,
    NotFound,
    ProcessState,
    ServerError,
    crypto,
)
from devtools.colonies_client import ColoniesClient
from devtools.waiting import wait_for

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


# -- Colonies v1.9 conventions: capabilities, locations, documented functions, executor log, pause, workflows ----

HARDWARE = [{"model": "", "nodes": 2, "cpu": "8000m", "cores": 8, "mem": "32000Mi", "storage": "",
             "gpu": {"name": "nvidia-a100", "mem": "40960Mi", "count": 4, "nodecount": 2},
             "platform": "linux", "architecture": "amd64", "network": []}]


def new_executor_with(colony, executortype="test-executor", **fields):
    name, prvkey = f"executor-{crypto.generate_prvkey()[:8]}", crypto.generate_prvkey()
    executor = Executor(executorid=crypto.prvkey_to_id(prvkey), executorname=name, executortype=executortype,
                        colonyname=colony.name, **fields)
    colony.client.add_executor(executor, colony.colony_prvkey)
    colony.client.approve_executor(colony.name, name, colony.colony_prvkey)
    return name, prvkey


def test_an_executor_registers_with_a_location_and_its_hardware_and_updates_the_hardware(colony):
    name, prvkey = new_executor_with(colony, locationname="lab-a",
                                     capabilities={"hardware": HARDWARE, "software": []})
    executor = colony.client.get_executor(colony.name, name, colony.user_prvkey)
    assert executor.locationname == "lab-a"
    assert executor.hardware == HARDWARE

    smaller = [dict(HARDWARE[0], nodes=1, cpu="4000m", cores=4, gpu=dict(HARDWARE[0]["gpu"], count=2))]
    colony.client.update_capabilities(colony.name, name, {"hardware": smaller}, prvkey)
    executor = colony.client.get_executor(colony.name, name, colony.user_prvkey)
    assert executor.hardware == smaller and executor.locationname == "lab-a"
    # Only the executor itself may change its capabilities.
    other, other_key = colony.new_executor()
    with pytest.raises(InvalidRequest, match="own capabilities"):
        colony.client.update_capabilities(colony.name, name, {"hardware": []}, other_key)


def test_an_executor_in_a_location_gets_only_processes_for_that_location_or_none(colony):
    _, in_a = new_executor_with(colony, locationname="lab-a")
    _, in_b = new_executor_with(colony, locationname="lab-b")
    for_b = colony.client.submit(spec_for(colony, conditions=Conditions(
        colonyname=colony.name, executortype="test-executor", locationname="lab-b")), colony.user_prvkey)
    assert for_b.spec.conditions.locationname == "lab-b"
    assert colony.client.assign(colony.name, -1, in_a) is None
    assert colony.client.assign(colony.name, -1, in_b).processid == for_b.processid
    anywhere = colony.client.submit(spec_for(colony), colony.user_prvkey)
    assert colony.client.assign(colony.name, -1, in_a).processid == anywhere.processid


def test_a_documented_function_keeps_its_description_and_arguments(colony):
    name, prvkey = colony.new_executor()
    args = [{"name": "docker-image", "type": "string", "description": "the image", "required": True},
            {"name": "args", "type": "array", "description": "arguments"}]
    added = colony.client.add_function(colony.name, name, "test-executor", "execute", prvkey,
                                       description="Runs a container", args=args)
    [listed] = colony.client.get_functions(colony.name, name, prvkey)
    assert listed.description == "Runs a container" and listed.args == args
    # Re-registering with other documentation: remove, then add (addfunctionmsg alone adds a second row).
    colony.client.remove_function(added.functionid, prvkey)
    colony.client.add_function(colony.name, name, "test-executor", "execute", prvkey, description="Runs it")
    assert [(f.funcname, f.description) for f in colony.client.get_functions(colony.name, name, prvkey)] == \
        [("execute", "Runs it")]


def test_the_executor_log_is_readable_by_colony_members(colony):
    name, prvkey = colony.new_executor()
    colony.client.add_executor_log(colony.name, name, "refused process 1234: no GPU model x\n", prvkey)
    colony.client.add_executor_log(colony.name, name, "a NUL \x00 here\n", prvkey)
    entries = colony.client.get_executor_logs(colony.name, name, colony.user_prvkey)
    assert [e.message for e in entries] == ["refused process 1234: no GPU model x\n", "a NUL \u2400 here\n"]
    assert all(e.processid == "" for e in entries)
    assert colony.client.get_executor_logs(colony.name, name, colony.user_prvkey, since=entries[0].timestamp)[0] \
        .message.startswith("a NUL")


def test_paused_assignments_answer_408_with_a_timeout_and_503_without(colony):
    from colonies_operator.colonies import AssignmentsPaused

    _, prvkey = colony.new_executor()
    colony.client.submit(spec_for(colony), colony.user_prvkey)
    colony.client.pause_assignments(colony.name, colony.colony_prvkey)
    try:
        assert colony.client.assignments_paused(colony.name, colony.user_prvkey)
        with pytest.raises(AssignmentsPaused) as no_timeout:
            colony.client.assign(colony.name, -1, prvkey)
        assert no_timeout.value.status == 503
        with pytest.raises(AssignmentsPaused) as with_timeout:
            colony.client.assign(colony.name, 1, prvkey)
        assert with_timeout.value.status == 408
    finally:
        colony.client.resume_assignments(colony.name, colony.colony_prvkey)
    assert not colony.client.assignments_paused(colony.name, colony.user_prvkey)
    assert colony.client.assign(colony.name, 5, prvkey) is not None


def test_a_workflow_child_gets_its_parents_outputs_as_its_input(colony):
    _, prvkey = colony.new_executor()
    specs = [spec_for(colony, nodename="first"), spec_for(colony, nodename="second")]
    specs.append(spec_for(colony, nodename="last", conditions=Conditions(
        colonyname=colony.name, executortype="test-executor", dependencies=["first", "second"])))
    graph = colony.client.submit_workflow(colony.name, specs, colony.user_prvkey)
    assert len(graph.processids) == 3 and len(graph.rootprocessids) == 2
    outputs = {}
    for _ in range(2):
        process = colony.client.assign(colony.name, 5, prvkey)
        assert process.spec.nodename in ("first", "second") and process.inputs == []
        outputs[process.processid] = [process.spec.nodename, 1]
        colony.client.close_successful(process.processid, prvkey, output=outputs[process.processid])
    child = colony.client.assign(colony.name, 10, prvkey)
    assert child.spec.nodename == "last" and child.processgraphid == graph.processgraphid
    assert sorted(child.parents) == sorted(outputs)
    assert child.inputs == [value for parent in child.parents for value in outputs[parent]]
    read_back = colony.client.get_process_graph(graph.processgraphid, colony.user_prvkey)
    assert sorted(read_back.processids) == sorted(graph.processids)


def test_a_workflow_spec_without_nodenames_is_refused_before_sending(colony):
    with pytest.raises(ValueError, match="nodename"):
        colony.client.submit_workflow(colony.name, [spec_for(colony)], colony.user_prvkey)


def test_fs_in_a_spec_survives_the_server_and_is_detected(colony):
    fs = {"mount": "/cfs", "snapshots": [{"snapshotid": "", "label": "data", "dir": "/data", "keepfiles": False,
                                           "keepsnapshot": False}], "dirs": []}
    process = colony.client.submit(spec_for(colony, fs=fs), colony.user_prvkey)
    assert process.spec.uses_fs and process.spec.fs["snapshots"][0]["label"] == "data"
    plain = colony.client.get_process(colony.client.submit(spec_for(colony), colony.user_prvkey).processid,
                                      colony.user_prvkey)
    assert not plain.spec.uses_fs


def test_the_execute_documentation_reads_back_as_up_to_date(colony):
    from colonies_operator.core.functions import function_doc, sync_plan

    name, prvkey = colony.new_executor()
    doc = function_doc("execute")
    colony.client.add_function(colony.name, name, "test-executor", doc.funcname, prvkey, description=doc.description,
                               args=doc.args)
    assert sync_plan(colony.client.get_functions(colony.name, name, prvkey), ["execute"], "test-executor").empty
