"""Capability tokens, their digests, PIN digests and the node secret on disk."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from pathlib import Path

import pytest

from confnode.security import capability
from confnode.security.capability import (
    PinHasher,
    digests_equal,
    load_or_create_node_secret,
    new_numeric_alias,
    new_pin,
    new_token,
    token_digest,
)

URLSAFE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
PEPPER = bytes(range(32))


def test_a_128_bit_token_is_22_base64url_characters_without_padding() -> None:
    token = new_token()
    assert len(token) == 22
    assert set(token) <= URLSAFE
    assert len(base64.urlsafe_b64decode(token + "==")) == 16


@pytest.mark.parametrize(("bits", "length", "raw_bytes"), [(128, 22, 16), (192, 32, 24),
                                                           (256, 43, 32), (130, 23, 17)])
def test_token_length_follows_the_requested_entropy(bits: int, length: int,
                                                    raw_bytes: int) -> None:
    token = new_token(bits)
    assert len(token) == length
    assert len(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))) == raw_bytes


def test_fewer_than_128_bits_are_refused() -> None:
    with pytest.raises(ValueError, match="128"):
        new_token(127)
    with pytest.raises(ValueError):
        new_token(64)


def test_tokens_do_not_repeat_and_use_the_whole_alphabet() -> None:
    tokens = {new_token() for _ in range(2000)}
    assert len(tokens) == 2000
    # 44,000 characters from a 64-symbol alphabet: every symbol shows up unless biased.
    assert set("".join(tokens)) == URLSAFE


def test_token_digest_is_hex_sha256() -> None:
    assert token_digest("abc") == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    token = new_token()
    assert token_digest(token) == token_digest(token)
    assert token_digest(token) == hashlib.sha256(token.encode()).hexdigest()
    assert token_digest(token) != token_digest(token + "x")


def test_digests_equal() -> None:
    assert digests_equal("ab12", "ab12") is True
    assert digests_equal("ab12", "ab13") is False
    assert digests_equal("ab12", "ab1") is False
    # A client can send anything; non-ASCII must compare, not raise.
    assert digests_equal("æøå", "ab12") is False


def test_pin_digest_is_a_keyed_hmac_and_stable_across_versions() -> None:
    # A known answer: changing the derivation would silently invalidate every stored digest.
    assert PinHasher(PEPPER).digest("1234") == (
        "fc72ad08117e4105ae7bc007d7586da82c14ea007fdbf43469181be0531159e1")


def test_pin_digest_depends_on_pin_and_pepper_and_is_no_plain_hash() -> None:
    hasher = PinHasher(PEPPER)
    digest = hasher.digest("123456")
    assert digest == PinHasher(PEPPER).digest("123456")
    assert len(digest) == 64 and set(digest) <= set("0123456789abcdef")
    assert digest != hasher.digest("123457")
    assert digest != PinHasher(bytes(32)).digest("123456")
    assert digest != hashlib.sha256(b"123456").hexdigest()
    assert hasher.digest("0012") != hasher.digest("012")  # leading zeros are significant


def test_pin_matches() -> None:
    hasher = PinHasher(PEPPER)
    stored = hasher.digest("4711")
    assert hasher.matches("4711", stored) is True
    assert hasher.matches("4712", stored) is False
    assert hasher.matches("4711", stored.upper()) is False
    assert PinHasher(bytes(32)).matches("4711", stored) is False


def test_pin_hasher_refuses_a_short_pepper_and_hides_it() -> None:
    with pytest.raises(ValueError):
        PinHasher(b"short")
    assert PEPPER.hex() not in repr(PinHasher(PEPPER))
    assert "hidden" in repr(PinHasher(PEPPER))


def test_numeric_alias_has_the_digits_asked_for_and_no_leading_zero() -> None:
    aliases = [new_numeric_alias() for _ in range(1000)]
    assert all(len(a) == 10 and a.isdigit() and a[0] != "0" for a in aliases)
    assert {a[0] for a in aliases} == set("123456789")
    assert {a[-1] for a in aliases} == set("0123456789")
    assert len(new_numeric_alias(4)) == 4
    assert new_numeric_alias(1) in set("123456789")
    with pytest.raises(ValueError):
        new_numeric_alias(0)


def test_pin_has_the_length_asked_for_and_may_start_with_zero() -> None:
    pins = [new_pin(4) for _ in range(2000)]
    assert all(len(p) == 4 and p.isdigit() for p in pins)
    assert {p[0] for p in pins} == set("0123456789")
    assert len(new_pin(20)) == 20


@pytest.mark.parametrize("length", [0, 3, 21])
def test_pin_length_outside_pexip_range_is_refused(length: int) -> None:
    with pytest.raises(ValueError):
        new_pin(length)


def test_node_secret_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "state" / "node.secret"
    first = load_or_create_node_secret(path)
    assert len(first) == 32
    assert path.read_bytes() == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_node_secret(path) == first
    # Only the secret is left behind: no temporary files.
    assert [p.name for p in path.parent.iterdir()] == ["node.secret"]


def test_node_secret_is_0600_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        load_or_create_node_secret(tmp_path / "node.secret")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "node.secret").stat().st_mode) == 0o600


def test_two_nodes_get_different_secrets(tmp_path: Path) -> None:
    assert (load_or_create_node_secret(tmp_path / "a")
            != load_or_create_node_secret(tmp_path / "b"))


def test_a_damaged_secret_is_an_error_not_silently_replaced(tmp_path: Path) -> None:
    path = tmp_path / "node.secret"
    path.write_bytes(b"too short")
    with pytest.raises(ValueError, match="9 bytes"):
        load_or_create_node_secret(path)
    assert path.read_bytes() == b"too short"


def test_losing_the_creation_race_uses_the_winners_secret(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "node.secret"
    winner = bytes([7]) * 32
    real_link = os.link

    def link_after_another_process(source: os.PathLike[str], target: os.PathLike[str]) -> None:
        Path(target).write_bytes(winner)
        real_link(source, target)  # raises FileExistsError, as it would in the real race

    monkeypatch.setattr(capability.os, "link", link_after_another_process)
    assert load_or_create_node_secret(path) == winner
    assert path.read_bytes() == winner
    assert [p.name for p in tmp_path.iterdir()] == ["node.secret"]
