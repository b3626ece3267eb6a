"""The console's sessions, kept in Redis: the cookie carries only a random id.

A signed cookie cannot be taken back: a copy made before a logout kept working, and every use signed it
into a new lifetime. Here the record is the session, so:

* **Logout** deletes the record: a copied cookie opens nothing afterwards.
* **A changed password** ends every session: a logged-in record holds the fingerprint of the password it
  logged in with, and one that no longer matches is deleted when next seen.
* **Idle lifetime** (``CRMBOT_CONSOLE_IDLE_HOURS``, 12 h): a session unused that long has ended. Each use
  refreshes it, at most once a minute (so a busy page costs one write a minute, not one per request).
* **Absolute lifetime** (``CRMBOT_CONSOLE_SESSION_DAYS``, 7 days) from the login, never extended: after it
  the operator logs in again, however busy the session was.
* A session that has not logged in (it carries the login form's CSRF token) lives an hour at most.
* **An operator's sessions** are listed (each record holds its operator's id and the client's address
  beside its creation and last use; a sorted set per operator names them by digest) and revocable: a
  revoked record is deleted, so its cookie opens nothing at its next request.

The cookie (``crmbot_console``: HttpOnly, SameSite=Lax, Path=/console, Secure when the request came over
HTTPS) is set once, when a session is made, with the session's absolute lifetime as Max-Age, and never
again while it lasts; the login makes a new session with a new id (an id known before the login is worth
nothing after it). Redis holds only the id's SHA-256 (:func:`bot.console.keys.session`).

Time is the app's injected clock. Redis' own expiry (set to the same instant) only clears records nobody
comes back for. Writes never bring back a record that a logout or an expiry removed meanwhile (a Lua
script writes only to a record that still exists).

A Redis error while reading the session leaves the request an empty session marked ``unavailable``: the
console's guards answer 503 (:func:`bot.console.auth.logged_in` raises :class:`StoreUnavailable`); one
while saving turns the answer into the same 503 (``on_unavailable``): never a 500, never a login that
did not happen.

Why not Flask-Session: it has no absolute lifetime, no injected clock, no "write only to a live record"
(a request finishing after the logout would write the session back), and it sets the cookie again on
every request.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flask import Flask, Request, Response, request
from flask.json.tag import TaggedJSONSerializer
from flask.sessions import SecureCookieSession, SessionInterface, SessionMixin

from bot.console import keys
from conversations.errors import StoreUnavailable
from conversations.redis_ops import runner, text

SESSION_ID = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)
TOUCH_EVERY = 60.0  # seconds: a session's last use is written at most this often
PRELOGIN = 3600.0  # seconds: a session that has not logged in (the login form's CSRF token) lives this long

_serializer = TaggedJSONSerializer()  # as Flask's own sessions: flashes are tuples

# KEYS[1] a session. ARGV[1] its last use ('' to leave it), ARGV[2] its new expiry in ms (with ARGV[1]),
# ARGV[3] its data ('' to leave it). Writes only to a session that still exists. Returns 1, or 0 if gone.
_WRITE_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] ~= '' then
  redis.call('HSET', KEYS[1], 'seen', ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'data', ARGV[3]) end
return 1
"""


@dataclass(frozen=True)
class SessionInfo:
    """One of an operator's sessions, as their list shows it."""
    digest: str  # names it (revoke by it); never the id
    created: float
    seen: float
    addr: str


@dataclass(frozen=True)
class Lifetimes:
    idle: float  # seconds without use
    absolute: float  # seconds from the login
    prelogin: float = PRELOGIN

    def of(self, logged_in: bool) -> tuple[float, float]:
        """(idle, absolute) for a logged-in session, or for one that is not."""
        if logged_in:
            return self.idle, self.absolute
        return min(self.idle, self.prelogin), self.prelogin


