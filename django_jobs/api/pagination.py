"""Cursor pagination for jobs: no ``COUNT(*)``, so a page is as fast at 10 million rows."""

from __future__ import annotations

from rest_framework.pagination import CursorPagination


class JobCursorPagination(CursorPagination):
    ordering = "-id"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
