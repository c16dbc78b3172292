#!/usr/bin/env python
"""Django's command-line utility for the django_jobs example project.

python example_project/manage.py demo       # migrate, enqueue demo jobs, workers + server
"""

import os
import sys
from pathlib import Path


def main() -> None:
    here = Path(__file__).resolve().parent
    # Runnable from a checkout even before `pip install -e .`: an installed django_jobs
    # (earlier on sys.path) still wins.
    sys.path.append(str(here.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
