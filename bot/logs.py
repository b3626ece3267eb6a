"""Logging: one handler on stderr for every logger (ours, Bolt's, waitress's), one line per record.

User IDs appear in logs only as a short hash (:func:`uid`). Whatever a message carries, the handler's
formatter (:class:`LineFormatter`) keeps it on its own line: CR, LF and every other control character
are escaped, so attacker text passed as ``%s`` cannot forge a log line, and any ``body: ...`` part of a
message is cut (slack_bolt logs "Invalid request signature detected (signature: ..., timestamp: ...,
body: <the raw request>)" at INFO). So our own lines about a refused body give their reason before
any such part and never write "body: " themselves ("line webhook: malformed body (JSONDecodeError),
refused"), or the cut would take the reason with it. A traceback keeps its lines, each indented with ``  | `` so that
none of them can pass for a record.

``CRMBOT_LOG_FORMAT=json`` (:class:`JsonFormatter`): one JSON object per line instead
(``{"time", "level", "logger", "message", "exc"}``), its message cleaned the same way and a traceback
in ``exc``, for a log shipper that reads JSON.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import TextIO

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REDACTED = "body: [not logged]"

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_BUT_LF = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_BODY = re.compile(r"\bbody: .*", re.IGNORECASE | re.DOTALL)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def uid(user_id: str) -> str:
    """A short, stable, non-reversible tag for a user ID (for log lines)."""
    return "u#" + hashlib.sha256(user_id.encode()).hexdigest()[:10]


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return _NAMED.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


def one_line(text: str) -> str:
    """``text`` with CR, LF, the other C0/C1 control characters and U+2028/U+2029 escaped."""
    return _CONTROL.sub(_escape, text)


def clean(message: str) -> str:
    """A log message made safe: a ``body: ...`` tail redacted, then :func:`one_line`."""
    return one_line(_BODY.sub(REDACTED, message))


class LineFormatter(logging.Formatter):
    """The usual ``time level name: message`` line, with the message :func:`clean`-ed."""

    def format(self, record: logging.LogRecord) -> str:
        record.message = clean(record.getMessage())
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        text = one_line(self.formatMessage(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        blocks = [record.exc_text] if record.exc_text else []
        if record.stack_info:
            blocks.append(self.formatStack(record.stack_info))
        for block in blocks:
            text += "".join("\n  | " + _CONTROL_BUT_LF.sub(_escape, line) for line in block.split("\n"))
        return text


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line: the message :func:`clean`-ed, a traceback (its control
    characters escaped as :class:`LineFormatter` does; JSON escapes the line breaks) in ``exc``."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": clean(record.getMessage()),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        blocks = [record.exc_text] if record.exc_text else []
        if record.stack_info:
            blocks.append(self.formatStack(record.stack_info))
        if blocks:
            entry["exc"] = _CONTROL_BUT_LF.sub(_escape, "\n".join(blocks))
        return json.dumps(entry, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (tests swap it)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def setup(level: str = "INFO", fmt: str = "text") -> None:
    """The process's logging: our stderr handler on the root logger (replacing one an earlier call
    installed), so every library's records take the same format and the same cleaning. ``fmt``: ``text``
    (:class:`LineFormatter`) or ``json`` (:class:`JsonFormatter`)."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)
    handler = _StderrHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else LineFormatter(FORMAT))
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
