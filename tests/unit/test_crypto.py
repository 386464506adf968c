"""The crypto against the protocol's published vectors, and against pycolonies' independent signer."""

import base64
import importlib
import json
import random

import pytest

from colonies_operator.colonies import crypto

PRVKEY = "ddf7f7791208083b6a9ed975a72684f6406a269cfa36f1b1c32045c0a71fff05"
ID = "3fc05cf3df4b494e95d6a3d297a34f19938f7daa7422ab0d4f794454133341ac"
TV1_JSON = '{"colonyname":"dev","timeout":10,"availablecpu":"","availablemem":"","msgtype":"assignprocessmsg"}'
TV1_B64 = ("eyJjb2xvbnluYW1lIjoiZGV2IiwidGltZW91dCI6MTAsImF2YWlsYWJsZWNwdSI6IiIsImF2YWlsYWJsZW1lbSI6IiIsIm1zZ3R5cGUiOiJh"
           "c3NpZ25wcm9jZXNzbXNnIn0=")
TV1_SIG = ("2a721e71e0ce37be7bbbb2aeba5668bcecf4341c9a50913ae92816a796ad98d0644c6896c5ac1904a044c45356ea502a1296eb52bbe4f"
           "28d58924118851539c101")
TV2_B64 = "eyJtc2d0eXBlIjoiZ2V0Y29sb255bXNnIiwiY29sb255bmFtZSI6ImRldiJ9"
TV2_SIG = ("193fb6421a7c6ea383f3b483b9ac013de116e64e98aff28f7afecd4faf3908b72e1706d7d2c3a5ecebd366b3d093e1612a88459033df"
           "a8f56a360e5f461b720f00")
SIG_EMPTY = ("5ae435df7a32f445244ea068c06d946b7036039f1cc2626dafaced7456eca0ca4eb15e0712203cc0a82db459812463cc11d28d6cf"
             "05c8b6283fc790d4b8f64d001")
SIG_HELLO = ("887d6a2291487951e99ea07c3a15a37e29971856c85ff732d8d6cd087c525a5a1019ef841dc4880f8a592e5d45cbddfcd94b3ca2c"
             "9651b4c990f2b959793adc701")


def test_id_of_the_published_key():
    assert crypto.prvkey_to_id(PRVKEY) == ID


def test_known_colony_and_server_ids_are_64_hex():
    key = crypto.generate_prvkey()
    ident = crypto.prvkey_to_id(key)
    assert len(key) == 64 and len(ident) == 64
    int(key, 16), int(ident, 16)


@pytest.mark.parametrize(
    "message, signature",
    [(TV1_B64, TV1_SIG), (TV2_B64, TV2_SIG), ("", SIG_EMPTY), ("hello", SIG_HELLO)],
    ids=["TV-1 assign", "TV-2 getcolony", "empty", "hello"],
)
def test_published_signatures(message, signature):
    assert crypto.sign(message, PRVKEY) == signature
    assert crypto.recover_id(message, signature) == ID


def test_tv1_payload_is_the_standard_base64_of_the_json():
    assert base64.b64encode(TV1_JSON.encode()).decode() == TV1_B64
    assert json.loads(base64.b64decode(TV2_B64))["msgtype"] == "getcolonymsg"


def test_recover_accepts_the_v_plus_4_variant_the_server_accepts():
    variant = TV1_SIG[:-2] + "05"
    assert crypto.recover_id(TV1_B64, variant) == ID


def test_signatures_are_low_s():
    half_order = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141 // 2
    for i in range(200):
        signature = crypto.sign(f"message {i}", crypto.generate_prvkey())
        assert int(signature[64:128], 16) <= half_order


def test_bad_keys_are_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="64 hex"):
        crypto.prvkey_to_id("abc")
    with pytest.raises(ValueError, match="64 hex"):
        crypto.sign("x", "zz" * 32)


def test_agrees_with_pycolonies_on_random_keys_and_messages():
    pycolonies_crypto = importlib.import_module("crypto")  # pycolonies, a test dependency, installs it top-level
    rng = random.Random(20261125)
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789+/=åäö{}\":, \n"
    for _ in range(150):
        # Half the keys come from pycolonies' own generator, half from ours.
        prvkey = pycolonies_crypto.genkey() if rng.random() < 0.5 else crypto.generate_prvkey()
        assert crypto.prvkey_to_id(prvkey) == pycolonies_crypto.get_id(prvkey)
        for _ in range(2):
            message = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 300)))
            ours = crypto.sign(message, prvkey)
            assert ours == pycolonies_crypto.sign(message, prvkey)
            assert crypto.recover_id(message, ours) == crypto.prvkey_to_id(prvkey)
