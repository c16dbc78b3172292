from django.db import models


class Execution(models.Model):
    """One row per execution of a test task: what ran, where, when."""

    label = models.CharField(max_length=200)
    job_id = models.BigIntegerField(null=True)
    worker_pid = models.IntegerField(null=True)
    attempt = models.IntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
