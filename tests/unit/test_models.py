"""Typed models keep what they do not know, and read the server's JSON as it is."""

import json

from colonies_operator.colonies import FunctionSpec, Process


def test_unknown_fields_survive_a_round_trip():
    raw = {"processid": "p", "state": 1, "futurefield": {"x": [1, 2]}, "in": [1], "out": ["o"],
           "spec": {"funcname": "execute", "newspecfield": True,
                    "conditions": {"cpu": "500m", "gpu": {"count": 1, "newgpufield": "x"}, "futurecond": 7}},
           "starttime": "2026-11-25T00:36:42.069097307Z", "endtime": "0001-01-01T00:00:00Z"}
    process = Process.from_dict(json.loads(json.dumps(raw)))
    assert process.inputs == [1] and process.output == ["o"]
    assert process.spec.conditions.gpu.count == 1
    assert process.starttime.microsecond == 69097 and process.endtime is None
    back = process.to_dict()
    assert back["futurefield"] == {"x": [1, 2]}
    assert back["spec"]["newspecfield"] is True
    assert back["spec"]["conditions"]["futurecond"] == 7
    assert back["spec"]["conditions"]["gpu"]["newgpufield"] == "x"
    assert back["in"] == [1] and back["out"] == ["o"]


def test_null_lists_from_the_server_become_empty_lists():
    process = Process.from_dict({"processid": "p", "errors": None, "attributes": None, "spec": None})
    assert process.errors == [] and process.attributes == [] and process.spec.funcname == ""


def test_a_new_function_spec_never_means_maxexectime_zero():
    assert FunctionSpec().maxexectime == -1
    assert FunctionSpec.from_dict({"funcname": "execute"}).to_dict()["maxexectime"] == -1
