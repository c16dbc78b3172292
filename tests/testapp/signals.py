"""Signals of the test app's own, sent only by tests/test_triggers.py."""

from django.dispatch import Signal

# Sent with order_id= and paid=.
order_placed = Signal()
# Sent with order_id=.
order_cancelled = Signal()
