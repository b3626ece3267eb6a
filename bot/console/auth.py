"""Who may use the console: operators' own logins (:mod:`bot.console.operators`), the shared password and the
one-time link until the first admin exists, the tools' Bearer token; roles; the throttle that slows down
password guessing.

* Pages (``/console/...``) need a logged-in session. Without ``CRMBOT_CONSOLE_PASSWORD`` the pages
  answer 503 (``crmbot serve`` makes a password of its own first, see :func:`local_password`).
* **Before any operator exists** the console has one shared account, "console": the password
  ``CRMBOT_CONSOLE_PASSWORD`` or the one-time link of ``crmbot serve`` / ``crmbot console login-link``
  logs in as it, with an admin's rights, and its only new task is to create the first admin (the
  Operators page). **Once an operator exists** that way in is closed: the shared password and the links
  open nothing, and the shared sessions still open end at their next request. Everyone logs in with their
  own e-mail and password (and TOTP code, when they enrolled or an admin requires it).
* Roles: ``admin``, ``operator``, ``viewer``. A viewer's POST answers 403 and changes nothing (every
  guard here checks :func:`may_change`), except logging out and their own profile (password, second
  factor, sessions). Only an admin opens the Operators page.
* ``/console/api/*`` and ``/console/export/*`` take ``Authorization: Bearer <CRMBOT_CONSOLE_TOKEN>``
  (acting as "api") or a logged-in session, so the pages can link to the CSV files. No credentials: 401;
  a wrong token: 401.
* Every POST carries a CSRF token (Flask-WTF's :class:`CSRFProtect`, called by the guards here
  rather than app-wide, so the LINE and Slack webhooks are not touched); a missing or wrong one is 400.
* Sessions live in Redis (:mod:`bot.console.sessions`): the cookie (HttpOnly, SameSite=Lax, scoped to
  ``/console``, Secure over HTTPS) carries only a random id. Logout deletes the session; a changed
  ``CRMBOT_CONSOLE_PASSWORD`` ends every session; a session ends after ``CRMBOT_CONSOLE_IDLE_HOURS``
  unused and ``CRMBOT_CONSOLE_SESSION_DAYS`` after its login, whatever happens; an operator (or an admin)
  revokes any of theirs; a removed operator's end with them.
* HTTPS and the client's address are what the WSGI server says: behind a proxy, waitress sets them from
  ``X-Forwarded-Proto`` / ``X-Forwarded-For`` when ``CRMBOT_TRUST_PROXY`` names that proxy (see
  :mod:`bot.web`); the app itself never reads those headers.
* Failed logins are throttled (:class:`LoginThrottle`) per client address and per account (the e-mail
  given), so that guessing is slowed down but no storm of wrong passwords locks the operator out.

Other console blueprints (the try-it page) protect themselves with :func:`guard_pages`.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, redirect, render_template, request, session, url_for
from flask_wtf.csrf import CSRFProtect

from bot.console import keys
from bot.console.operators import Operator, OperatorStore
from bot.console.sessions import ConsoleSession, Lifetimes, RedisSessions, SessionStore
from conversations.errors import ConfigError, StoreUnavailable
from conversations.redis_ops import runner

log = logging.getLogger(__name__)

EXTENSION = "crmbot.console"
SESSION_FIELD = "console"  # the session's proof of login: a fingerprint of the password
ACCOUNT = "console"  # the shared account (the password, the links) until the first operator exists
API = "api"  # who acts through the Bearer token
OPERATOR_FIELD = "op"  # an operator's session: their id
PASSWORD_FILE = "console-password"
SECRET_FILE = "console-secret-key"
ONCE_TTL = 86400  # a one-time login link works for a day, once

throttle_key = keys.client_throttle  # every console key is built in bot.console.keys
account_key = keys.account_throttle
once_key = keys.once


# ---- secrets at rest ---------------------------------------------------------------------------------


def _private_file(path: Path, make: Callable[[], str]) -> str:
    """The text of ``path``, created 0600 (in a 0700 directory) with ``make()`` if it does not exist."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            if path.stat().st_mode & 0o077:
                path.chmod(0o600)
            value = path.read_text(encoding="utf-8").strip()
            if value:
                return value
            path.unlink()  # an empty file (a crash while writing it): make it again
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        value = make()
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(value + "\n")
        return value
    except OSError as e:
        raise ConfigError(f"environment: CRMBOT_DATA_DIR: cannot keep {path.name}: {e.strerror}") from e


