"""The documented functions the executor registers, and idempotent re-registration."""

from colonies_operator.colonies import Function
from colonies_operator.core.functions import EXECUTE_ARGS, function_doc, sync_plan


def registered(functionid, funcname="execute", executortype="container-executor", current=True):
    doc = function_doc(funcname)
    return Function(functionid=functionid, funcname=funcname, executortype=executortype,
                    description=doc.description if current else "", args=[dict(a) for a in doc.args] if current else [])


def test_execute_documents_every_kwarg_it_reads():
    doc = function_doc("execute")
    names = {a["name"]: a for a in doc.args}
    assert list(names) == ["docker-image", "cmd", "args", "init-cmd", "rebuild-image", "debug"]
    assert [n for n, a in names.items() if a.get("required")] == ["docker-image", "cmd"]
    assert all(a["type"] in ("string", "array", "boolean") and a["description"] for a in EXECUTE_ARGS)
    assert "COLONIES_PROCESS_INPUT" in doc.description and "/dev/termination-log" in doc.description


def test_nothing_registered_adds_each_function_once():
    plan = sync_plan([], ["execute", "run"], "container-executor")
    assert plan.remove == () and [d.funcname for d in plan.add] == ["execute", "run"]


def test_an_up_to_date_registration_is_left_alone():
    assert sync_plan([registered("f1")], ["execute"], "container-executor").empty


def test_stale_documentation_duplicates_other_types_and_dropped_functions_are_replaced_or_removed():
    existing = [registered("old", current=False), registered("ok"), registered("dup"),
                registered("gone", funcname="sync"), registered("other-type", executortype="kubeexecutor")]
    plan = sync_plan(existing, ["execute"], "container-executor")
    assert set(plan.remove) == {"old", "dup", "gone", "other-type"} and plan.add == ()
    plan = sync_plan([registered("old", current=False)], ["execute"], "container-executor")
    assert plan.remove == ("old",) and [d.funcname for d in plan.add] == ["execute"]
