"""API key and ``datarobot-key`` checks.

DataRobot clients authenticate in three ways that all still occur in the wild:
``Authorization: Bearer <key>`` (current), ``Token <key>`` (old SDKs) and HTTP
Basic ``user:key`` (datarobot-batch-scoring).  All three are accepted; the key is
compared in constant time against every configured key.  A server with no keys
configured is open, which is why ``serve`` binds loopback by default.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping, Sequence

from tsengine.errors import AuthenticationError

__all__ = ["check_credentials", "token_from_authorization"]

INVALID_TOKEN = "Invalid API token"
MISSING_DATAROBOT_KEY = "The datarobot-key header is missing"
INVALID_DATAROBOT_KEY = "The datarobot-key header is invalid: it does not match this server's key"


def token_from_authorization(header: str | None) -> list[str]:
    """Candidate API keys carried by an ``Authorization`` header.

    Basic credentials yield both the password and the user name, because clients
    disagree on which half carries the key (``user:key`` versus ``key:``).

    Args:
        header: the raw header value, or None when absent.

    Returns:
        The candidate keys, empty when the header is absent or unreadable.
    """
    if not header:
        return []
    scheme, _, credentials = header.strip().partition(" ")
    credentials = credentials.strip()
    scheme = scheme.lower()
    if scheme in {"bearer", "token"}:
        return [credentials] if credentials else []
    if scheme == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return []
        user, _, password = decoded.partition(":")
        return [key for key in (password, user) if key]
    return []


def _matches(candidate: str, accepted: Sequence[str]) -> bool:
    # Compare against every key without short-circuiting, so timing does not
    # reveal which key (or how much of one) matched.
    found = False
    for key in accepted:
        found |= hmac.compare_digest(candidate.encode("utf-8"), key.encode("utf-8"))
    return found


def check_credentials(
    headers: Mapping[str, str],
    *,
    api_keys: Sequence[str],
    datarobot_key: str | None,
) -> None:
    """Reject a request whose credentials do not match the server's.

    Args:
        headers: request headers (case-insensitive mapping).
        api_keys: accepted keys; empty means no API key is required.
        datarobot_key: required ``datarobot-key`` value, or None to skip that check.

    Raises:
        AuthenticationError: with DataRobot's messages, so clients that match on
            them keep working.
    """
    if api_keys:
        candidates = token_from_authorization(headers.get("authorization"))
        if not any(_matches(candidate, api_keys) for candidate in candidates):
            raise AuthenticationError(INVALID_TOKEN)
    if datarobot_key is not None:
        given = headers.get("datarobot-key")
        if given is None:
            raise AuthenticationError(MISSING_DATAROBOT_KEY)
        if not hmac.compare_digest(given.encode("utf-8"), datarobot_key.encode("utf-8")):
            raise AuthenticationError(INVALID_DATAROBOT_KEY)
