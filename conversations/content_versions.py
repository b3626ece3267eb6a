"""Content versions without a deploy: diagnosis content files uploaded in the console, checked, previewed,
published, and rolled back, every process speaking the one in use.

**Upload.** :func:`check` runs exactly the start-up checks (:func:`conversations.content.parse_script` for the
deployment's locale, on the file's UTF-8 text) and gives a :class:`Problem` naming the **line** and the
field: a TOML syntax error carries its line; for a field error the key's line is found in the text
(:func:`locate`: the key itself, else the nearest table or key above it that exists). A file that passes
becomes a **draft** (``crmbot:{content}:draft:<id>``, a week), its text stored under its content version for
the worker (``crmbot:{content}:<version>``, with the same expiry until it is published). The try page runs a
draft for its own test user only (the label ``d:<id>``, :meth:`ContentVersions.script_of`).

**Publish.** One Lua script stores the version's text (no expiry), names it (``v1``, ``v2``... the same
text keeps its label), records who published it first and when, and makes it the one in use
(``crmbot:{content}:active``: label, by, at). Rolling back is publishing an earlier label again
(:meth:`ContentVersions.activate`); the label ``""`` is the file deployed with the code.

**In use.** :meth:`ContentVersions.active` reads the pointer at most once per ``ttl`` seconds (5) per process;
a version's script is parsed once and kept (a published text never changes). A new diagnosis records the
label it runs in ``Conv.ver`` (:func:`step_label`, called by the core) and keeps it to its end; a version
Redis lacks or the running code no longer accepts falls back to the deployed file (logged once).

**A deploy** does not change what is in use: a published version stays the text until an admin publishes
another or chooses the deployed file on the console's content page. With no version published (or after
"use the deployed file"), the deployed file is the text, as before versions existed.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from conversations import keys
from conversations.content import Script, from_stored, parse_script, stored
from conversations.errors import ContentError, InvalidInput
from conversations.machine import Conv
from conversations.redis_ops import runner, text

log = logging.getLogger(__name__)

ACTIVE_TTL = 5.0  # seconds a process keeps the pointer to the version in use before reading it again
DRAFT_TTL = 7 * 86400  # an upload not published is forgotten after a week
MAX_UPLOAD = 512 * 1024  # bytes: a content file is ~60 KB
DRAFT_PREFIX = "d:"  # Conv.ver of a diagnosis run in the try page's preview of a draft
KEPT = 16  # scripts kept parsed per process

# KEYS: content(version), CONTENT_LABELS, CONTENT_PUBLISHED, CONTENT_SEQ, CONTENT_ACTIVE
# ARGV: version, stored text (JSON), by, at, locale
# Stores the text without expiry, gives the version its label (a new one: "v" .. INCR seq; the same text
# keeps its label and first publisher), and points the active version at it. Returns {label, new (0|1)}.
PUBLISH_LUA = """
redis.call('SET', KEYS[1], ARGV[2])
local label = redis.call('HGET', KEYS[2], ARGV[1])
local new = 0
if not label then
  label = 'v' .. redis.call('INCR', KEYS[4])
  redis.call('HSET', KEYS[2], ARGV[1], label)
  redis.call('HSET', KEYS[3], label, cjson.encode({version=ARGV[1], by=ARGV[3], at=ARGV[4], locale=ARGV[5]}))
  new = 1
end
redis.call('SET', KEYS[5], cjson.encode({label=label, by=ARGV[3], at=ARGV[4]}))
return {label, new}
"""

# KEYS: CONTENT_PUBLISHED, CONTENT_ACTIVE    ARGV: label ("" the deployed file), by, at
# Points the active version at a published label (or the deployed file). Returns 1, or 0 for an unknown label.
ACTIVATE_LUA = """
if ARGV[1] ~= '' and redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  return 0
end
redis.call('SET', KEYS[2], cjson.encode({label=ARGV[1], by=ARGV[2], at=ARGV[3]}))
return 1
"""


# KEYS: content(version), content_draft(id)    ARGV: stored text (JSON), the draft (JSON), seconds to keep
# The draft and its text (for the worker: the try page's replies), both or neither. A text already stored
# (published, or the deployed file's) is left as it is.
DRAFT_LUA = """
redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[3])
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
return 1
"""


@dataclass(frozen=True)
class Problem:
    """Why an upload was refused: the field (as the start-up check names it), the file's line (None when the
    text has no line for it), and what is wrong."""

    field: str
    problem: str
    line: int | None = None


@dataclass(frozen=True)
class Published:
    label: str
    version: str  # the content version (a hash of the text)
    by: str  # who published it first
    at: float
    locale: str


@dataclass(frozen=True)
class Active:
    label: str  # "" the deployed file
    by: str
    at: float


@dataclass(frozen=True)
class Draft:
    id: str
    script: Script
    by: str
    at: float

    @property
    def label(self) -> str:
        return DRAFT_PREFIX + self.id


# ---- checking an upload -------------------------------------------------------------------------------

_SYNTAX_LINE = re.compile(r"at line (\d+)")
_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\[\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=""")
_INDEX = re.compile(r"\[\d+\]$")


