"""Django admin for jobs, queues, workers, schedules and batches.

An observatory with explicit actions: every action filters the selection to the rows it
applies to and then calls the same QuerySet/manager verbs as the CLI, so no
state change is written here. One module per ModelAdmin; ``display`` renders values
through templates, ``filters`` holds the list filters.
"""

from __future__ import annotations

from .audit import AuditEntryAdmin
from .batches import BatchAdmin
from .dashboard import DashboardAdmin
from .deliveries import DeliveryAdmin
from .jobs import JobAdmin
from .queues import QueueAdmin
from .schedules import ScheduleAdmin
from .workers import WorkerAdmin

__all__ = [
    "AuditEntryAdmin",
    "BatchAdmin",
    "DashboardAdmin",
    "DeliveryAdmin",
    "JobAdmin",
    "QueueAdmin",
    "ScheduleAdmin",
    "WorkerAdmin",
]
