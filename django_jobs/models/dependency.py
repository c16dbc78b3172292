from __future__ import annotations

from django.db import models


class JobDependency(models.Model):
    """``job`` waits until ``depends_on`` completed."""

    job = models.ForeignKey("django_jobs.Job", on_delete=models.CASCADE, related_name="+")
    depends_on = models.ForeignKey("django_jobs.Job", on_delete=models.CASCADE, related_name="+")

    class Meta:
        verbose_name = "job dependency"
        verbose_name_plural = "job dependencies"
        constraints = [
            models.UniqueConstraint(
                fields=["job", "depends_on"], name="django_jobs_jobdependency_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"job {self.job_id} after job {self.depends_on_id}"
