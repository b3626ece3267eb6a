"""Who may use the console: the operator's password login, the one-time link of ``crmbot serve``, the
tools' Bearer token; and the throttle that slows down password guessing.

* Pages (``/console/...``) need a logged-in session. Without ``CRMBOT_CONSOLE_PASSWORD`` the pages
  answer 503 (``crmbot serve`` makes a password of its own first, see :func:`local_password`).
* ``/console/api/*`` and ``/console/export/*`` take ``Authorization: Bearer <CRMBOT_CONSOLE_TOKEN>``
  (or a logged-in session, so the pages can link to the CSV files). No credentials: 401; a wrong
  token: 401.
* Every POST carries a CSRF token (Flask-WTF's :class:`CSRFProtect`, called by the guards here
  rather than app-wide, so the LINE and Slack webhooks are not touched); a missing or wrong one is 400.
* The session cookie is HttpOnly, SameSite=Lax, scoped to ``/console``, Secure when the request came
  over HTTPS (``X-Forwarded-Proto`` counts only with ``CRMBOT_TRUST_PROXY=1``), signed with
  ``CRMBOT_SECRET_KEY`` or a key generated once and kept 0600 in the data directory. It carries a
  fingerprint of the password, so changing the password logs every session out.
* Failed logins are counted per client address in Redis (:class:`LoginThrottle`): after a few free
  tries each failure makes the client wait twice as long as the one before, up to 15 minutes.

Other console blueprints (the try-it page) protect themselves with :func:`guard_pages`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, current_app, redirect, render_template, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect

from conversations.errors import ConfigError
from conversations.redis_ops import register_script, translated

log = logging.getLogger(__name__)

EXTENSION = "crmbot.console"
SESSION_FIELD = "console"  # the session's proof of login: a fingerprint of the password
SESSION_LIFETIME = timedelta(hours=12)
PASSWORD_FILE = "console-password"
SECRET_FILE = "console-secret-key"
ONCE_TTL = 86400  # a one-time login link works for a day, once

# Console keys share one Redis Cluster hash slot ({console}); none belongs to a user or team.
_PREFIX = "crmbot:{console}"


def throttle_key(client: str) -> str:
    return f"{_PREFIX}:login:{client}"


def once_key(token: str) -> str:
    return f"{_PREFIX}:once:{hashlib.sha256(token.encode()).hexdigest()}"


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

# KEYS[1] the client's counter (hash: fails, until)
# ARGV[1] now, ARGV[2] free failures, ARGV[3] first delay (s), ARGV[4] longest delay (s), ARGV[5] key TTL (s)
# Returns the seconds the client must now wait (as a string).
_FAILED_LUA = """
local n = redis.call('HINCRBY', KEYS[1], 'fails', 1)
local wait = 0
local free = tonumber(ARGV[2])
if n > free then wait = math.min(tonumber(ARGV[4]), tonumber(ARGV[3]) * 2 ^ (n - free - 1)) end
redis.call('HSET', KEYS[1], 'until', tostring(tonumber(ARGV[1]) + wait))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[5]))
return tostring(wait)
"""


class LoginThrottle:
    """Failed logins per client: ``free`` failures cost nothing, then each one makes the client wait
    ``first``, 2 x ``first``, 4 x ``first`` ... seconds (at most ``longest``) before the next try is even
    checked. A success clears the count; so does a day without failures."""

    def __init__(self, client: Any, clock: Callable[[], float], *, free: int = 5, first: float = 2.0,
                 longest: float = 900.0, forget_after: int = 86400) -> None:
        self.r = client
        self.clock = clock
        self.free, self.first, self.longest, self.forget_after = free, first, longest, forget_after
        self._failed = register_script(client, _FAILED_LUA)

    def wait(self, who: str) -> float:
        """Seconds before ``who`` may try again (0: now)."""
        with translated():
            until = self.r.hget(throttle_key(who), "until")
        return max(0.0, float(until) - self.clock()) if until else 0.0

    def failed(self, who: str) -> float:
        """Count a failure; returns the seconds ``who`` must now wait."""
        with translated():
            wait = self._failed(keys=[throttle_key(who)],
                                args=[repr(self.clock()), self.free, self.first, self.longest, self.forget_after])
        return float(wait)

    def succeeded(self, who: str) -> None:
        with translated():
            self.r.delete(throttle_key(who))


# ---- one-time login links ----------------------------------------------------------------------------


def issue_login_token(client: Any, ttl: int = ONCE_TTL) -> str:
    """A token for a link that logs in once (as Jupyter prints): only its digest is stored."""
    token = secrets.token_urlsafe(32)
    with translated():
        client.set(once_key(token), "1", ex=ttl)
    return token


def use_login_token(client: Any, token: str) -> bool:
    """True once per issued token (GET and DEL in one transaction)."""
    if not token or len(token) > 200:
        return False
    with translated(), client.pipeline(transaction=True) as p:
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

    @property
    def pages_enabled(self) -> bool:
        return self.password is not None


class _ConsoleSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with the Secure flag set per request: on when the request came
    over HTTPS (as the WSGI scheme says, which ProxyFix sets from X-Forwarded-Proto when trusted)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(request) and request.is_secure


def install(app: Flask, config: Any, redis_client: Any, clock: Callable[[], float]) -> Access:
    """Set up sessions, CSRF and the throttle on ``app`` (called once by :func:`bot.console.register`)."""
    password = config.console_password
    fingerprint = ""
    if password:
        app.secret_key = secret_key(config.secret_key, Path(config.data_dir))
        fingerprint = hmac.new(app.secret_key.encode(), b"console:" + password.encode(), "sha256").hexdigest()[:32]
    else:
        log.warning("console disabled: CRMBOT_CONSOLE_PASSWORD not set; /console answers 503%s",
                    " (api/ and export/ open with CRMBOT_CONSOLE_TOKEN)" if config.console_token else "")
    app.config.update(
        SESSION_COOKIE_NAME="crmbot_console",
        SESSION_COOKIE_PATH="/console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
        WTF_CSRF_CHECK_DEFAULT=False,  # checked by the console's guards only: webhooks carry no token
        WTF_CSRF_TIME_LIMIT=None,  # a token lives as long as its session
    )
    app.session_interface = _ConsoleSessions()
    csrf = CSRFProtect(app)
    if config.trust_proxy:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1)  # type: ignore[method-assign]
    access = Access(password, config.console_token, fingerprint, LoginThrottle(redis_client, clock), redis_client,
                    csrf)
    app.extensions[EXTENSION] = access
    return access


def access_of(app: Flask) -> Access:
    found: Access = app.extensions[EXTENSION]
    return found


def access() -> Access:
    return access_of(current_app)


def client_address() -> str:
    return request.remote_addr or "unknown"


def logged_in() -> bool:
    a = access()
    return a.pages_enabled and hmac.compare_digest(str(session.get(SESSION_FIELD, "")), a.fingerprint)


def log_in() -> None:
    session.clear()  # a fresh session: nothing from before the login is kept
    session[SESSION_FIELD] = access().fingerprint
    session.permanent = True


def log_out() -> None:
    session.clear()


def disabled() -> tuple[str, int]:
    from bot.console.texts import texts

    return render_template("console_disabled.html", t=texts()), 503


def guard_pages(bp: Blueprint, *, open_endpoints: frozenset[str] = frozenset()) -> None:
    """Every view of ``bp``: 503 while the console is disabled; otherwise a logged-in session (or a
    redirect to the login page) and, for a POST, a valid CSRF token (or 400). ``open_endpoints`` need
    no session (the login page), but still the CSRF token."""

    @bp.before_request
    def _guard() -> Any:
        a = access()
        if request.endpoint and request.endpoint.endswith(".static"):
            return None  # the style sheet, for every page (the 503 page too)
        if not a.pages_enabled:
            return disabled()
        if request.endpoint not in open_endpoints and not logged_in():
            return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
        a.csrf.protect()
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
    """Every view of ``bp`` (read-only: api/ and export/): a correct Bearer token, or a logged-in
    session; 401 otherwise, and 503 when neither a token nor a password is configured."""

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
                return None
            return _unauthorized("invalid_token")
        if logged_in():
            return None
        return _unauthorized(None)


def _unauthorized(error: str | None) -> Response:
    challenge = 'Bearer realm="crmbot"' + (f', error="{error}"' if error else "")
    return Response('{"error": "unauthorized"}\n', 401, {"WWW-Authenticate": challenge},
                    mimetype="application/json")


def safe_next(target: str | None) -> str:
    """Where to go after the login: only a path inside the console (no other host, no scheme)."""
    if target and target.startswith("/console") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("console.overview")
