"""A subscriber's signing secret, and the headers that sign one delivery (Standard Webhooks).

The secret must be kept, not only its hash as for API tokens: an API token
is checked when it is shown to the service, so a hash is enough to compare
it, but a signature is made by the service (HMAC-SHA256 of the message with
the secret itself), so the service needs the secret every time it sends. It
is kept sealed (Fernet: AES with an HMAC) under a key derived from
SECRET_KEY: a copy of the database alone does not give it away, and a
SECRET_KEY changed without the database makes the old secrets unreadable
(the subscriber is created again; `flask events subscribe` says so).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import datetime

from cryptography.fernet import Fernet, InvalidToken
from standardwebhooks import Webhook

# Standard Webhooks' secrets are base64 with this prefix; 32 random bytes (the specification asks 24 to 64).
SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


class SecretUnreadable(Exception):
    """A sealed secret that the current SECRET_KEY cannot open."""


def new_secret() -> str:
    """A fresh signing secret, as Standard Webhooks' libraries read it (whsec_ and base64)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _key(secret_key: str) -> Fernet:
    # A key of its own for this one use, derived from SECRET_KEY.
    digest = hashlib.sha256(b"switchboard event webhook secret|" + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def seal(secret: str, secret_key: str) -> str:
    """SECRET as the database keeps it."""
    return _key(secret_key).encrypt(secret.encode()).decode()


def unseal(sealed: str, secret_key: str) -> str:
    """The secret SEALED keeps; SecretUnreadable when SECRET_KEY is not the one it was sealed with."""
    try:
        return _key(secret_key).decrypt(sealed.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable("the subscriber's secret was sealed under another SECRET_KEY") from None


def signed_headers(secret: str, message_id: str, moment: datetime, body: str) -> dict[str, str]:
    """The headers of one attempt: webhook-id (the same on every attempt), webhook-timestamp, webhook-signature."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, moment, body),
        "content-type": "application/json",
    }
