"""Emails per second through SendGridChannel (the real `sendgrid` library) to the loopback fake.

Batched (up to 1,000 recipients a request, copy in substitutions) against one request per email
(batch_size=1), in the same run, on realistic rendered copy from four templates (four category
pairs, so four request groups). The fake runs in this process, validates every request against
the OpenAPI spec and records every message, as in the tests.

Rows: batched with messages ordered by journey and milestone (as the delivery layer orders due
touches), `send()` of 1,000 at a time (full requests); one request per email. Wall time and CPU time (client and
fake together: one process, so CPU time does not depend on what else runs on the machine).

Goals (issue 7): >= 5,000 emails/s batched and >= 10x the per-email rate. Printed, not asserted.
Usage: python benchmarks/bench_sendgrid.py [--messages 20000] [--per-email 2000]
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.fakes

from techtouch.adapters.channels.base import OutboundEmail, Receipt  # noqa: E402
from techtouch.adapters.channels.sendgrid import SendGridChannel  # noqa: E402
from techtouch.adapters.render.renderer import Renderer, sample_context  # noqa: E402
from tests.fakes.sendgrid_api import FakeSendGrid  # noqa: E402

KEY = "SG.bench-key"
TEMPLATES = ["renewal/announce", "onboarding/welcome", "advocacy/nps", "risk/report"]


def messages(count: int, offset: int = 0, grouped: bool = False) -> list[OutboundEmail]:
    """`count` emails cycling through the templates; `grouped`: ordered by template instead."""
    renderer = Renderer(ROOT / "templates")
    copies = [(t, renderer.email(t, sample_context())) for t in TEMPLATES]
    due = datetime.now(UTC) - timedelta(minutes=1)
    out = []
    for n in range(offset, offset + count):
        template, copy = copies[n % len(copies)]
        journey, milestone = template.split("/")
        key = f"{n}:{journey}:{milestone}:email"
        out.append(
            OutboundEmail(
                key=key,
                to_email=f"contact{n}@customer{n % 97}.example",
                to_name=f"Contact {n}",
                from_email="success@techtouch.example",
                from_name="The Customer Success team",
                subject=copy.subject,
                html=copy.html.replace("</p>", f" ({n})</p>", 1),
                text=f"{copy.text}\n({n})",
                send_at=due,
                headers={
                    "List-Unsubscribe": f"<https://cs.techtouch.example/u/{n}.signature>",
                    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                },
                categories=(journey, f"{journey}.{milestone}"),
                custom_args={"touch_key": key},
            )
        )
    return sorted(out, key=lambda m: m.categories) if grouped else out


@dataclass
class Result:
    emails: int
    requests: int
    wall: float
    cpu: float

    @property
    def rate(self) -> float:
        return self.emails / self.wall


def run(
    fake: FakeSendGrid, channel: SendGridChannel, batch: Sequence[OutboundEmail], call_size: int
) -> Result:
    fake.clear()
    receipts: list[Receipt] = []
    wall, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(batch), call_size):
        receipts += channel.send(batch[start : start + call_size])
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    sent = sum(r.status == "sent" for r in receipts)
    if not sent == len(fake.accepted) == len(batch):
        raise SystemExit(f"only {sent} of {len(batch)} sent, {len(fake.accepted)} accepted by the fake")
    return Result(sent, len(fake.requests), wall, cpu)


def show(label: str, result: Result) -> None:
    print(
        f"{label:<52} {result.emails:>6} emails {result.requests:>6} requests "
        f"{result.wall:>6.2f} s {result.rate:>7,.0f} emails/s  (CPU {result.cpu:>5.2f} s: "
        f"{result.emails / result.cpu:>7,.0f} emails per CPU-second)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=20_000, help="emails for the batched runs")
    parser.add_argument("--per-email", type=int, default=2_000, help="emails for the one-request-each run")
    parser.add_argument("--call-size", type=int, default=1000, help="messages per send() call, batched run")
    args = parser.parse_args()

    grouped = messages(args.messages, grouped=True)
    single = messages(args.per_email, offset=args.messages)
    with FakeSendGrid(api_key=KEY) as fake:
        batched = SendGridChannel(KEY, host=fake.url, batch_size=1000)
        per_email = SendGridChannel(KEY, host=fake.url, batch_size=1)
        run(fake, batched, messages(2000, offset=10**6, grouped=True), 1000)  # warm-up: allocator, caches
        run(fake, per_email, messages(200, offset=2 * 10**6), 1000)
        gc.collect()
        gc.freeze()  # the inputs are setup: keep the collector from rescanning them during the runs

        best = run(fake, batched, grouped, args.call_size)
        show(f"batched, by journey, send() of {args.call_size}", best)
        one = run(fake, per_email, single, 1000)
        show("one request per email", one)

    ratio, cpu_ratio = best.rate / one.rate, (best.emails / best.cpu) / (one.emails / one.cpu)
    print(f"ratio batched / per email: {ratio:.1f}x wall, {cpu_ratio:.1f}x CPU")
    print(
        f"goals: >= 5,000 emails/s batched: {'met' if best.rate >= 5000 else 'NOT met'} ({best.rate:,.0f}); "
        f">= 10x per email: {'met' if ratio >= 10 else 'NOT met'} ({ratio:.1f}x)"
    )
    print(
        f"(per email measured on {args.per_email} emails: at that rate {args.messages} would take "
        f"{args.messages / one.rate:.0f} s, against {best.wall:.1f} s batched)"
    )


if __name__ == "__main__":
    main()
