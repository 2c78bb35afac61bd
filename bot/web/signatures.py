"""Request authentication: GitHub, Grafana and Slack HMAC signatures and shared bearer tokens.

Every comparison is constant-time, and every malformed input is a plain ``False``:
a caller answering 401 needs no detail, and an attacker gets none.
"""

from __future__ import annotations

import hashlib
import hmac

GITHUB_SIGNATURE_HEADER = "X-Hub-Signature-256"
GRAFANA_SIGNATURE_HEADER = "X-Grafana-Alerting-Signature"
GRAFANA_TOKEN_HEADER = "X-Grafana-Token"
SLACK_SIGNATURE_HEADER = "X-Slack-Signature"
SLACK_TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
SLACK_MAX_AGE_S = 300  # Slack's rule: refuse requests signed more than five minutes away
_GITHUB_PREFIX = "sha256="


def _as_bytes(value: bytes | str) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def _hmac_hex(secret: bytes | str, message: bytes) -> str:
    return hmac.new(_as_bytes(secret), message, hashlib.sha256).hexdigest()


def _same_text(expected: str, given: str) -> bool:
    """Constant-time equality that also accepts non-ASCII input (it just never matches)."""
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8"))


def sign_github(secret: bytes | str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub would send for ``body``."""
    return _GITHUB_PREFIX + _hmac_hex(secret, body)


def verify_github(secret: bytes | str, body: bytes, header: str | None) -> bool:
    """Check ``X-Hub-Signature-256: sha256=<hex>`` against the raw request body.

    An empty secret never verifies: a misconfigured bot must reject everything
    rather than accept anything signed with the empty key.
    """
    if not secret or not header:
        return False
    prefix, _, digest = header.strip().partition("=")
    if prefix.lower() != "sha256" or not digest:
        return False
    return _same_text(_hmac_hex(secret, body), digest.lower())


def _grafana_message(body: bytes, timestamp: str | None) -> bytes:
    # Grafana signs "<timestamp>:<body>" when its contact point has a timestamp header set.
    return body if timestamp is None else f"{timestamp}:".encode() + body


def sign_grafana(secret: bytes | str, body: bytes, timestamp: str | None = None) -> str:
    """The ``X-Grafana-Alerting-Signature`` value Grafana would send for ``body``."""
    return _hmac_hex(secret, _grafana_message(body, timestamp))


def verify_grafana_hmac(
    secret: bytes | str, body: bytes, header: str | None, timestamp_header: str | None = None
) -> bool:
    """Check Grafana's hex HMAC-SHA256, over ``body`` or ``"{timestamp}:" + body``.

    ``timestamp_header`` is the value of the timestamp header Grafana was configured
    to send (if any). Rejecting stale timestamps is the caller's policy, not done here.
    """
    if not secret or not header:
        return False
    return _same_text(sign_grafana(secret, body, timestamp_header), header.strip().lower())


def verify_bearer(
    expected: str, authorization_header: str | None, token_header: str | None
) -> bool:
    """Check a shared token sent as ``Authorization: Bearer X`` or ``X-Grafana-Token: X``.

    Both candidates are always compared, so timing does not reveal which header was
    present or how much of a token matched. An empty expected token never verifies.
    """
    if not expected:
        return False
    candidates: list[str] = []
    if authorization_header:
        scheme, _, token = authorization_header.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            candidates.append(token.strip())
    if token_header and token_header.strip():
        candidates.append(token_header.strip())
    matched = False
    for candidate in candidates:
        matched |= _same_text(expected, candidate)
    return matched


def sign_slack(secret: bytes | str, body: bytes, timestamp: str) -> str:
    """The ``X-Slack-Signature`` value Slack would send: ``v0=`` HMAC of ``v0:{ts}:{body}``."""
    return "v0=" + _hmac_hex(secret, b"v0:" + timestamp.encode("ascii") + b":" + body)


def verify_slack(secret: bytes | str, body: bytes, timestamp: str | None,
                 signature: str | None, now: float) -> bool:
    """Check a Slack request's signature over the raw body, and that it is fresh.

    Any malformed header (a timestamp that is not a whole number, a non-ASCII
    signature) is a plain ``False``, where Slack's own verifier would raise.
    """
    if not secret or not timestamp or not signature:
        return False
    stamp = timestamp.strip()
    if not (stamp.isascii() and stamp.isdigit()) or abs(now - int(stamp)) > SLACK_MAX_AGE_S:
        return False
    return _same_text(sign_slack(secret, body, stamp), signature.strip())
