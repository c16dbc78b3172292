"""Standard Webhooks signatures (https://www.standardwebhooks.com), through the
``standardwebhooks`` package.

A message is signed with HMAC-SHA256 over ``"{id}.{timestamp}.{body}"``; the headers are
``webhook-id`` (unique per message, the same on every retry), ``webhook-timestamp`` (Unix
seconds) and ``webhook-signature`` (``v1,<base64>``). The key is the base64 after
``whsec_`` or, for a secret without that prefix, the secret's UTF-8 bytes (SPEC 10).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

__all__ = ["WebhookVerificationError", "signed_headers", "verify"]

PREFIX = "whsec_"


def _webhook(secret: str | bytes) -> Webhook:
    if isinstance(secret, str) and not secret.startswith(PREFIX):
        secret = secret.encode()
    if isinstance(secret, str):
        secret = base64.b64decode(secret[len(PREFIX) :], validate=True)
    return Webhook(secret)


def signed_headers(
    secret: str | bytes, message_id: str, body: str | bytes, timestamp: float | None = None
) -> dict[str, str]:
    """The three Standard Webhooks headers for sending ``body`` (the exact bytes sent)."""
    text = body.decode() if isinstance(body, bytes) else body
    seconds = int(time.time() if timestamp is None else timestamp)
    at = datetime.fromtimestamp(seconds, tz=UTC)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(seconds),
        "webhook-signature": _webhook(secret).sign(message_id, at, text),
    }


def verify(secret: str | bytes, headers: Mapping[str, str], body: str | bytes) -> None:
    """Check a received webhook: raises :class:`WebhookVerificationError` for a missing
    header, a signature that does not match ``body`` with ``secret`` (a tampered body,
    the wrong secret) or a timestamp more than five minutes from now.

    In a Django view::

        verify(SECRET, request.headers, request.body)
    """
    try:
        webhook = _webhook(secret)
    except Exception as exc:  # noqa: BLE001 - a bad secret is a failed verification
        raise WebhookVerificationError(f"unusable secret: {exc}") from None
    webhook.verify(body, dict(headers), json_parse=False)
