"""Notifications (SPEC 10): email and signed webhooks about job and system events.

- :mod:`.signing`: the Standard Webhooks signature, both sides: :func:`signed_headers`
  for a sender and :func:`verify` for a receiver. Importing this package needs no
  configured Django project, so a receiver can use :func:`verify` anywhere.
- :mod:`.deliveries`: events become ``Delivery`` rows and jobs that send them, in the
  transaction that recorded the outcome; email digests; ``send_test()``, ``resend()``.
- :mod:`.sending`: the delivery task (HTTP POST or email, retries, giving up).
- :mod:`.alerts`: the ``schedule_missed`` and ``queue_backlog`` checks the workers run.
- :mod:`.messages`: the webhook body and the email text.
"""

from .signing import WebhookVerificationError, signed_headers, verify

__all__ = ["WebhookVerificationError", "signed_headers", "verify"]
