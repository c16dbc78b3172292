"""``jobs notifications``: the configured channels and the latest deliveries, as text."""

from __future__ import annotations

from collections.abc import Iterator

from ..conf import jobs_settings
from ..models import Delivery


def report(db: str, limit: int) -> Iterator[str]:
    """The lines ``jobs notifications`` prints."""
    settings = jobs_settings.NOTIFICATIONS
    if not settings.channels():
        yield "No channel is configured (DJANGO_JOBS['NOTIFICATIONS'])."
    if settings.email is not None:
        events = ", ".join(sorted(settings.email.events))
        yield f"email    {', '.join(settings.email.to)}  events: {events}"
    for hook in settings.webhooks:
        yield f"webhook  {hook.url}  events: {', '.join(sorted(hook.events))}"
    yield ""
    yield (
        f"{'ID':>8}  {'CREATED (UTC)':19}  {'EVENT':16} {'CHANNEL':8} {'STATUS':10} "
        f"{'TRIES':>5}  LAST ANSWER"
    )
    for d in Delivery.objects.using(db).order_by("-created_at", "-id")[:limit]:
        yield (
            f"{d.pk:>8}  {d.created_at:%Y-%m-%d %H:%M:%S}  {d.event:16} {d.channel:8} "
            f"{d.status:10} {len(d.attempts):>5}  {d.last_answer}"
        )