def local_password(data_dir: Path) -> tuple[str, Path]:
    """``crmbot serve`` without CRMBOT_CONSOLE_PASSWORD: a random password made once and kept (0600) in
    the data directory. Returns (password, its file)."""
    path = data_dir / PASSWORD_FILE
    return _private_file(path, lambda: secrets.token_urlsafe(18)), path


def secret_key(configured: str | None, data_dir: Path) -> str:
    """CRMBOT_SECRET_KEY, else a key made once and kept (0600) in the data directory. Several web
    machines that do not share a data directory must share CRMBOT_SECRET_KEY."""
    return configured or _private_file(data_dir / SECRET_FILE, lambda: secrets.token_hex(32))


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison (of digests, so neither the length leaks)."""
    return hmac.compare_digest(hashlib.sha256(given.encode()).digest(), hashlib.sha256(expected.encode()).digest())


# ---- the throttle ------------------------------------------------------------------------------------

# KEYS[1] the client's counter, KEYS[2] the account's counter (hashes: fails, until)
# ARGV[1] now, ARGV[2] the client's free failures, ARGV[3] the account's, ARGV[4] first delay (s),
# ARGV[5] longest delay (s), ARGV[6] the counters' TTL (s)
# Counts one failure on both; returns the seconds this client must now wait (as a string).
_FAILED_LUA = """
local now = tonumber(ARGV[1])
local function count(key, free)
  local n = redis.call('HINCRBY', key, 'fails', 1)
  local wait = 0
  if n > free then wait = math.min(tonumber(ARGV[5]), tonumber(ARGV[4]) * 2 ^ (n - free - 1)) end
  redis.call('HSET', key, 'until', tostring(now + wait))
  redis.call('EXPIRE', key, tonumber(ARGV[6]))
  return wait
