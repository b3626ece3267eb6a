"""``python -m benchmarks.shifted <offset seconds> <crmbot arguments...>``: ``crmbot`` on a clock moved by
``offset`` (time.time() + offset), for the fan-out section (benchmarks/fanout.py).

The pass runs at the quarter's kickoff (2026-04-01 10:00 JST) on a clock that moves in real time; the
worker must see the same instant, as it would in production where both read one real clock: a job's
recovery mark is written at the pass's now + the lease, and a worker on the machine's real clock (months
later) would find every mark long due and claim the multicasts while the pass was still claiming their
users, instead of when the pass wakes them. ``time.time`` is replaced before the bot is imported, so
every default clock (``clock=time.time``) reads the moved one.
"""

from __future__ import annotations

import sys
import time


def main() -> int:
    offset = float(sys.argv[1])
    real = time.time
    time.time = lambda: real() + offset  # type: ignore[assignment]
    from bot.cli import main as crmbot

    return int(crmbot(sys.argv[2:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
