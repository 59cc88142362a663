"""Signed SendGrid Event Webhook batches ingested per second, end to end through `techtouch serve`.

Seeds a SQLite database with touches, starts the real command (uvicorn, one process) on
127.0.0.1, and POSTs batches of events signed with a fresh ECDSA P-256 key, as SendGrid does.
Timed: HTTP, signature verification, JSON parsing and the database transaction of each batch.
Prints events/s sequentially (one connection), with concurrent senders, and for a full replay
(every event a duplicate). Usage: python benchmarks/bench_webhooks.py [--touches 20000]
[--batch 1000] [--batches 20] [--concurrency 4] [--database-url URL]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import Engine, func, select

from techtouch.adapters.db import migrate
from techtouch.adapters.db.bulk import insert_rows
from techtouch.adapters.db.engine import make_engine
from techtouch.adapters.db.models import Account, Contact, Enrollment, Event, Touch

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2027, 3, 1, 9, tzinfo=UTC)
# Roughly what a day of SendGrid events looks like for tech-touch mail.
MIX = [
    ("processed", 0.22),
    ("delivered", 0.22),
    ("open", 0.30),
    ("click", 0.12),
    ("deferred", 0.05),
    ("bounce", 0.03),
    ("dropped", 0.02),
    ("unsubscribe", 0.02),
    ("spamreport", 0.01),
    ("group_unsubscribe", 0.01),
]


def seed_touches(engine: Engine, touches: int, per_account: int = 10) -> list[str]:
    """Minimal accounts, contacts, enrollments and email touches (a tenth still `sending`)."""
    accounts = touches // per_account
    with engine.begin() as c:
        insert_rows(
            c,
            Account.__table__,
            [
                {
                    "id": f"a{i}",
                    "name": f"Account {i}",
                    "segment": "tech_touch",
                    "arr": 5000.0,
                    "start_date": date(2026, 1, 1),
                    "is_advocate": False,
                    "updated_at": NOW,
                }
                for i in range(accounts)
            ],
        )
        insert_rows(
            c,
            Contact.__table__,
            [
                {
                    "id": f"c{i}",
                    "account_id": f"a{i // 2}",
                    "name": f"Contact {i}",
                    "email": f"contact{i}@customer{i // 2}.example",
                    "phone": None,
                    "role": "admin",
                    "email_consent": True,
                    "sms_consent": False,
                    "updated_at": NOW,
                }
                for i in range(accounts * 2)
            ],
        )
        insert_rows(
            c,
            Enrollment.__table__,
            [
                {
                    "account_id": f"a{i}",
                    "journey": "onboarding",
                    "cycle": 1,
                    "status": "active",
                    "entered_as_of": date(2027, 1, 1),
                    "phase": "active",
                    "step": 1,
                    "entry": {},
                }
                for i in range(accounts)
            ],
        )
        enrollments = dict(c.execute(select(Enrollment.account_id, Enrollment.id)).all())  # type: ignore[arg-type]
        rows: list[dict[str, Any]] = []
        for i in range(touches):
            account = f"a{i // per_account}"
            contact = f"c{2 * (i // per_account) + i % 2}"
            key = f"onboarding/{account}/1/m{i % per_account // 2}/email_{i % per_account}/{contact}"
            sending = i % 10 == 0
            rows.append(
                {
                    "key": key,
                    "enrollment_id": enrollments[account],
                    "account_id": account,
                    "contact_id": contact,
                    "journey": "onboarding",
                    "milestone": f"m{i % per_account // 2}",
                    "rung": f"email_{i % per_account}",
                    "channel": "email",
                    "status": "sending" if sending else "sent",
                    "as_of": date(2027, 3, 1),
                    "send_at": NOW,
                    "provider_id": None if sending else f"msg{i}",
                    "attempted_at": NOW,
                    "created_at": NOW,
                    "updated_at": NOW,
                }
            )
        insert_rows(c, Touch.__table__, rows)
    return [row["key"] for row in rows]


def make_batches(keys: list[str], batches: int, size: int, rng: random.Random) -> list[bytes]:
    kinds, weights = zip(*MIX, strict=True)
    bodies = []
    serial = 0
    for _ in range(batches):
        events = []
        for _ in range(size):
            serial += 1
            kind = rng.choices(kinds, weights)[0]
            event: dict[str, Any] = {
                "email": f"someone{serial % 997}@customer.example",
                "timestamp": int(NOW.timestamp()) + serial,
                "event": kind,
                "sg_event_id": base64.urlsafe_b64encode(serial.to_bytes(12, "big")).decode(),
                "sg_message_id": f"m{serial:010d}.filterdrecv-5645d9c87f-abcde.1.0",
                "category": ["onboarding"],
                "touch_key": rng.choice(keys) if rng.random() > 0.02 else f"unknown/{serial}",
                "smtp-id": f"<m{serial}@sendgrid.example>",
                "useragent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
                "ip": "203.0.113.7",
            }
            if kind == "click":
                event["url"] = "https://app.example/setup?utm_source=techtouch"
            if kind in ("bounce", "dropped"):
                event["reason"] = "550 5.1.1 mailbox unavailable"
                event["type"] = "bounce"
            events.append(event)
        bodies.append(json.dumps(events).encode())
    return bodies


def sign(key: ec.EllipticCurvePrivateKey, body: bytes) -> dict[str, str]:
    stamp = str(int(time.time()))
    signature = key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        "Content-Type": "application/json",
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SERVER_LOG: deque[str] = deque(maxlen=200)  # the service's last lines, shown when a POST fails


def start_service(url: str, public_key: str, folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`techtouch serve` in its own process; returns once uvicorn says it listens."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TECHTOUCH_")} | {
        "TECHTOUCH_DATABASE_URL": url,
        "TECHTOUCH_OUTBOX_DIR": str(folder / "outbox"),
        "TECHTOUCH_SENDGRID_WEBHOOK_PUBLIC_KEY": public_key,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "techtouch", "serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    ready = threading.Event()

    def drain() -> None:
        assert process.stdout is not None
        for line in process.stdout:  # keep reading: access logs must never fill the pipe
            SERVER_LOG.append(line.decode(errors="replace"))
            if b"Uvicorn running on" in line:
                ready.set()
        ready.set()

    threading.Thread(target=drain, daemon=True).start()
    if not ready.wait(60) or process.poll() is not None:
        process.kill()
        raise SystemExit("techtouch serve did not start:\n" + "".join(SERVER_LOG))
    return process, f"http://127.0.0.1:{port}"


def post_all(base_url: str, key: ec.EllipticCurvePrivateKey, bodies: list[bytes], concurrency: int) -> float:
    """Seconds to POST every body (signed just before sending), `concurrency` connections at once."""
    signed = [(body, sign(key, body)) for body in bodies]  # SendGrid's cost, not ours: before the clock

    def send(client: httpx.Client, item: tuple[bytes, dict[str, str]]) -> None:
        response = client.post(f"{base_url}/webhooks/sendgrid", content=item[0], headers=item[1])
        if response.status_code != 200:
            log = "".join(line for line in SERVER_LOG if "HTTP/1.1" not in line)
            raise SystemExit(f"webhook answered {response.status_code}: {response.text}\n{log}")

    clients = [httpx.Client(timeout=120) for _ in range(concurrency)]
    try:
        started = time.perf_counter()
        if concurrency == 1:
            for item in signed:
                send(clients[0], item)
        else:
            with ThreadPoolExecutor(concurrency) as pool:
                list(pool.map(lambda pair: send(clients[pair[0] % concurrency], pair[1]), enumerate(signed)))
        return time.perf_counter() - started
    finally:
        for client in clients:
            client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--touches", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1_000, help="events per POST")
    parser.add_argument("--batches", type=int, default=20, help="POSTs per measured run")
    parser.add_argument("--concurrency", type=int, default=4, help="concurrent senders in the second run")
    parser.add_argument("--database-url", help="default: a fresh SQLite file in a temporary folder")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="tt-bench-webhooks-"))
    url = args.database_url or f"sqlite:///{folder / 'webhooks.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    started = time.perf_counter()
    keys = seed_touches(engine, args.touches)
    print(f"seeded {len(keys):,} touches in {time.perf_counter() - started:.1f} s ({engine.dialect.name})")

    private_key = ec.generate_private_key(ec.SECP256R1())
    public_der = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    rng = random.Random(7)
    total = args.batch * args.batches
    # Each run gets its own events (distinct sg_event_id), the replay resends the first run's.
    runs = make_batches(keys, args.batches * 2 + 1, args.batch, rng)
    warmup, sequential, concurrent = runs[0], runs[1 : args.batches + 1], runs[args.batches + 1 :]

    process, base_url = start_service(url, base64.b64encode(public_der).decode(), folder)
    try:
        post_all(base_url, private_key, [warmup], 1)
        seconds = post_all(base_url, private_key, sequential, 1)
        print(
            f"sequential: {total:,} signed events in {args.batches} POSTs of {args.batch:,}: "
            f"{seconds:.2f} s = {total / seconds:,.0f} events/s ({seconds / args.batches * 1000:.0f} ms a POST)"
        )
        seconds = post_all(base_url, private_key, concurrent, args.concurrency)
        print(
            f"{args.concurrency} concurrent senders: {total:,} events: {seconds:.2f} s = {total / seconds:,.0f} events/s"
        )
        seconds = post_all(base_url, private_key, sequential, 1)
        print(f"replay of the first run (all duplicates): {seconds:.2f} s = {total / seconds:,.0f} events/s")
    finally:
        process.terminate()
        process.wait(timeout=30)
    with engine.connect() as c:
        events = c.scalar(select(func.count()).select_from(Event))
        sending = c.scalar(select(func.count()).select_from(Touch).where(Touch.status == "sending"))
    print(f"events stored: {events:,}; touches still `sending`: {sending:,} of {len(keys) // 10:,}")
    engine.dispose()


if __name__ == "__main__":
    main()
