"""Tasks that declare triggers (tests/test_triggers.py). An app's ``jobs.py``: discovery
imports it at start-up, so its triggers listen though nothing else imports it."""

from django_jobs import job, trigger

from .signals import order_cancelled, order_placed
from .tasks import record


@job(
    on=order_placed,
    when=lambda paid, **kw: paid,
    kwargs=lambda order_id, **kw: {"order_id": order_id},
    queue="orders",
)
def ship_order(order_id):
    record(f"ship:{order_id}")
    return order_id


@job(
    queue="audit",
    on=[
        trigger(order_placed, kwargs=lambda order_id, **kw: {"order_id": order_id}),
        trigger(
            order_cancelled,
            kwargs=lambda order_id, **kw: {"order_id": order_id, "event": "cancelled"},
            priority="low",
        ),
    ],
)
def audit_order(order_id, event="placed"):
    record(f"audit:{event}:{order_id}")
