"""The benchmark harness of django_jobs: drives our workers and the peers' side by side."""
