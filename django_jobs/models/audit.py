"""The audit log (SPEC 9): every state change a person makes through the admin, the API
or the command line — who, when, what, on which objects, how many rows."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import models


class AuditEntry(models.Model):
    """One state change made by a person. Written by the surfaces (admin actions, API
    views, ``manage.py jobs``), which know who acted; the verbs they call do not."""

    ADMIN, API, CLI = "admin", "api", "cli"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # Who: the user's primary key and name, not a foreign key, because the job tables
    # may live in another database than the users (DJANGO_JOBS["DATABASE"]), and an
    # entry outlives its user. For the CLI, the operating-system user's name.
    user_pk = models.CharField(max_length=64, blank=True, default="")
    username = models.CharField(max_length=150, blank=True, default="")
    source = models.CharField(
        max_length=8, choices=[(ADMIN, "admin"), (API, "API"), (CLI, "command line")]
    )
    action = models.CharField(max_length=64)  # "cancel", "retry", "pause", "schedule.create"
    target_type = models.CharField(max_length=16)  # "job", "queue", "schedule"
    # The ids or names acted on (the first hundred), and how many rows changed.
    targets = models.JSONField(default=list, blank=True)
    count = models.PositiveIntegerField(default=0)
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "audit entry"
        verbose_name_plural = "audit log"

    def __str__(self) -> str:
        who = self.username or "someone"
        return f"{who} {self.action} {self.count} {self.target_type}(s) via {self.source}"

    @classmethod
    def record(
        cls,
        *,
        source: str,
        action: str,
        target_type: str,
        targets: Iterable[Any] = (),
        count: int | None = None,
        user: Any = None,
        username: str = "",
        using: str | None = None,
        **details: Any,
    ) -> AuditEntry:
        """Write one entry; ``user`` is a user object (or None), ``targets`` ids or names."""
        listed = [t if isinstance(t, (int, str)) else str(t) for t in targets]
        if user is not None and not getattr(user, "is_authenticated", False):
            user = None
        entry = cls(
            source=source,
            action=action,
            target_type=target_type,
            targets=listed[:100],
            count=len(listed) if count is None else count,
            user_pk=str(user.pk) if user is not None else "",
            username=username or (user.get_username() if user is not None else ""),
            details=details,
        )
        entry.save(using=using)
        return entry
