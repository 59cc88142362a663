"""Render workers (`render_workers`): a launch day delivered with its messages rendered in worker
processes writes the same outbox, byte for byte, and leaves the same touch statuses as one rendered
in the delivering process. Sending, claims and marks stay in the delivering process either way."""

from __future__ import annotations

import pickle
import shutil
from datetime import date
from pathlib import Path
from typing import Any, ClassVar

import pytest
from sqlalchemy import text

from techtouch import bootstrap
from techtouch.adapters.db import migrate
from techtouch.adapters.db.engine import make_engine
from techtouch.adapters.render.context import context_builder
from techtouch.services import day as service
from techtouch.services import delivery
from techtouch.services.runner import ordered, run_journeys
from techtouch.services.seed import seed
from techtouch.settings import Settings

AS_OF = date(2027, 3, 1)
ALL_DAY = {"business_start": "00:00", "business_end": "23:59", "business_days": [0, 1, 2, 3, 4, 5, 6]}


def settings_for(db: Path, outbox: Path, workers: int = 1) -> Settings:
    return Settings(
        database_url=f"sqlite:///{db}",
        outbox_dir=outbox,
        timezone="Europe/Paris",
        delivery=ALL_DAY,
        render_workers=workers,
    )


@pytest.fixture(scope="module")
def launch_day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded database with a launch day's journeys recorded and nothing delivered yet."""
    db = tmp_path_factory.mktemp("render-workers") / "launch.db"
    settings = settings_for(db, db.parent / "unused")
    engine = make_engine(settings.database_url)
    migrate.upgrade(engine)
    seed(engine, accounts=200, seed=1, days=90, as_of=AS_OF)
    app = bootstrap.build(settings, engine=engine)
    run_journeys(engine, settings, ordered(app.catalog, settings), AS_OF, app.instant(AS_OF))
    with engine.begin() as connection:  # a launch day sends no SMS: an SMS beside some of its emails
        connection.execute(
            text(
                "INSERT INTO touches (key, enrollment_id, account_id, contact_id, journey, milestone, rung, "
                "channel, sender, template, status, as_of, send_at, created_at, updated_at) "
                "SELECT t.key || '/sms', t.enrollment_id, t.account_id, t.contact_id, t.journey, "
                "t.milestone, 'sms', 'sms', NULL, 'renewal/announce', t.status, t.as_of, t.send_at, "
                "t.created_at, t.updated_at "
                "FROM touches t JOIN contacts c ON c.id = t.contact_id "
                "WHERE t.channel = 'email' AND c.phone IS NOT NULL AND c.sms_consent"
            )
        )
    engine.dispose()
    return db


def deliver_copy(launch_day: Path, where: Path, workers: int) -> tuple[dict[str, bytes], list[Any], Any]:
    """Deliver a copy of the launch day to an outbox: every file's bytes, the touches, the report."""
    db = where / "launch.db"
    shutil.copy(launch_day, db)
    settings = settings_for(db, where / "outbox", workers)
    engine = make_engine(settings.database_url)
    app = bootstrap.build(settings, engine=engine)
    report = service.deliver_pending(app, service.load_state(app, AS_OF), now=app.instant(AS_OF))
    with engine.connect() as connection:
        touches = connection.execute(
            text("SELECT key, status, error FROM touches WHERE channel IN ('email', 'sms') ORDER BY key")
        ).all()
    engine.dispose()
    outbox = where / "outbox"
    files = {
        p.relative_to(outbox).as_posix(): p.read_bytes() for p in sorted(outbox.rglob("*")) if p.is_file()
    }
    return files, [tuple(t) for t in touches], report


class CountingPool(delivery.ProcessPoolExecutor):
    """The real pool, counted: the test must see the workers used, not the in-process fallback."""

    started: ClassVar[list[int]] = []

    def __init__(self, max_workers: int, **kwargs: Any) -> None:
        CountingPool.started.append(max_workers)
        super().__init__(max_workers, **kwargs)


