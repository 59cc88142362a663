"""The embedded channel: real messages written to files, nothing sent anywhere.

Emails become RFC 5322 `.eml` files (multipart/alternative: text, then HTML) that any mail client
opens: `<dir>/email/<safe key>.eml`. SMS become JSON lines in `<dir>/sms.jsonl`.

Exactly once across crashes: an `.eml` appears whole or not at all (written to a temporary file,
then linked into place, which never overwrites; each batch is flushed to disk before any receipt),
and a key that is already there is not written again. SMS lines are appended under an exclusive
lock and fsynced; a line torn by a crash is terminated and skipped, so its message is written
again on the rerun, and once only.
"""

from __future__ import annotations

import binascii
import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from datetime import datetime
from email.header import Header
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import IO, Any

from techtouch.adapters.channels.base import OutboundEmail, OutboundSms, Receipt

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: one process per outbox
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
# Headers the channel writes itself; a message's `headers` may not replace them.
_RESERVED = {
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "x-techtouch-key",
    "x-techtouch-send-at",
    "x-techtouch-categories",
    "x-techtouch-custom-args",
}


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def safe_key(key: str) -> str:
    """A file name stem for a key: the key itself when it is plain, else a cleaned prefix + a hash."""
    if not key:
        raise ValueError("a message needs a non-empty key")
    cleaned = _UNSAFE.sub("_", key)[:120]
    if cleaned == key:
        return key
    return f"{cleaned}-{_digest(key)[:12]}"


def _aware(moment: datetime, what: str = "send_at") -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got {moment.isoformat()}")
    return moment


def _header(value: str) -> str:
    """ASCII as is; anything else as RFC 2047 encoded words. A line break would inject a header."""
    if "\n" in value or "\r" in value:
        raise ValueError(f"header value {value!r} contains a line break")
    return value if value.isascii() else Header(value, "utf-8").encode()


def _address(name: str, address: str) -> str:
    if "\n" in name or "\r" in name or "\n" in address or "\r" in address:
        raise ValueError("an address contains a line break")
    return formataddr((name, address), charset="utf-8")


def _quoted_printable(text: str) -> bytes:
    body = binascii.b2a_qp(text.replace("\r\n", "\n").encode("utf-8"), istext=True)
    return body.replace(b"\n", b"\r\n")


def build_eml(message: OutboundEmail) -> bytes:
    """The message as RFC 5322 bytes (CRLF line ends, quoted-printable UTF-8 parts); deterministic.

    Written directly rather than through the `email` package's generator, which re-folds every
    header and cost 1-4 ms a message: on a launch day of tens of thousands of emails that was the
    whole delivery time. The tests parse every file back with the `email` package.
    """
    send_at = _aware(message.send_at)
    domain = message.from_email.rpartition("@")[2]
    if not domain:
        raise ValueError(f"from_email {message.from_email!r} has no domain")
    digest = _digest(message.key)
    boundary = f"==techtouch-{digest[:24]}=="
    headers = [
        ("From", _address(message.from_name, message.from_email)),
        ("To", _address(message.to_name, message.to_email)),
        ("Subject", _header(message.subject)),
        ("Date", format_datetime(send_at)),
        ("Message-ID", f"<tt.{digest[:32]}@{domain}>"),
        ("MIME-Version", "1.0"),
        ("Content-Type", f'multipart/alternative; boundary="{boundary}"'),
        ("X-Techtouch-Key", _header(message.key)),
        ("X-Techtouch-Send-At", send_at.isoformat()),
    ]
    if message.categories:
        headers.append(("X-Techtouch-Categories", _header(", ".join(message.categories))))
    if message.custom_args:
        headers.append(
            ("X-Techtouch-Custom-Args", _header(json.dumps(dict(message.custom_args), sort_keys=True)))
        )
    for name, value in message.headers.items():
        if name.lower() in _RESERVED or not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"header {name!r} is set by the channel, not by the message")
        headers.append((name, _header(value)))
    parts = [
        "\r\n".join(f"{name}: {value}" for name, value in headers).encode("ascii"),
        b"\r\n\r\n",
    ]
    for subtype, body in (("plain", message.text), ("html", message.html)):
        parts += [
            f'--{boundary}\r\nContent-Type: text/{subtype}; charset="utf-8"\r\n'.encode(),
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n",
            _quoted_printable(body),
            b"\r\n",
        ]
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts)


