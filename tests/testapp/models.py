from django.db import models


class Execution(models.Model):
    """One row per execution of a test task: what ran, where, when."""

    label = models.CharField(max_length=200)
    job_id = models.BigIntegerField(null=True)
    worker_pid = models.IntegerField(null=True)
    attempt = models.IntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    # Reliability tests: the executor's parent (the worker process) and the run's start
    # and end on the host clock (every "host" of a test shares this machine's clock).
    parent_pid = models.IntegerField(null=True)
    started = models.FloatField(null=True)
    ended = models.FloatField(null=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.label} (job {self.job_id}, attempt {self.attempt})"