def test_rendering_in_two_workers_writes_the_same_outbox(
    launch_day: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here = tmp_path / "here"
    here.mkdir()
    files, touches, report = deliver_copy(launch_day, here, workers=1)

    # A small day: the pool is used from one message on, with several batches and chunks of each,
    # so the workers run ahead of the batch being sent and chunks are put back in order.
    monkeypatch.setattr(delivery, "POOL_MIN_MESSAGES", 1)
    monkeypatch.setattr(delivery, "CHUNK", 7)
    monkeypatch.setattr(delivery, "BATCH", {"email": 40, "sms": 9})
    monkeypatch.setattr(delivery, "ProcessPoolExecutor", CountingPool)
    CountingPool.started.clear()
    pooled = tmp_path / "pooled"
    pooled.mkdir()
    pooled_files, pooled_touches, pooled_report = deliver_copy(launch_day, pooled, workers=2)

    assert CountingPool.started == [2]
    emails = [name for name in files if name.endswith(".eml")]
    assert len(emails) > 100 and any(name.endswith(".jsonl") for name in files)  # both channels
    assert pooled_files.keys() == files.keys()
    assert [name for name in files if pooled_files[name] != files[name]] == []
    assert pooled_touches == touches
    assert sum(report.sent.values()) == len(emails) + files["sms.jsonl"].count(b"\n")
    assert (pooled_report.sent, pooled_report.failed, pooled_report.errors) == (
        report.sent,
        report.failed,
        report.errors,
    )


def test_a_context_builder_travels_without_the_accounts_frame(launch_day: Path, tmp_path: Path) -> None:
    """What a worker receives: the account columns and journey titles, building the same contexts."""
    settings = settings_for(launch_day, tmp_path / "outbox")
    engine = make_engine(settings.database_url)
    app = bootstrap.build(settings, engine=engine)
    state = service.load_state(app, AS_OF)
    build = context_builder(settings, state.accounts, app.catalog, app.link_secret)
    with engine.connect() as connection:
        rows = [dict(r._mapping) for r in connection.execute(delivery.DUE_SQL).all()[:60]]
    engine.dispose()
    travelled = pickle.loads(pickle.dumps(build))
    assert travelled.frame is None
    for row in rows:
        mine, theirs = build(row), travelled(row)
        assert mine.keys() == theirs.keys()
        for name in ("account", "contact", "sender", "journey", "milestone", "touch_key", "links"):
            assert theirs[name] == mine[name]
        assert theirs["survey_url"]("nps", 7) == mine["survey_url"]("nps", 7)


def test_reading_the_due_messages_in_chunks_sends_the_same_batches(
    launch_day: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Delivery reads the unsettled messages READ_CHUNK rows at a time (a server-side cursor): with
    chunks that cut batches in the middle, the batches handed to the channels, the outbox and the
    statuses are those of one whole read."""
    from techtouch.adapters.channels import outbox

    sizes: list[tuple[str, int]] = []
    for name, cls in (("email", outbox.OutboxEmailChannel), ("sms", outbox.OutboxSmsChannel)):
        real = cls.send

        def counted(self: Any, batch: Any, real: Any = real, name: str = name) -> Any:
            sizes.append((name, len(batch)))
            return real(self, batch)

        monkeypatch.setattr(cls, "send", counted)
    monkeypatch.setattr(delivery, "BATCH", {"email": 40, "sms": 9})
    whole = tmp_path / "whole"
    whole.mkdir()
    files, touches, report = deliver_copy(launch_day, whole, workers=1)
    whole_sizes, sizes[:] = list(sizes), []

    monkeypatch.setattr(delivery, "READ_CHUNK", 17)  # divides neither batch size
    chunked = tmp_path / "chunked"
    chunked.mkdir()
    chunked_files, chunked_touches, chunked_report = deliver_copy(launch_day, chunked, workers=1)

    assert len(whole_sizes) > 5 and {n for n, _ in whole_sizes} == {"email", "sms"}
    assert sizes == whole_sizes  # full batches of 40 and 9, the last of each channel shorter
    assert chunked_files == files
    assert chunked_touches == touches
    assert (chunked_report.sent, chunked_report.suppressed, chunked_report.held) == (
        report.sent,
        report.suppressed,
        report.held,
    )
