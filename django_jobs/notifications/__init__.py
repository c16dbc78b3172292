"""Failure notifications (SPEC 10): email and signed webhooks.

What exists so far: the configuration (``DJANGO_JOBS["NOTIFICATIONS"]``, read and checked
by :mod:`django_jobs.conf`) and the Standard Webhooks signature, both sides of it:
:func:`signed_headers` for a sender and :func:`verify` for a receiver.
"""

from .signing import WebhookVerificationError, signed_headers, verify

__all__ = ["WebhookVerificationError", "signed_headers", "verify"]
