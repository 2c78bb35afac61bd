"""Webhook signature and token checks for GitHub and Grafana."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.web.signatures import (
    sign_github,
    sign_grafana,
    verify_bearer,
    verify_github,
    verify_grafana_hmac,
)

BODY = b'{"action": "completed"}'


def test_github_documented_test_vector() -> None:
    # From GitHub's "Validating webhook deliveries" documentation.
    secret = "It's a Secret to Everybody"
    header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert sign_github(secret, b"Hello, World!") == header
    assert verify_github(secret, b"Hello, World!", header)
    # Hex case does not matter; the secret may be given as bytes.
    upper = "sha256=" + header.removeprefix("sha256=").upper()
    assert verify_github(secret.encode(), b"Hello, World!", upper)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha256=",
        "sha1=" + "0" * 40,
        "deadbeef",
        "sha256=not-hex-at-all",
        "sha256=ünïcode",
        sign_github("other secret", BODY),
        sign_github("secret", BODY + b" "),
    ],
)
def test_github_rejects_missing_garbled_or_wrong_signatures(header: str | None) -> None:
    assert not verify_github("secret", BODY, header)


def test_github_empty_secret_never_verifies() -> None:
    assert not verify_github("", BODY, sign_github("", BODY))
    assert not verify_github(b"", BODY, sign_github(b"", BODY))


@given(secret=st.binary(min_size=1), body=st.binary(), flip=st.integers(0, 63))
def test_github_roundtrip_and_any_changed_digit_fails(
    secret: bytes, body: bytes, flip: int
) -> None:
    header = sign_github(secret, body)
    assert verify_github(secret, body, header)
    digits = list(header.removeprefix("sha256="))
    digits[flip] = "0" if digits[flip] != "0" else "1"
    assert not verify_github(secret, body, "sha256=" + "".join(digits))


def test_grafana_signature_without_timestamp_is_hmac_of_body() -> None:
    expected = hmac.new(b"s3cret", BODY, hashlib.sha256).hexdigest()
    assert sign_grafana("s3cret", BODY) == expected
    assert verify_grafana_hmac("s3cret", BODY, expected)
    assert not verify_grafana_hmac("s3cret", BODY + b"x", expected)
    assert not verify_grafana_hmac("wrong", BODY, expected)


def test_grafana_signature_with_timestamp_covers_timestamp_and_body() -> None:
    ts = "1733765340"
    expected = hmac.new(b"s3cret", f"{ts}:".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign_grafana("s3cret", BODY, ts) == expected
    assert verify_grafana_hmac("s3cret", BODY, expected, timestamp_header=ts)
    # A replayed body with another timestamp, or without one, does not verify.
    assert not verify_grafana_hmac("s3cret", BODY, expected, timestamp_header="1733765341")
    assert not verify_grafana_hmac("s3cret", BODY, expected)


@pytest.mark.parametrize("header", [None, "", "zz", "ünïcode"])
def test_grafana_rejects_missing_or_garbled(header: str | None) -> None:
    assert not verify_grafana_hmac("s3cret", BODY, header)


def test_grafana_empty_secret_never_verifies() -> None:
    assert not verify_grafana_hmac("", BODY, sign_grafana("", BODY))


@pytest.mark.parametrize(
    ("authorization", "token_header", "ok"),
    [
        ("Bearer tok-123", None, True),
        ("bearer tok-123", None, True),
        (None, "tok-123", True),
        ("Bearer wrong", "tok-123", True),
        ("Bearer tok-123", "wrong", True),
        ("Basic tok-123", None, False),
        ("tok-123", None, False),
        ("Bearer ", None, False),
        ("Bearer tok-12", None, False),
        (None, "tok-1234", False),
        (None, None, False),
        ("Bearer tök", "ünï", False),
    ],
)
def test_bearer(authorization: str | None, token_header: str | None, ok: bool) -> None:
    assert verify_bearer("tok-123", authorization, token_header) is ok


def test_bearer_empty_expected_never_verifies() -> None:
    assert not verify_bearer("", "Bearer ", "")
    assert not verify_bearer("", None, None)