class ConsoleSession(SecureCookieSession):
    """Flask's session dict, with what the store needs to save it."""

    def __init__(self, initial: Mapping[str, Any] | None = None, *, sid: str | None = None,
                 created: float = 0.0, unavailable: bool = False, stale_cookie: bool = False) -> None:
        super().__init__(initial)
        self.sid = sid  # None: not stored yet
        self.meta: dict[str, str] = {}  # written beside a new record: "op" (an operator's id), "addr"
        self.created = created
        self.unavailable = unavailable  # Redis did not answer: the guards answer 503
        self.stale_cookie = stale_cookie  # the browser sent an id that opens nothing: its cookie is removed
        self.renew = False

    def regenerate(self) -> None:
        """Save under a new id, as a new session (the login): the old id and its record are dropped."""
        self.renew = True


class SessionStore:
    """The session records. ``proof_field`` is the session key whose value proves a login, and
    ``fingerprint`` the value it must have (a fingerprint of the current password)."""

    def __init__(self, client: Any, clock: Callable[[], float], lifetimes: Lifetimes, *, proof_field: str,
                 fingerprint: str) -> None:
        self.r = runner(client)
        self.clock = clock
        self.lifetimes = lifetimes
        self.proof_field = proof_field
        self.fingerprint = fingerprint
        self._write = self.r.script(_WRITE_LUA)

    def _logged_in(self, data: Mapping[str, Any]) -> bool:
        return self.proof_field in data

    def load(self, sid: str) -> tuple[dict[str, Any], float] | None:
        """The session's data and when it was made, or None when it does not exist or has ended (ended:
        deleted now). Refreshes its last use when that is more than a minute old."""
        key = keys.session(sid)
        raw = self.r.hgetall(key)
        if not raw:
            return None
        record = {text(k): text(v) for k, v in raw.items()}
        now = self.clock()
        try:
            data = _serializer.loads(record["data"])
            created, seen = float(record["created"]), float(record["seen"])
            if not isinstance(data, dict):
                raise TypeError("data")
        except (KeyError, ValueError, TypeError):
            self.end(sid)  # half a record (a write racing an expiry): nothing to trust
            return None
        proof = data.get(self.proof_field)
        if proof is not None and not hmac.compare_digest(str(proof), self.fingerprint):
            self.end(sid)  # the password changed since this login
            return None
        idle, absolute = self.lifetimes.of(proof is not None)
        ends = min(seen + idle, created + absolute)
        if now >= ends:
            self.end(sid)
            return None
        if now - seen >= TOUCH_EVERY:
            ends = min(now + idle, created + absolute)
            self._write(keys=[key], args=[repr(now), _ms(ends - now), ""])
        return data, created

    def create(self, data: Mapping[str, Any], replacing: str | None = None,
               meta: Mapping[str, str] | None = None) -> tuple[str, float]:
        """Store ``data`` as a new session (dropping ``replacing``); returns its id and lifetime (s). ``meta``:
        ``op`` (the operator it logs in: listed among theirs) and ``addr`` (the client's address)."""
        sid = secrets.token_urlsafe(32)
        now = self.clock()
        idle, absolute = self.lifetimes.of(self._logged_in(data))
        meta = dict(meta or {})
        with self.r.pipeline(transaction=True) as p:
            p.hset(keys.session(sid), mapping={"data": _serializer.dumps(dict(data)), "created": repr(now),
                                               "seen": repr(now), **meta})
            p.pexpire(keys.session(sid), _ms(min(idle, absolute)))
            if replacing is not None:
                p.delete(keys.session(replacing))
            if meta.get("op"):
                index = keys.operator_sessions(meta["op"])
                p.zremrangebyscore(index, "-inf", f"({now - self.lifetimes.absolute!r}")  # ended long ago
                p.zadd(index, {keys.session_digest(sid): now})
                p.expire(index, int(self.lifetimes.absolute) + 60)
            p.execute()
        return sid, absolute

    def of_operator(self, operator_id: str) -> list[SessionInfo]:
        """The operator's sessions still alive, newest first."""
        index = keys.operator_sessions(operator_id)
        digests = [text(d) for d in self.r.zrevrange(index, 0, 199)]
        if not digests:
            return []
        with self.r.pipeline(transaction=False) as p:
            for digest in digests:
                p.hmget(keys.session_by_digest(digest), "created", "seen", "addr", "op")
            rows = p.execute()
        now = self.clock()
        found, gone = [], []
        for digest, (created, seen, addr, op) in zip(digests, rows, strict=True):
            if created is None or seen is None or op is None or text(op) != operator_id:
                gone.append(digest)
                continue
            c, s = float(text(created)), float(text(seen))
            if now >= min(s + self.lifetimes.idle, c + self.lifetimes.absolute):
                gone.append(digest)
                continue
            found.append(SessionInfo(digest, c, s, text(addr) if addr else ""))
        if gone:
            self.r.zrem(index, *gone)
        return found

    def revoke(self, operator_id: str, digest: str) -> bool:
        """End one of the operator's sessions (by its digest): True if it was theirs and alive."""
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            return False
        index = keys.operator_sessions(operator_id)
        if self.r.zscore(index, digest) is None:
            return False
        with self.r.pipeline(transaction=True) as p:
            p.delete(keys.session_by_digest(digest))
            p.zrem(index, digest)
            deleted, _ = p.execute()
        return bool(deleted)

    def end_digests(self, digests: list[str]) -> None:
        """End sessions named by digest (a removed operator's)."""
        if digests:
            self.r.delete(*(keys.session_by_digest(d) for d in digests))

    def update(self, sid: str, data: Mapping[str, Any]) -> bool:
        """Write the session's data, if the session still exists (False: it has ended meanwhile)."""
        return bool(self._write(keys=[keys.session(sid)], args=["", "", _serializer.dumps(dict(data))]))

    def end(self, sid: str) -> None:
        self.r.delete(keys.session(sid))


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class RedisSessions(SessionInterface):
    """Flask's session interface over :class:`SessionStore`. Only requests under the cookie's path
    (``/console``) read a session: a cookie sent anywhere else costs nothing. ``on_unavailable(response)``
    turns an answer into a 503 when a session could not be saved."""

    def __init__(self, store: SessionStore, on_unavailable: Callable[[Response], None]) -> None:
        self.store = store
        self.on_unavailable = on_unavailable

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(request) and request.is_secure  # HTTPS, as the WSGI server says (see bot.web)

    def open_session(self, app: Flask, request: Request) -> SessionMixin:
        path = self.get_cookie_path(app).rstrip("/")
        if not (request.path == path or request.path.startswith(path + "/")):
            return ConsoleSession()
        raw = request.cookies.get(self.get_cookie_name(app))
        if raw is None:
            return ConsoleSession()
        if not SESSION_ID.fullmatch(raw):
            return ConsoleSession(stale_cookie=True)
        try:
            found = self.store.load(raw)
        except StoreUnavailable:
            return ConsoleSession(unavailable=True)
        if found is None:
            return ConsoleSession(stale_cookie=True)
        data, created = found
        return ConsoleSession(data, sid=raw, created=created)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if not isinstance(session, ConsoleSession) or session.unavailable:
            return
        if session.accessed:
            response.vary.add("Cookie")
        try:
            self._save(app, session, response)
        except StoreUnavailable:
            self.on_unavailable(response)

    def _save(self, app: Flask, session: ConsoleSession, response: Response) -> None:
        name = self.get_cookie_name(app)
        cookie: dict[str, Any] = {
            "domain": self.get_cookie_domain(app), "path": self.get_cookie_path(app),
            "secure": self.get_cookie_secure(app), "httponly": self.get_cookie_httponly(app),
            "samesite": self.get_cookie_samesite(app),
        }
        if not session:  # cleared (the logout), or never used
            if session.sid is not None:
                self.store.end(session.sid)
            if session.sid is not None or session.stale_cookie:
                response.delete_cookie(name, **cookie)
            return
        if session.sid is None or session.renew:
            sid, lifetime = self.store.create(session, replacing=session.sid, meta=session.meta)
            response.set_cookie(name, sid, max_age=int(lifetime), **cookie)
            return
        if session.modified and not self.store.update(session.sid, session):
            response.delete_cookie(name, **cookie)  # it ended while this request ran (a logout elsewhere)