def _segments(dotted: str) -> list[str]:
    return [s.strip().strip("\"'") for s in re.findall(r"""\s*("[^"]*"|'[^']*'|[^.]+)\s*\.?""", dotted)]


def _lines_of_fields(source: str) -> dict[str, int]:
    """Each table, array entry and key of a TOML text, named as the content checks name fields
    (``questions[3].choices.B``, ``tiers.A.summary[2].about``), with the line it starts on (1-based)."""
    found: dict[str, int] = {}
    current: dict[str, str] = {}  # an array of tables' plain name -> its current entry's field name
    counts: dict[str, int] = {}
    table = ""
    in_string = ""
    for n, line in enumerate(source.splitlines(), start=1):
        if in_string:
            if line.count(in_string) % 2 == 1:
                in_string = ""
            continue
        if m := _HEADER.match(line):
            segs = _segments(m.group(2))
            resolved, plain = "", ""
            for seg in segs[:-1]:
                plain = f"{plain}.{seg}" if plain else seg
                resolved = current.get(plain, f"{resolved}.{seg}" if resolved else seg)
            plain = f"{plain}.{segs[-1]}" if plain else segs[-1]
            table = f"{resolved}.{segs[-1]}" if resolved else segs[-1]
            if m.group(1) == "[[":
                counts[table] = counts.get(table, 0) + 1
                table = current[plain] = f"{table}[{counts[table]}]"
                for stale in [p for p in current if p.startswith(plain + ".")]:
                    del current[stale]
            found.setdefault(table, n)
            continue
        if m := _KEY.match(line):
            name = ".".join(_segments(m.group(1)))
            found.setdefault(f"{table}.{name}" if table else name, n)
            rest = line[m.end():]
            for quote in ('"""', "'''"):
                if rest.count(quote) % 2 == 1:
                    in_string = quote
    return found


def locate(source: str, field: str) -> int | None:
    """The line of ``field`` in the text, or of the nearest part above it that is there (a missing key:
    its table's line); None when nothing of it is."""
    found = _lines_of_fields(source)
    name = field
    while name:
        if name in found:
            return found[name]
        if _INDEX.search(name):
            name = _INDEX.sub("", name)
        elif "." in name:
            name = name.rsplit(".", 1)[0]
        else:
            break
    return None


def check(raw: bytes, locale: str) -> Script | Problem:
    """An uploaded file checked exactly as start-up checks the deployed one: the script, or the problem."""
    try:
        source = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return Problem("(file)", f"not valid TOML: {e}")
    try:
        return parse_script(source, locale, "upload")
    except ContentError as e:
        if e.field == "(file)":
            m = _SYNTAX_LINE.search(e.problem)
            return Problem(e.field, e.problem, int(m.group(1)) if m else None)
        return Problem(e.field, e.problem, locate(source, e.field))


# ---- which version a step speaks ------------------------------------------------------------------------


def step_label(before: Conv, after: Conv | None, *, ongoing: bool, start: str) -> tuple[Conv | None, str]:
    """The record a step stores, with ``ver`` set when the step began a diagnosis (to ``start``: the version
    in use, or the try page's draft), and the label its outputs are said in: the diagnosis' own while one is
    under way (``ongoing``: not expired) or finishing, else ``start``."""
    if after is not None and after.sid != before.sid:
        return replace(after, ver=start), start
    return after, before.ver if ongoing else start


# ---- the versions -----------------------------------------------------------------------------------------


