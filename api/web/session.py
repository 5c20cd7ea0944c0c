"""Who may read the pages: the API's own keys, by header or by a login cookie.

A browser cannot send ``Authorization: Bearer`` on a link, so the login form
trades a key the API accepts for a session cookie.  The cookie holds no key:
it is ``<issued>.<hmac>``, signed with the key itself (and the datarobot-key
when the server requires one), so

* it is checked against the configured keys alone (several worker processes
  need no shared secret);
* removing or changing a key ends every session it opened;
* it expires after :data:`SESSION_SECONDS`.

It is ``HttpOnly`` and ``SameSite=Strict``: scripts cannot read it and other
sites cannot make the browser send it, which is the page's CSRF protection.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence

from api.auth import INVALID_TOKEN, check_credentials
from tsengine.errors import AuthenticationError

__all__ = ["COOKIE", "SESSION_SECONDS", "issue", "pages_open", "valid", "verify_login"]

COOKIE = "tsengine_session"
SESSION_SECONDS = 12 * 3600


def pages_open(api_keys: Sequence[str], datarobot_key: str | None) -> bool:
    """No key configured: the API is open, and so are the pages."""
    return not api_keys and datarobot_key is None


def _sign(key: str, datarobot_key: str | None, issued: int) -> str:
    secret = f"{key}\0{datarobot_key or ''}".encode()
    return hmac.new(secret, f"tsengine-ui|{issued}".encode(), hashlib.sha256).hexdigest()


def issue(key: str, datarobot_key: str | None, *, now: float | None = None) -> str:
    """A session token for a key the server accepted."""
    issued = int(now if now is not None else time.time())
    return f"{issued}.{_sign(key, datarobot_key, issued)}"


def valid(
    token: str | None, api_keys: Sequence[str], datarobot_key: str | None, *, now: float | None = None
) -> bool:
    """Whether a cookie was issued for a key still configured, and is not expired."""
    if not token or "." not in token:
        return False
    issued_text, _, signature = token.partition(".")
    if not issued_text.isdigit():
        return False
    issued = int(issued_text)
    age = (now if now is not None else time.time()) - issued
    if not 0 <= age <= SESSION_SECONDS:
        return False
    found = False
    for key in api_keys or [""]:
        found |= hmac.compare_digest(signature, _sign(key, datarobot_key, issued))
    return found


def verify_login(
    api_key: str, given_datarobot_key: str, *, api_keys: Sequence[str], datarobot_key: str | None
) -> str:
    """The key to sign a session with, after the API's own credential check.

    Raises:
        AuthenticationError: with the API's message for the same credentials.
    """
    headers: Mapping[str, str] = {"authorization": f"Bearer {api_key}"} if api_key else {}
    if datarobot_key is not None:
        headers = {**headers, "datarobot-key": given_datarobot_key}
    check_credentials(headers, api_keys=api_keys, datarobot_key=datarobot_key)
    if not api_keys:
        return ""
    if not api_key:
        raise AuthenticationError(INVALID_TOKEN)
    return api_key
