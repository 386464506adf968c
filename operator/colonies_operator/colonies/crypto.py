"""Colonies keys, identities and signatures (secp256k1 + SHA3-256), as the Go server computes them.

A private key is 64 hex characters. An identity (executor, user, colony or server id) is the SHA3-256 of
the lowercase hex text of the uncompressed public key. A signature is r || s || v (65 bytes, 130 hex
characters, low-S, v in {0, 1}) over the SHA3-256 of the message text, which for an RPC is the base64
payload string itself, not the JSON it encodes.
"""

from __future__ import annotations

import hashlib
import secrets

import coincurve

_CURVE_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def generate_prvkey() -> str:
    """A fresh random private key as 64 lowercase hex characters."""
    while True:
        scalar = secrets.randbits(256)
        if 0 < scalar < _CURVE_ORDER:
            return f"{scalar:064x}"


def _private_key(prvkey: str) -> coincurve.PrivateKey:
    if len(prvkey) != 64:
        raise ValueError("a Colonies private key is 64 hex characters")
    try:
        return coincurve.PrivateKey(bytes.fromhex(prvkey))
    except ValueError as err:
        raise ValueError("a Colonies private key is 64 hex characters of a valid secp256k1 scalar") from err


def _id_of_public_key(public_key: coincurve.PublicKey) -> str:
    return hashlib.sha3_256(public_key.format(compressed=False).hex().encode("ascii")).hexdigest()


def prvkey_to_id(prvkey: str) -> str:
    """The Colonies identity (64 hex characters) of a private key."""
    return _id_of_public_key(_private_key(prvkey).public_key)


def _digest(message: str) -> bytes:
    return hashlib.sha3_256(message.encode("utf-8")).digest()


def sign(message: str, prvkey: str) -> str:
    """Signs the SHA3-256 of `message`; returns r || s || v as 130 lowercase hex characters."""
    return _private_key(prvkey).sign_recoverable(_digest(message), hasher=None).hex()


def recover_id(message: str, signature: str) -> str:
    """The identity of whoever signed `message`, as the server recovers it."""
    raw = bytearray(bytes.fromhex(signature))
    if len(raw) != 65:
        raise ValueError("a Colonies signature is 65 bytes (130 hex characters)")
    # The server also accepts btcec's "compressed" header variant v+4 for the same key.
    if raw[64] in (4, 5):
        raw[64] -= 4
    if raw[64] not in (0, 1):
        raise ValueError("the recovery id of a Colonies signature is 0 or 1")
    public_key = coincurve.PublicKey.from_signature_and_message(bytes(raw), _digest(message), hasher=None)
    return _id_of_public_key(public_key)
