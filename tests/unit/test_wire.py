"""The wire codec: what every Colonies client sends, and how replies and their errors are read."""

from __future__ import annotations

import base64
import json

import pytest

from colonies_operator.colonies import Forbidden, InvalidRequest, ServerError, crypto
from colonies_operator.colonies.wire import (
    MAX_LOGS_PER_READ,
    add_log_payload,
    assign_payload,
    bounded_errors,
    decode_reply,
    encode_request,
    logs_payload,
)

KEY = "fcc79953d8a751bf41db661592dc34d30004b1a651ffa0725b03ac227641499d"


def reply(payload, *, error: bool = False) -> str:
    encoded = base64.b64encode(json.dumps(payload).encode()).decode()
    return json.dumps({"payloadtype": "x", "payload": encoded, "error": error})


def test_a_request_is_the_signed_base64_of_its_payload_with_its_type():
    body = json.loads(encode_request("getprocessmsg", {"processid": "p"}, KEY))
    assert body["payloadtype"] == "getprocessmsg"
    assert json.loads(base64.b64decode(body["payload"])) == {"processid": "p", "msgtype": "getprocessmsg"}
    assert crypto.recover_id(body["payload"], body["signature"]) == crypto.prvkey_to_id(KEY)


def test_an_unsigned_request_has_an_empty_signature():
    assert json.loads(encode_request("versionmsg", {}, ""))["signature"] == ""


def test_a_reply_gives_its_payload():
    assert decode_reply(200, reply({"processid": "p"}), "getprocessmsg") == {"processid": "p"}


@pytest.mark.parametrize("status, error", [(400, InvalidRequest), (403, Forbidden), (500, ServerError)])
def test_an_error_reply_raises_the_typed_error_with_the_servers_message(status, error):
    with pytest.raises(error, match="process is not running"):
        decode_reply(status, reply({"status": status, "message": "process is not running"}, error=True), "addlogmsg")


def test_two_error_objects_back_to_back_are_read_as_the_first():
    text = reply({"status": 403, "message": "first"}, error=True) + reply({"status": 500, "message": "x"}, error=True)
    with pytest.raises(Forbidden, match="first"):
        decode_reply(403, text, "addlogmsg")


def test_an_unreadable_reply_says_what_came_back():
    with pytest.raises(ServerError, match="unreadable reply: <html>"):
        decode_reply(502, "<html>bad gateway</html>", "assignprocessmsg")


def test_assign_refuses_a_zero_timeout_which_the_server_refuses():
    with pytest.raises(ValueError, match="timeout 0"):
        assign_payload("dev", 0)
    assert assign_payload("dev", -1, available_cpu="-1m")["availablecpu"] == "-1m"


def test_a_log_read_asks_for_no_more_than_the_server_gives():
    assert logs_payload("dev", "p", count=10_000)["count"] == MAX_LOGS_PER_READ


def test_a_log_line_with_nul_bytes_is_stored_with_a_visible_stand_in():
    assert add_log_payload("p", "a\x00b\n")["message"] == "a\u2400b\n"


def test_errors_stored_in_colonies_are_clean_and_capped():
    errors = bounded_errors(["exit 1", "last lines of the log:\n" + "x\x00y" * 5000] + ["e" * 3000] * 20)
    assert errors[0] == "exit 1"
    assert all("\x00" not in e for e in errors)
    assert all(len(e.encode()) <= 4096 + 20 for e in errors)
    assert sum(len(e) for e in errors) <= 16 * 1024
