from ..enums import (
    CLAIMABLE_STATUSES,
    FINISHED_STATUSES,
    HELD_STATUSES,
    UNFINISHED_STATUSES,
    JobStatus,
    Priority,
)
from .audit import AuditEntry
from .batch import Batch, BatchKind
from .functions import DbNow
from .job import Job, JobDependency, JobQuerySet
from .notification import Delivery, Incident
from .proxies import Dashboard
from .queue import Queue
from .rollup import Rollup
from .schedule import MisfirePolicy, Schedule, ScheduleKind
from .worker import Worker

__all__ = [
    "CLAIMABLE_STATUSES",
    "FINISHED_STATUSES",
    "HELD_STATUSES",
    "UNFINISHED_STATUSES",
    "AuditEntry",
    "Batch",
    "BatchKind",
    "Dashboard",
    "DbNow",
    "Delivery",
    "Incident",
    "Job",
    "JobDependency",
    "JobQuerySet",
    "JobStatus",
    "MisfirePolicy",
    "Priority",
    "Queue",
    "Rollup",
    "Schedule",
    "ScheduleKind",
    "Worker",
]