class ContentVersions:
    """The content versions in Redis, and the script of each, for one process (see the module's doc)."""

    def __init__(self, client: Any, deployed: Script, *, ttl: float = ACTIVE_TTL,
                 ticker: Callable[[], float] = time.monotonic) -> None:
        self.r = runner(client)
        self.deployed = deployed
        self.ttl = ttl
        self.ticker = ticker
        self._active: tuple[float, str] | None = None  # (when read, label)
        self._scripts: dict[str, Script] = {}
        self._failed: set[str] = set()

    # ---- in use

    def active(self) -> tuple[str, Script]:
        """The label in use ("" the deployed file, also when the one published cannot be used) and its script;
        the pointer is read at most every ``ttl``."""
        now = self.ticker()
        if self._active is None or now - self._active[0] >= self.ttl:
            self._active = (now, self._read_active().label)
        label = self._active[1]
        script = self.script_of(label)
        if script is self.deployed:  # a version Redis lacks or this code refuses: new diagnoses say so ("")
            return "", script
        return label, script

    def _read_active(self) -> Active:
        raw = self.r.get(keys.CONTENT_ACTIVE)
        if raw is None:
            return Active("", "", 0.0)
        d = json.loads(raw)
        return Active(str(d.get("label") or ""), str(d.get("by") or ""), float(d.get("at") or 0))

    def current(self) -> Active:
        """The pointer as Redis has it now (the console's page)."""
        return self._read_active()

    def script_of(self, label: str) -> Script:
        """The script of a label: "" the deployed file; ``vN`` a published version; ``d:<id>`` a draft. One
        Redis lacks, or the running code refuses, is the deployed file (logged once)."""
        if not label:
            return self.deployed
        if (found := self._scripts.get(label)) is not None:
            return found
        if label in self._failed:
            return self.deployed
        try:
            found = self._load(label)
        except ContentError as e:
            found = None
            why = str(e)
        else:
            why = "not in Redis"
        if found is None:
            self._failed.add(label)
            log.warning("content version %s: %s; the deployed file is used instead", label[:24], why[:200])
            return self.deployed
        if len(self._scripts) >= KEPT:
            self._scripts.pop(next(iter(self._scripts)))
        self._scripts[label] = found
        return found

    def _load(self, label: str) -> Script | None:
        if label.startswith(DRAFT_PREFIX):
            draft = self.draft(label[len(DRAFT_PREFIX):])
            return draft.script if draft is not None else None
        meta = self.r.hget(keys.CONTENT_PUBLISHED, label)
        if meta is None:
            return None
        version = str(json.loads(meta)["version"])
        raw = self.r.get(keys.content(version))
        return None if raw is None else from_stored(version, raw)

    # ---- drafts

    def upload(self, raw: bytes, *, by: str, now: float) -> Draft | Problem:
        """Check an uploaded file; one that passes becomes a draft (nothing else changes)."""
        if len(raw) > MAX_UPLOAD:
            return Problem("(file)", f"{len(raw)} bytes; at most {MAX_UPLOAD} allowed")
        got = check(raw, self.deployed.locale)
        if isinstance(got, Problem):
            return got
        draft_id = secrets.token_hex(8)
        body = json.dumps({"version": got.version, "by": by, "at": now}, separators=(",", ":"))
        self.r.script(DRAFT_LUA)(keys=[keys.content(got.version), keys.content_draft(draft_id)],
                                 args=[stored(got), body, DRAFT_TTL])
        return Draft(draft_id, got, by, now)

    def draft(self, draft_id: str) -> Draft | None:
        """A draft not yet forgotten (None: unknown, expired, or its text gone)."""
        try:
            key = keys.content_draft(draft_id)
        except InvalidInput:
            return None
        raw = self.r.get(key)
        if raw is None:
            return None
        d = json.loads(raw)
        text_raw = self.r.get(keys.content(str(d["version"])))
        if text_raw is None:
            return None
        try:
            script = from_stored(str(d["version"]), text_raw)
        except ContentError:
            return None
        return Draft(draft_id, script, str(d.get("by") or ""), float(d.get("at") or 0))

    # ---- publishing

    def publish(self, draft: Draft, *, by: str, now: float) -> tuple[str, bool]:
        """Make a draft the version in use: (its label, whether the label is new)."""
        s = draft.script
        label, new = self.r.script(PUBLISH_LUA)(
            keys=[keys.content(s.version), keys.CONTENT_LABELS, keys.CONTENT_PUBLISHED, keys.CONTENT_SEQ,
                  keys.CONTENT_ACTIVE],
            args=[s.version, stored(s), by, repr(now), s.locale])
        label = text(label)
        self._scripts[label] = s
        self._active = (self.ticker(), label)
        return label, bool(int(new))

    def activate(self, label: str, *, by: str, now: float) -> bool:
        """Publish an earlier version again (or ``""``: the deployed file); False for an unknown label."""
        ok = bool(self.r.script(ACTIVATE_LUA)(keys=[keys.CONTENT_PUBLISHED, keys.CONTENT_ACTIVE],
                                              args=[label, by, repr(now)]))
        if ok:
            self._active = (self.ticker(), label)
        return ok

    def published(self) -> list[Published]:
        """Every published version, the newest first."""
        out = []
        for label, raw in self.r.hgetall(keys.CONTENT_PUBLISHED).items():
            d = json.loads(raw)
            out.append(Published(text(label), str(d["version"]), str(d.get("by") or ""), float(d.get("at") or 0),
                                 str(d.get("locale") or "")))
        return sorted(out, key=lambda p: int(p.label[1:]) if p.label[1:].isdigit() else 0, reverse=True)
