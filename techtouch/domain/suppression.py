"""The one suppression rule: when a contact may not be reached on a channel.

Decided once here and used by the CSV importer and the webhook path alike:

* email: an unsubscribe, bounce or spam report suppresses for good (until the person
  re-subscribes from the preferences page);
* SMS: the latest of STOP and START wins, and **on a tie the opt-out wins** — two events at the
  same instant (a CSV with second resolution, a replayed webhook) never contact someone who said
  STOP. A START lifts only an `sms_stop` suppression (a STOP texted in, or Twilio's error 21610,
  which reports one) that began strictly before it; other SMS suppressions stay.
"""

from __future__ import annotations

from datetime import datetime

SMS_STOP = "sms_stop"
SMS_START = "sms_start"


def sms_opted_out(stop_at: datetime | None, start_at: datetime | None) -> bool:
    """After a STOP at `stop_at` and a START at `start_at` (either may be missing): suppressed?"""
    if stop_at is None:
        return False
    return start_at is None or not start_lifts(stop_at, start_at)


def start_lifts(stop_since: datetime, start_at: datetime) -> bool:
    """Does a START at `start_at` lift an `sms_stop` suppression that began at `stop_since`?"""
    return stop_since < start_at