end
local mine = count(KEYS[1], tonumber(ARGV[2]))
local shared = count(KEYS[2], tonumber(ARGV[3]))
return tostring(math.max(mine, shared))
"""


class LoginThrottle:
    """Failed logins, counted per client address and per account.

    * **Per client**: ``free`` failures cost nothing, then each one makes that client wait ``first``,
      2 x ``first``, 4 x ``first`` ... seconds (at most ``longest``) before its next try is even checked.
    * **Per account**: failures from everywhere count too; past ``account_free`` of them the account's
      wait grows the same way, but it holds back only clients that have failed themselves (a counter of
      their own). A client with no failure on record is always checked at once: a storm of wrong
      passwords, from one address or from thousands, never keeps the operator out of their own address
      with the right password; a guesser gets one try per fresh address, then waits as the account does.
    * A success clears that client's count (not the account's: an attack goes on meanwhile); a day
      without failures forgets either.

    The account is the e-mail address given (its key holds only a digest), or :data:`ACCOUNT` for the
    shared password."""

    def __init__(self, client: Any, clock: Callable[[], float], *, free: int = 5, account_free: int = 10,
                 first: float = 2.0, longest: float = 900.0, forget_after: int = 86400) -> None:
        self.r = runner(client)
        self.clock = clock
        self.free, self.account_free = free, account_free
        self.first, self.longest, self.forget_after = first, longest, forget_after
        self._failed = self.r.script(_FAILED_LUA)

    def wait(self, who: str, account: str = ACCOUNT) -> float:
        """Seconds before ``who`` may try ``account`` again (0: now)."""
        with self.r.pipeline(transaction=False) as p:
            p.hmget(throttle_key(who), "fails", "until")
            p.hget(account_key(account), "until")
            (fails, until), shared = p.execute()
        now = self.clock()
        wait = float(until) - now if until else 0.0
        if fails and shared:  # this client has failed: the account's wait holds it back too
            wait = max(wait, float(shared) - now)
        return max(0.0, wait)

    def failed(self, who: str, account: str = ACCOUNT) -> float:
        """Count a failure; returns the seconds ``who`` must now wait."""
        wait = self._failed(keys=[throttle_key(who), account_key(account)],
                            args=[repr(self.clock()), self.free, self.account_free, self.first, self.longest,
                                  self.forget_after])
        return float(wait)

    def succeeded(self, who: str, account: str = ACCOUNT) -> None:
        self.r.delete(throttle_key(who))


# ---- one-time login links ----------------------------------------------------------------------------


def issue_login_token(client: Any, ttl: int = ONCE_TTL) -> str:
    """A token for a link that logs in once (as Jupyter prints): only its digest is stored."""
    token = secrets.token_urlsafe(32)
    runner(client).set(once_key(token), "1", ex=ttl)
    return token


def use_login_token(client: Any, token: str) -> bool:
    """True once per issued token (GET and DEL in one transaction)."""
    if not token or len(token) > 200:
        return False
    with runner(client).pipeline(transaction=True) as p:
        p.get(once_key(token))
        p.delete(once_key(token))
        found, _ = p.execute()
    return found is not None


# ---- the console's settings in the app ---------------------------------------------------------------


@dataclass(frozen=True)
class Access:
    password: str | None  # None: the pages answer 503
    token: str | None  # None: only a logged-in session opens api/ and export/
    fingerprint: str  # what a logged-in session carries ("" without a password)
    throttle: LoginThrottle
    redis: Any
    csrf: CSRFProtect
    sessions: SessionStore
    operators: OperatorStore

    @property
    def pages_enabled(self) -> bool:
        return self.password is not None


def install(app: Flask, config: Any, redis_client: Any, clock: Callable[[], float]) -> Access:
    """Set up sessions, CSRF and the throttle on ``app`` (called once by :func:`bot.console.register`)."""
    password = config.console_password
    fingerprint = ""
    if password:
        app.secret_key = secret_key(config.secret_key, Path(config.data_dir))  # signs the forms' CSRF tokens
        fingerprint = hmac.new(app.secret_key.encode(), b"console:" + password.encode(), "sha256").hexdigest()[:32]
    else:
        log.warning("console disabled: CRMBOT_CONSOLE_PASSWORD not set; /console answers 503%s",
                    " (api/ and export/ open with CRMBOT_CONSOLE_TOKEN)" if config.console_token else "")
    app.config.update(
        SESSION_COOKIE_NAME="crmbot_console",
        SESSION_COOKIE_PATH="/console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        WTF_CSRF_CHECK_DEFAULT=False,  # checked by the console's guards only: webhooks carry no token
        WTF_CSRF_TIME_LIMIT=None,  # a token lives as long as its session
    )
    lifetimes = Lifetimes(idle=config.console_idle_hours * 3600, absolute=config.console_session_days * 86400)
    store = SessionStore(redis_client, clock, lifetimes, proof_field=SESSION_FIELD, fingerprint=fingerprint)
    app.session_interface = RedisSessions(store, on_unavailable=_into_unavailable)
    app.register_error_handler(StoreUnavailable, _store_unavailable)
    csrf = CSRFProtect(app)
    access = Access(password, config.console_token, fingerprint, LoginThrottle(redis_client, clock), redis_client,
                    csrf, store, OperatorStore(redis_client, clock))
    app.extensions[EXTENSION] = access
    return access


def _wants_json() -> bool:
    """The console's JSON and CSV answers (the tools, the try-it page's calls) get a JSON error."""
    return (request.blueprint in ("console_tools", "console_try", "console_bookings")
            and request.endpoint != "console_try.page")


def _unavailable_body() -> tuple[str, str]:
    if not request.path.startswith("/console") or _wants_json():
        return '{"error": "store unavailable"}\n', "application/json"
    from bot.console.texts import texts

    t = texts()
    return render_template("console_error.html", t=t, title=t["unavailable_title"], body=t["unavailable_body"]), \
        "text/html"


def _store_unavailable(_e: StoreUnavailable) -> Response:
    """Redis did not answer (a blueprint's own handler comes first): 503, never a 500."""
    body, mimetype = _unavailable_body()
    return Response(body, 503, mimetype=mimetype)


def _into_unavailable(response: Response) -> None:
    """The session could not be saved after the view ran (a login, a logout, a form's notice): the
    answer becomes a 503 saying so, rather than a page that pretends it happened."""
    body, mimetype = _unavailable_body()
    for name in ("Location", "Content-Disposition", "Set-Cookie"):
        response.headers.remove(name)
    response.status_code = 503
    response.set_data(body)
    response.mimetype = mimetype


def access_of(app: Flask) -> Access:
    found: Access = app.extensions[EXTENSION]
    return found


def access() -> Access:
    return access_of(current_app)


def client_address() -> str:
    """The client the throttle counts: its address as the WSGI server gives it (behind a trusted proxy,
    the one the proxy saw: see bot.web). An IPv6 client counts by its /64, the block one subscriber
    holds; what is not an address counts as "unknown"."""
    try:
        ip = ipaddress.ip_address((request.remote_addr or "").split("%")[0])
    except ValueError:
        return "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _session() -> ConsoleSession:
    """The request's console session; :class:`StoreUnavailable` when Redis did not answer when it was read."""
    if getattr(session, "unavailable", False):
        raise StoreUnavailable("redis: the console session could not be read")
    return session  # type: ignore[return-value]


@dataclass(frozen=True)
class Actor:
    """Who acts in a request: an operator, the shared account (before any operator exists) or the API."""
    name: str
    role: str
    operator: Operator | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


SHARED = Actor(ACCOUNT, "admin")
API_ACTOR = Actor(API, "operator")
_ACTOR = "crmbot_console_actor"


def _actor_of_session() -> Actor | None:
    a = access()
    current = _session()
    if not a.pages_enabled or not hmac.compare_digest(str(current.get(SESSION_FIELD, "")), a.fingerprint):
        return None
    operator_id = current.get(OPERATOR_FIELD)
    if operator_id:
        op = a.operators.get(str(operator_id))
        if op is None:  # removed meanwhile: this session ends now
            current.clear()
            return None
        return Actor(op.name, op.role, op)
    if a.operators.any():  # the shared account's way in closed when the first operator was made
        current.clear()
        return None
    return SHARED


def current_actor() -> Actor | None:
    """The request's actor (looked up once per request), None when nobody is logged in."""
    if _ACTOR not in g:
        setattr(g, _ACTOR, _actor_of_session())
    found: Actor | None = g.get(_ACTOR)
    return found


def logged_in() -> bool:
    return current_actor() is not None


def log_in(op: Operator | None = None) -> None:
    """Log this session in, as ``op`` or (None) as the shared account."""
    current = _session()
    current.clear()  # a fresh session: nothing from before the login is kept
    current[SESSION_FIELD] = access().fingerprint
    if op is not None:
        current[OPERATOR_FIELD] = op.id
        current.meta = {"op": op.id, "addr": client_address()}
    current.regenerate()  # under a new id: one known before the login opens nothing
    setattr(g, _ACTOR, SHARED if op is None else Actor(op.name, op.role, op))


def operator_name() -> str:
    """Who is acting in this request, as history and the audit log name them: the logged-in operator's
    name, "api" for the Bearer token, "console" for the shared account (before any operator exists)."""
    actor = current_actor()
    return actor.name if actor is not None else ACCOUNT


def may_change() -> bool:
    """Whether this request's actor may change anything (a viewer may not; nobody logged in neither)."""
    actor = current_actor()
    return actor is not None and actor.role != "viewer"


def is_admin() -> bool:
    actor = current_actor()
    return actor is not None and actor.is_admin


def current_operator() -> Operator | None:
    actor = current_actor()
    return actor.operator if actor is not None else None


def needs_enrolment(actor: Actor | None) -> bool:
    """An operator without a second factor while an admin requires one: only their profile opens."""
    return (actor is not None and actor.operator is not None and not actor.operator.has_totp
            and access().operators.totp_required())


def log_out() -> None:
    _session().clear()  # the record is deleted when the answer is sent: a copied cookie opens nothing


def disabled() -> tuple[str, int]:
    from bot.console.texts import texts

    return render_template("console_disabled.html", t=texts()), 503


# POSTs a viewer may send: logging out and their own profile (password, second factor, sessions)
SELF_SERVICE = frozenset({"console.login", "console.logout", "console.profile_password", "console.profile_totp",
                          "console.profile_totp_off", "console.profile_revoke"})
# what an operator who must enrol a second factor may open meanwhile
ENROLMENT = frozenset({"console.logout", "console.profile", "console.profile_totp"})
ADMIN_ONLY = frozenset({"console.operators", "console.operator_create", "console.operator_update",
                        "console.operator_delete", "console.operators_totp", "console.operator_revoke"})


def forbidden() -> tuple[str, int]:
    from bot.console.texts import texts

    t = texts()
    return render_template("console_error.html", t=t, title=t["forbidden_title"], body=t["forbidden_body"]), 403


def guard_pages(bp: Blueprint, *, open_endpoints: frozenset[str] = frozenset()) -> None:
    """Every view of ``bp``: 503 while the console is disabled; otherwise a logged-in session (or a
    redirect to the login page) and, for a POST, a valid CSRF token (or 400). ``open_endpoints`` need
    no session (the login page), but still the CSRF token. A viewer's POST (but :data:`SELF_SERVICE`)
    and a non-admin's request to :data:`ADMIN_ONLY` answer 403."""

    @bp.before_request
    def _guard() -> Any:
        a = access()
        if request.endpoint and request.endpoint.endswith(".static"):
            return None  # the style sheet, for every page (the 503 page too)
        if not a.pages_enabled:
            return disabled()
        _session()  # Redis did not answer when the session was read: 503
        if request.endpoint in open_endpoints:
            a.csrf.protect()
            return None
        actor = current_actor()
        if actor is None:
            return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
        a.csrf.protect()
        if request.method == "POST" and not may_change() and request.endpoint not in SELF_SERVICE:
            return forbidden()
        if request.endpoint in ADMIN_ONLY and not actor.is_admin:
            return forbidden()
        if needs_enrolment(actor) and request.endpoint not in ENROLMENT:
            return forbidden() if request.method == "POST" else redirect(url_for("console.profile"))
        return None


SECURITY_HEADERS = {
    # Only our own files; no framing (the forms cannot be clicked through another site's page).
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def secure_headers(bp: Blueprint) -> None:
    """Every answer of ``bp``: the headers above, and pages (personal data) never cached."""

    @bp.after_request
    def _headers(res: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            res.headers.setdefault(name, value)
        if res.mimetype == "text/html":
            res.headers["Cache-Control"] = "no-store"
        return res


def guard_tools(bp: Blueprint) -> None:
    """Every view of ``bp`` (api/ and export/): a correct Bearer token (acting as "api"), or a logged-in
    session (a viewer's only for reading: 403 otherwise); 401 otherwise, and 503 when neither a token nor
    a password is configured."""

    @bp.before_request
    def _guard() -> Any:
        a = access()
        if a.token is None and not a.pages_enabled:
            return Response("console disabled: CRMBOT_CONSOLE_TOKEN and CRMBOT_CONSOLE_PASSWORD not set\n", 503,
                            mimetype="text/plain")
        header = request.headers.get("Authorization", "")
        if header:
            scheme, _, given = header.partition(" ")
            if scheme.lower() == "bearer" and a.token is not None and same_secret(given.strip(), a.token):
                setattr(g, _ACTOR, API_ACTOR)
                return None
            return _unauthorized("invalid_token")
        actor = current_actor()
        if actor is None or needs_enrolment(actor):
            return _unauthorized(None)
        if request.method not in ("GET", "HEAD", "OPTIONS") and not may_change():
            return Response('{"error": "forbidden"}\n', 403, mimetype="application/json")
        return None


def _unauthorized(error: str | None) -> Response:
    challenge = 'Bearer realm="crmbot"' + (f', error="{error}"' if error else "")
    return Response('{"error": "unauthorized"}\n', 401, {"WWW-Authenticate": challenge},
                    mimetype="application/json")


def safe_next(target: str | None) -> str:
    """Where to go after the login: only a path inside the console (no other host, no scheme)."""
    if target and target.startswith("/console") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("console.overview")
