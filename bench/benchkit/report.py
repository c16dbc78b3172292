"""The printed table: one row per system, then the ratios ours/peer."""

from __future__ import annotations


def _get(d, *path):
    for p in path:
        if not isinstance(d, dict):
            return None
        d = d.get(p)
    return d


def _f(v, digits=0, suffix=""):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    return f"{v:,.{digits}f}{suffix}"


def columns(drain_sizes: list[int]) -> list[tuple[str, tuple, int, bool]]:
    """(header, path in a system's results, digits, higher is better)."""
    cols = []
    for n in drain_sizes:
        cols.append((f"drain {n // 1000}k/s", ("drain", str(n), "throughput"), 0, True))
    cols += [
        ("sust first/s", ("sustained", "first"), 0, True),
        ("sust last/s", ("sustained", "last"), 0, True),
        ("last/first", ("sustained", "last_over_first"), 2, None),
        ("backlog end", ("sustained", "backlog_last"), 0, None),
        ("dead tup max", ("sustained", "dead_tuples_max"), 0, False),
        ("claim p99 ms", ("sustained", "claim_ms", "p99"), 2, False),
        ("enq 1/call/s", ("enqueue", "single", "rate"), 0, True),
        ("enq atomic/s", ("enqueue", "single_atomic", "rate"), 0, True),
        ("enq on_commit/s", ("enqueue", "single_on_commit", "rate"), 0, True),
        ("enq batch/s", ("enqueue", "batch", "rate"), 0, True),
        ("lat p50 ms", ("latency", "p50"), 1, False),
        ("lat p95 ms", ("latency", "p95"), 1, False),
        ("lat p99 ms", ("latency", "p99"), 1, False),
    ]
    for n in drain_sizes[:1]:
        cols.append(("commits/job", ("drain", str(n), "commits_per_job"), 2, False))
    return cols


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(  # noqa: E731
        c.ljust(w) if i == 0 else c.rjust(w)
        for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )
    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def render(results: dict, order: list[str], labels: dict[str, str], drain_sizes) -> str:
    cols = columns(drain_sizes)
    present = [c for c in cols if any(_get(results.get(k, {}), *c[1]) is not None for k in order)]
    rows = []
    for key in order:
        r = results.get(key, {})
        row = [labels[key]]
        for _, path, digits, _ in present:
            v = _get(r, *path)
            if v is None and path[0] == "enqueue" and path[1] == "batch":
                v = "n/a" if _get(r, "enqueue", "batch", "na") else None
            if v is None and path[-1] == "commits_per_job" and key == "celery":
                v = "n/a"
            row.append(_f(v, digits))
        rows.append(row)
    out = [_table(["system"] + [c[0] for c in present], rows)]

    ours = results.get("ours")
    if ours:
        ratio_cols = [c for c in present if c[3] is not None]
        rrows = []
        for key in order:
            if key == "ours":
                continue
            r = results.get(key, {})
            row = [f"ours / {labels[key]}"]
            for _, path, _, _ in ratio_cols:
                a, b = _get(ours, *path), _get(r, *path)
                ok = isinstance(a, (int, float)) and isinstance(b, (int, float)) and b
                row.append("-" if not ok else f"{a / b:.3f}x" if a / b < 0.1 else f"{a / b:.2f}x")
            rrows.append(row)
        if rrows:
            out.append("")
            out.append(
                "Ratios ours/peer (throughput columns: >1 means ours is faster; latency, "
                "dead tuples, claim time and commits/job: <1 means ours is lower)"
            )
            out.append(_table(["ratio"] + [c[0] for c in ratio_cols], rrows))
    return "\n".join(out)