_HEADER_NAME = re.compile(r"[A-Za-z0-9-]+")


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can open a directory
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_once(path: Path, data: bytes) -> bool:
    """Put `data` at `path` atomically unless a file is already there; True when this call wrote it."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        try:
            os.link(temporary, path)  # atomic and never overwrites: a concurrent writer keeps its file
        except FileExistsError:
            return False
        except OSError:  # a filesystem without hard links
            if path.exists():
                return False
            os.replace(temporary, path)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


class OutboxEmailChannel:
    """Writes each email as `<directory>/email/<safe key>.eml`; a key already written is not rewritten."""

    name = "outbox"
    reconcile_is_authoritative = True  # the file is the delivery

    def can_schedule(self, send_at: datetime, now: datetime) -> bool:
        """Never: a file is written at once, so the outbox only gets what is due."""
        return False

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.email_dir = self.directory / "email"

    def __repr__(self) -> str:
        return f"OutboxEmailChannel({str(self.directory)!r})"

    def path_for(self, key: str) -> Path:
        return self.email_dir / f"{safe_key(key)}.eml"

    def send(self, batch: Sequence[OutboundEmail]) -> list[Receipt]:
        if not batch:
            return []
        self.email_dir.mkdir(parents=True, exist_ok=True)
        receipts = [self._send_one(message) for message in batch]
        # Durable before any receipt says "sent": one flush per batch, not two fsyncs per file.
        os.sync()
        _fsync_directory(self.email_dir)
        return receipts

    def _send_one(self, message: OutboundEmail) -> Receipt:
        try:
            path = self.path_for(message.key)
            if not path.exists() and not _write_once(path, build_eml(message)):
                logger.info("outbox: %s was written concurrently; keeping that copy", path.name)
        except (OSError, ValueError, TypeError) as exc:
            logger.warning("outbox: email %s not written: %s", message.key, exc)
            return Receipt(message.key, "failed", error=f"{type(exc).__name__}: {exc}")
        return Receipt(message.key, "sent", provider_id=path.name)

    def reconcile(self, batch: Sequence[OutboundEmail], since: datetime) -> dict[str, Receipt]:
        found = {}
        for message in batch:
            path = self.path_for(message.key)
            if path.is_file():
                found[message.key] = Receipt(message.key, "sent", provider_id=path.name)
        return found


class OutboxSmsChannel:
    """Appends each SMS as one JSON line {key, to, body, send_at} to `<directory>/sms.jsonl`."""

    name = "outbox"
    reconcile_is_authoritative = True  # the file is the delivery

    def can_schedule(self, send_at: datetime, now: datetime) -> bool:
        """Never: a file is written at once, so the outbox only gets what is due."""
        return False

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.path = self.directory / "sms.jsonl"
        self._lines: dict[str, int] = {}  # key -> 1-based line number
        self._offset = 0  # bytes of the file already indexed (whole lines only)
        self._line_count = 0

    def __repr__(self) -> str:
        return f"OutboxSmsChannel({str(self.path)!r})"

    def send(self, batch: Sequence[OutboundSms]) -> list[Receipt]:
        if not batch:
            return []
        self.directory.mkdir(parents=True, exist_ok=True)
        receipts: dict[int, Receipt] = {}
        pending: list[tuple[int, OutboundSms, bytes]] = []
        pending_keys: set[str] = set()
        with self._locked("a+b") as handle:
            if self._index(handle):
                handle.write(b"\n")  # terminate a line torn by a crash; it is skipped as invalid
                self._index(handle)
            for position, message in enumerate(batch):
                if message.key in self._lines or message.key in pending_keys:
                    continue
                try:
                    pending.append((position, message, _sms_line(message)))
                    pending_keys.add(message.key)
                except (ValueError, TypeError) as exc:
                    logger.warning("outbox: sms %s not written: %s", message.key, exc)
                    receipts[position] = Receipt(message.key, "failed", error=f"{type(exc).__name__}: {exc}")
            error = "not found in the outbox after writing"
            if pending:
                try:
                    handle.write(b"".join(line for _, _, line in pending))
                    handle.flush()
                    os.fsync(handle.fileno())
                except OSError as exc:  # e.g. a full disk: whatever made it in whole counts as sent
                    logger.warning("outbox: sms not all written: %s", exc)
                    error = f"OSError: {exc}"
                self._index(handle)
        for position, message in enumerate(batch):
            if position not in receipts:
                receipts[position] = self._receipt(message.key) or Receipt(message.key, "failed", error=error)
        return [receipts[position] for position in range(len(batch))]

    def reconcile(self, batch: Sequence[OutboundSms], since: datetime) -> dict[str, Receipt]:
        if not self.path.exists():
            return {}
        with self._locked("rb") as handle:
            self._index(handle)
        found = {}
        for message in batch:
            receipt = self._receipt(message.key)
            if receipt is not None:
                found[message.key] = receipt
        return found

    def _receipt(self, key: str) -> Receipt | None:
        line = self._lines.get(key)
        return None if line is None else Receipt(key, "sent", provider_id=f"{self.path.name}:{line}")

    @contextlib.contextmanager
    def _locked(self, mode: str) -> Iterator[IO[bytes]]:
        with open(self.path, mode) as handle:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX if "a" in mode else fcntl.LOCK_SH)
            yield handle  # the lock goes with the file descriptor on close

    def _index(self, handle: IO[bytes]) -> bool:
        """Read whole lines added since the last read (by anyone); True when the file ends mid-line."""
        if os.fstat(handle.fileno()).st_size < self._offset:  # the file was replaced: start over
            self._lines, self._offset, self._line_count = {}, 0, 0
        handle.seek(self._offset)
        data = handle.read()
        complete, newline, torn = data.rpartition(b"\n")
        if newline:
            for raw in complete.split(b"\n"):
                self._line_count += 1
                key = _key_of(raw)
                if key is None:
                    logger.warning(
                        "outbox: %s:%d is not a message line; skipped", self.path, self._line_count
                    )
                else:
                    self._lines.setdefault(key, self._line_count)
            self._offset += len(complete) + 1
        handle.seek(0, os.SEEK_END)
        return bool(torn)


def _sms_line(message: OutboundSms) -> bytes:
    if not message.key:
        raise ValueError("a message needs a non-empty key")
    if not message.to_phone:
        raise ValueError("an SMS needs a phone number")
    record: dict[str, Any] = {
        "key": message.key,
        "to": message.to_phone,
        "body": message.body,
        "send_at": _aware(message.send_at).isoformat(),
    }
    return json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n"


def _key_of(raw: bytes) -> str | None:
    try:
        record = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    key = record.get("key") if isinstance(record, dict) else None
    return key if isinstance(key, str) and key else None
