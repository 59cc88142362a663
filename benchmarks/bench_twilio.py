"""SMS pacing with the real clock: the Twilio channel against the loopback fake Twilio.

.venv/bin/python benchmarks/bench_twilio.py [--mps 50] [--messages 500] [--latency 0.15]
    [--batch N] [--concurrency N] [--validate]

Rates are measured where Twilio would measure them, on the fake's arrival times. The goal (issue 7):
the achieved rate within ±5 % of the configured MPS, and never more than MPS messages in any
one-second window. Exits 1 when either is missed. The fake answers after `--latency` seconds, as
Twilio takes 0.1-0.3 s; the channel keeps several requests in flight to hold the pace regardless.
The fake runs in its own process, so that it and the channel do not share one GIL. It skips the
OpenAPI validation here unless `--validate`: openapi-core takes ~10 ms of CPU a request, which at
50 MPS on a busy 2-core machine measures the fake rather than the pacing (the tests validate every
request the channel sends).
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import statistics
import sys
import time
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the fake lives in tests/fakes

from techtouch.adapters.channels.base import OutboundSms
from techtouch.adapters.channels.twilio import TwilioChannel
from tests.fakes.twilio_api import (
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    DEFAULT_SERVICE_SID,
    FakeTwilio,
    max_in_window,
)


def serve(connection: Connection, validate: bool, latency: float) -> None:
    """The fake in a child process: sends its base URL, then its records when told to stop."""
    with FakeTwilio(validate=validate, latency=latency) as fake:
        connection.send(fake.base_url)
        connection.recv()
        connection.send((fake.accepted_at, list(fake.spec_errors)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mps", type=float, default=50.0)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--batch", type=int, default=0, help="messages per send() call (default: all)")
    parser.add_argument("--latency", type=float, default=0.15, help="seconds the fake takes to answer")
    parser.add_argument("--concurrency", type=int, default=None, help="default: the channel's own")
    parser.add_argument("--validate", action="store_true", help="validate every request against the spec")
    args = parser.parse_args(argv)

    now = datetime.now(UTC)
    messages = [
        OutboundSms(f"{i}:bench:sms", f"+1555{i:07d}", f"Hi #{i}, your renewal is coming up.", now)
        for i in range(args.messages + 1)
    ]
    ours, theirs = multiprocessing.Pipe()
    child = multiprocessing.get_context("spawn").Process(
        target=serve, args=(theirs, args.validate, args.latency), daemon=True
    )
    child.start()
    try:
        if not ours.poll(60):
            raise SystemExit("the fake Twilio did not start within 60 s")
        base_url = ours.recv()
        channel = TwilioChannel(
            DEFAULT_ACCOUNT_SID,
            DEFAULT_AUTH_TOKEN,
            messaging_service_sid=DEFAULT_SERVICE_SID,
            status_callback_url="https://hooks.techtouch.example/webhooks/twilio/status",
            base_url=base_url,
            mps=args.mps,
            concurrency=args.concurrency,
        )
        channel.send(messages[:1])  # warm-up (connection, the fake's lazy spec resolution); not measured
        dispatched: list[float] = []
        pace = channel.pacer.wait

        def recorded_wait() -> float:
            moment = pace()
            dispatched.append(moment)
            return moment

        channel.pacer.wait = recorded_wait  # type: ignore[method-assign]
        batch = args.batch or len(messages)
        started = time.perf_counter()
        receipts = []
        for start in range(1, len(messages), batch):
            receipts += channel.send(messages[start : start + batch])
        seconds = time.perf_counter() - started
        ours.send("stop")
        stamps, spec_errors = ours.recv()
    finally:
        child.join(timeout=10)
        if child.is_alive():
            child.terminate()
    stamps = stamps[1:]  # the warm-up message

    sent = sum(r.status == "sent" for r in receipts)
    span = stamps[-1] - stamps[0]
    achieved = (len(stamps) - 1) / span if span > 0 else float("inf")
    deviation = (achieved - args.mps) / args.mps * 100
    window_max = max_in_window(stamps)
    dispatch_max = max_in_window(dispatched)
    dispatch_rate = (len(dispatched) - 1) / (dispatched[-1] - dispatched[0])
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    within = abs(deviation) <= 5 and window_max <= args.mps and dispatch_max <= args.mps
    validation = "on (openapi-core, every request and 2xx response)" if args.validate else "off"
    print(f"twilio pacing: {len(receipts):,} messages at --mps {args.mps:g}, spec validation {validation}")
    print(
        f"  fake latency:         {args.latency * 1e3:.0f} ms; {channel.concurrency} requests in flight at most; "
        f"{batch if args.batch else 'one'} send() {'calls of' if args.batch else 'call'}"
        f"{' messages' if args.batch else ''}"
    )
    print(f"  sent:                 {sent:,} of {len(receipts):,}")
    print(f"  wall time:            {seconds:.2f} s")
    print(f"  achieved rate:        {achieved:.2f} msg/s (arrivals at the fake, first to last)")
    print(f"  deviation:            {deviation:+.2f} %")
    print(f"  dispatch rate:        {dispatch_rate:.2f} msg/s (the channel's own clock)")
    print(f"  max in any 1 s:       {window_max} at the fake, {dispatch_max} dispatched (limit {args.mps:g})")
    print(
        f"  gap min/median/max:   {min(gaps) * 1e3:.2f} / {statistics.median(gaps) * 1e3:.2f} / "
        f"{max(gaps) * 1e3:.2f} ms (slot {1e3 / args.mps:.2f} ms + 2 % headroom)"
    )
    print(f"  spec errors:          {len(spec_errors)}")
    print(f"  goal (±5 %, never above): {'met' if within and not spec_errors else 'MISSED'}")
    return 0 if within and sent == len(receipts) and not spec_errors else 1


if __name__ == "__main__":
    sys.exit(main())
