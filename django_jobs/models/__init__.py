from ..enums import (
    CLAIMABLE_STATUSES,
    FINISHED_STATUSES,
    HELD_STATUSES,
    UNFINISHED_STATUSES,
    JobStatus,
    Priority,
)
from .functions import DbNow
from .batch import Batch, BatchKind
from .job import Job, JobDependency, JobQuerySet
from .schedule import MisfirePolicy, Schedule, ScheduleKind
from .queue import Queue
from .worker import Worker

__all__ = [
    "Batch",
    "BatchKind",
    "JobDependency",
    "MisfirePolicy",
    "Schedule",
    "ScheduleKind",
    "CLAIMABLE_STATUSES",
    "DbNow",
    "FINISHED_STATUSES",
    "HELD_STATUSES",
    "Job",
    "JobQuerySet",
    "JobStatus",
    "Priority",
    "Queue",
    "UNFINISHED_STATUSES",
    "Worker",
]
