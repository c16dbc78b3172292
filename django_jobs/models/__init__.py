from ..enums import (
    CLAIMABLE_STATUSES,
    FINISHED_STATUSES,
    HELD_STATUSES,
    UNFINISHED_STATUSES,
    JobStatus,
    Priority,
)
from .functions import DbNow
from .job import Job, JobQuerySet
from .queue import Queue
from .worker import Worker

__all__ = [
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
