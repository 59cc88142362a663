"""The hot queries of a measured cycle and their plans: what `make bench` writes to
`benchmarks/results/*-explain.md` (issue 14: "the EXPLAIN of each hot query recorded in the
benchmark notes", "only the indexes the plans need").

`Recorder(engine)` times every statement the engine sends while it is attached (SQLAlchemy's
cursor events), grouped by statement text. `report()` then takes the statements that cost the
most in all, and EXPLAINs each with the parameters of its slowest execution: on PostgreSQL
`EXPLAIN (ANALYZE, BUFFERS)` inside a transaction that is rolled back (an UPDATE or INSERT is
really run, then undone), on SQLite `EXPLAIN QUERY PLAN`. PostgreSQL's index statistics
(`pg_stat_user_indexes`) say which indexes no statement used since the database was made.
COPY goes around the cursor's `execute`, so it is not recorded; its time is the phase's.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, event, text

SHOWN = 14  # statements explained, by total time
SQL_SHOWN = 1500  # characters of a statement's text printed with its plan


@dataclass
class Statement:
    sql: str
    count: int = 0
    seconds: float = 0.0
    slowest: float = -1.0
    params: Any = None
    many: bool = False


@dataclass
class Recorder:
    engine: Engine
    statements: dict[str, Statement] = field(default_factory=dict)

    def __post_init__(self) -> None:
        event.listen(self.engine, "before_cursor_execute", self._before)
        event.listen(self.engine, "after_cursor_execute", self._after)

    def detach(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._before)
        event.remove(self.engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        conn.info.setdefault("explain_started", []).append(time.perf_counter())

    def _after(self, conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        seconds = time.perf_counter() - conn.info["explain_started"].pop()
        found = self.statements.setdefault(statement, Statement(statement))
        found.count += 1
        found.seconds += seconds
        if seconds > found.slowest and not statement.lstrip().upper().startswith(("EXPLAIN", "ANALYZE")):
            found.slowest, found.params, found.many = seconds, params, many

    def hottest(self, shown: int = SHOWN) -> list[Statement]:
        plannable = [s for s in self.statements.values() if _plannable(s.sql)]
        return sorted(plannable, key=lambda s: s.seconds, reverse=True)[:shown]

    def report(self, title: str, shown: int = SHOWN) -> str:
        """Markdown: every statement's time in one table, then the plans of the hottest."""
        self.detach()
        total = sum(s.seconds for s in self.statements.values())
        lines = [
            f"# {title}",
            "",
            f"{len(self.statements)} distinct statements, {sum(s.count for s in self.statements.values()):,} "
            f"executions, {total:.1f} s in the database driver (COPY not included).",
            "",
            "| # | executions | total s | slowest s | statement |",
            "|---|---|---|---|---|",
        ]
        ranked = sorted(self.statements.values(), key=lambda s: s.seconds, reverse=True)
        for rank, s in enumerate(ranked[:40], 1):
            lines.append(
                f"| {rank} | {s.count:,} | {s.seconds:.2f} | {s.slowest:.3f} | `{_one_line(s.sql, 110)}` |"
            )
        for rank, s in enumerate(self.hottest(shown), 1):
            lines += [
                "",
                f"## {rank}. {s.count:,} executions, {s.seconds:.2f} s in all, slowest {s.slowest:.3f} s",
                "",
                "```sql",
                _one_line(s.sql, SQL_SHOWN),
                "```",
                "",
                "```",
                *self._plan(s),
                "```",
            ]
        if self.engine.dialect.name == "postgresql":
            lines += ["", "## Indexes", "", *self._indexes()]
        return "\n".join(lines) + "\n"

    def _plan(self, s: Statement) -> list[str]:
        params = s.params[0] if s.many and isinstance(s.params, Sequence) and s.params else s.params
        postgres = self.engine.dialect.name == "postgresql"
        prefix = "EXPLAIN (ANALYZE, BUFFERS) " if postgres else "EXPLAIN QUERY PLAN "
        with self.engine.connect() as connection:
            transaction = connection.begin()
            try:
                result = connection.exec_driver_sql(prefix + s.sql, params if params is not None else ())
                rows = [" | ".join(str(v) for v in row) for row in result]
            except Exception as exc:  # a plan that cannot be made says why, the report goes on
                rows = [f"(no plan: {type(exc).__name__}: {_one_line(str(exc), 300)})"]
            finally:
                transaction.rollback()
        return rows

    def _indexes(self) -> list[str]:
        """Every index of techtouch's tables with its size and scans since the database was made
        (a copy from a template starts from zero): 0 scans means no plan of the benchmark used it."""
        sql = text(
            "SELECT relname, indexrelname, idx_scan, pg_size_pretty(pg_relation_size(indexrelid)) "
            "FROM pg_stat_user_indexes ORDER BY idx_scan, pg_relation_size(indexrelid) DESC"
        )
        with self.engine.connect() as connection:
            rows = connection.execute(sql).all()
        return [
            "| table | index | scans | size |",
            "|---|---|---|---|",
            *(f"| {t} | {i} | {n:,} | {size} |" for t, i, n, size in rows),
        ]


def _plannable(sql: str) -> bool:
    head = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
    return head in {"SELECT", "WITH", "UPDATE", "INSERT", "DELETE"}


def _one_line(sql: str, limit: int) -> str:
    flat = re.sub(r"\s+", " ", sql).strip().replace("|", "\\|")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
