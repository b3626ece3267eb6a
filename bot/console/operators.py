"""The console's operators: each with their own login (name, e-mail, password, role, an optional TOTP second
factor), kept in Redis (:mod:`bot.console.keys`: one hash of JSON records and an index of e-mail digests).

Roles: ``admin`` (everything, and manages operators), ``operator`` (works leads, delivery, availability),
``viewer`` (reads every page, changes nothing: :func:`bot.console.auth.may_change`).

Passwords are hashed with Argon2id (argon2-cffi's :class:`PasswordHasher`, RFC 9106's low-memory profile:
3 passes over 64 MiB): salted, slow to guess offline, the parameters stored in each hash, so raising them
later rehashes each password at its next login. A login for an address nobody has still verifies a
password against a dummy hash, so the answer's time does not say which addresses exist.

TOTP (RFC 6238, pyotp): 6 digits every 30 s; the code of the previous and the next step are accepted too
(a phone's clock a little off), and each step at most once per operator (a code seen over a shoulder
cannot be used again): the last accepted step is stored and only a later one passes.

Every write is one Lua script: an e-mail address names one operator, the last admin cannot be removed or
demoted, and a TOTP step is accepted once, whatever runs at the same time.
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from bot.console import keys
from conversations.errors import CrmbotError
from conversations.redis_ops import runner, text

ROLES = ("admin", "operator", "viewer")
MIN_PASSWORD = 10  # characters
MAX_PASSWORD = 256
TOTP_STEP = 30  # seconds
HASHER = PasswordHasher()  # argon2-cffi's default: Argon2id, t=3, m=64 MiB, p=4 (RFC 9106, low memory)
_DUMMY: dict[str, str] = {}


class OperatorError(CrmbotError):
    """A change refused: ``reason`` is ``taken`` (the e-mail), ``last_admin``, ``gone``, ``not_first``,
    ``bad_email``, ``bad_name``, ``bad_role`` or ``short_password``."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"operator: {reason}")
        self.reason = reason


@dataclass(frozen=True)
class Operator:
    id: str
    email: str
    name: str
    role: str
    pw: str  # the Argon2id hash
    created: float
    totp: str = ""  # the TOTP secret (base32); "" without a second factor
    totp_step: int = 0  # the last TOTP step accepted

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def has_totp(self) -> bool:
        return bool(self.totp)

    def record(self) -> str:
        return json.dumps({"email": self.email, "name": self.name, "role": self.role, "pw": self.pw,
                           "created": repr(self.created), "totp": self.totp, "totp_step": str(self.totp_step)},
                          ensure_ascii=False)

    @staticmethod
    def parse(operator_id: str, raw: Any) -> Operator:
        d = json.loads(text(raw))
        return Operator(operator_id, d["email"], d["name"], d["role"], d["pw"], float(d["created"]),
                        d.get("totp", ""), int(d.get("totp_step") or 0))


# ---- checks and hashes ----------------------------------------------------------------------------------


def normal_email(email: str) -> str:
    email = email.strip()
    local, at, domain = email.rpartition("@")
    if not at or not local or "." not in domain or len(email) > 254 or any(c.isspace() for c in email):
        raise OperatorError("bad_email")
    return email


def normal_name(name: str) -> str:
    name = " ".join(name.split())
    if not name or len(name) > 60:
        raise OperatorError("bad_name")
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise OperatorError("bad_role")
    return role


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD or len(password) > MAX_PASSWORD:
        raise OperatorError("short_password")
    return HASHER.hash(password)


def _password_ok(hashed: str, password: str) -> bool:
    try:
        return HASHER.verify(hashed, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _dummy_hash() -> str:
    params = (HASHER.time_cost, HASHER.memory_cost, HASHER.parallelism)
    key = repr(params)
    if key not in _DUMMY:
        _DUMMY[key] = HASHER.hash(secrets.token_urlsafe(16))
    return _DUMMY[key]


# ---- TOTP ------------------------------------------------------------------------------------------------


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(secret: str, email: str, issuer: str) -> str:
    """The otpauth:// URI an authenticator app reads (from the QR code, or typed as the secret)."""
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=issuer)


def totp_step_of(secret: str, code: str, now: float) -> int | None:
    """The time step whose code ``code`` is (now's, the one before or after), or None."""
    code = "".join(code.split())
    if not secret or len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret, interval=TOTP_STEP)
    here = int(now // TOTP_STEP)
    for step in (here, here - 1, here + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


# ---- the store -------------------------------------------------------------------------------------------

# KEYS[1] operators, KEYS[2] e-mail index. ARGV[1] the e-mail's digest, ARGV[2] the id, ARGV[3] the record,
# ARGV[4] '1': only while no operator exists (the first admin). Returns 'ok', 'taken' or 'not_first'.
_CREATE_LUA = """
if ARGV[4] == '1' and redis.call('HLEN', KEYS[1]) > 0 then return 'not_first' end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return 'taken' end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
return 'ok'
"""

# KEYS[1] operators. ARGV[1] the id, ARGV[2] a JSON object of fields to set. Refuses to leave no admin.
# Returns 'ok', 'gone' or 'last_admin'.
_UPDATE_LUA = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 'gone' end
local rec = cjson.decode(raw)
local patch = cjson.decode(ARGV[2])
if rec.role == 'admin' and patch.role and patch.role ~= 'admin' then
  local admins = 0
  for _, other in ipairs(redis.call('HVALS', KEYS[1])) do
    if cjson.decode(other).role == 'admin' then admins = admins + 1 end
  end
  if admins <= 1 then return 'last_admin' end
end
for k, v in pairs(patch) do rec[k] = v end
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(rec))
return 'ok'
"""

# KEYS[1] operators, KEYS[2] e-mail index, KEYS[3] the operator's session list. ARGV[1] the id, ARGV[2] the
# e-mail's digest. Refuses to leave no admin. Returns {'ok', the digests of the operator's sessions (to end)},
# or {'gone'} / {'last_admin'}.
_DELETE_LUA = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return {'gone'} end
local rec = cjson.decode(raw)
if rec.role == 'admin' then
  local admins = 0
  for _, other in ipairs(redis.call('HVALS', KEYS[1])) do
    if cjson.decode(other).role == 'admin' then admins = admins + 1 end
  end
  if admins <= 1 then return {'last_admin'} end
end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[2])
local sessions = redis.call('ZRANGE', KEYS[3], 0, -1)
redis.call('DEL', KEYS[3])
table.insert(sessions, 1, 'ok')
return sessions
"""

# KEYS[1] operators. ARGV[1] the id, ARGV[2] a TOTP step. Accepts a step later than the last accepted one:
# 1 (now stored), else 0.
_TOTP_STEP_LUA = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local rec = cjson.decode(raw)
if tonumber(rec.totp_step or '0') >= tonumber(ARGV[2]) then return 0 end
rec.totp_step = ARGV[2]
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(rec))
return 1
"""


class OperatorStore:
    def __init__(self, client: Any, clock: Callable[[], float]) -> None:
        self.r = runner(client)
        self.clock = clock

    def any(self) -> bool:
        return bool(self.r.hlen(keys.OPERATORS))

    def get(self, operator_id: str) -> Operator | None:
        if not operator_id or len(operator_id) > 64:
            return None
        raw = self.r.hget(keys.OPERATORS, operator_id)
        return None if raw is None else Operator.parse(operator_id, raw)

    def by_email(self, email: str) -> Operator | None:
        found = self.r.hget(keys.OPERATOR_EMAILS, keys.email_digest(email))
        return None if found is None else self.get(text(found))

    def all(self) -> list[Operator]:
        found = [Operator.parse(text(k), v) for k, v in self.r.hgetall(keys.OPERATORS).items()]
        return sorted(found, key=lambda op: (op.created, op.email))

    def create(self, email: str, name: str, role: str, password: str, *, first: bool = False) -> Operator:
        """A new operator (``first``: only if none exists yet, for the first admin)."""
        op = Operator(secrets.token_hex(8), normal_email(email), normal_name(name), check_role(role),
                      hash_password(password), self.clock())
        found = text(self.r.script(_CREATE_LUA)(keys=[keys.OPERATORS, keys.OPERATOR_EMAILS],
                                                args=[keys.email_digest(op.email), op.id, op.record(),
                                                      "1" if first else "0"]))
        if found != "ok":
            raise OperatorError(found)
        return op

    def _update(self, operator_id: str, **fields: Any) -> None:
        found = text(self.r.script(_UPDATE_LUA)(keys=[keys.OPERATORS],
                                                args=[operator_id, json.dumps(fields, ensure_ascii=False)]))
        if found != "ok":
            raise OperatorError(found)

    def set_role(self, operator_id: str, role: str) -> None:
        self._update(operator_id, role=check_role(role))

    def set_name(self, operator_id: str, name: str) -> None:
        self._update(operator_id, name=normal_name(name))

    def set_password(self, operator_id: str, password: str) -> None:
        self._update(operator_id, pw=hash_password(password))

    def set_totp(self, operator_id: str, secret: str, step: int = 0) -> None:
        """Turn the second factor on (a secret, and the step of the code that confirmed it) or off ("")."""
        self._update(operator_id, totp=secret, totp_step=str(step))

    def delete(self, op: Operator) -> list[str]:
        """Remove ``op``; returns the digests of its sessions (for the caller to end)."""
        found = self.r.script(_DELETE_LUA)(keys=[keys.OPERATORS, keys.OPERATOR_EMAILS, keys.operator_sessions(op.id)],
                                           args=[op.id, keys.email_digest(op.email)])
        head, *sessions = [text(x) for x in found]
        if head != "ok":
            raise OperatorError(head)
        return sessions

    def check_password(self, email: str, password: str) -> Operator | None:
        """The operator whose address and password these are, else None (in about the same time)."""
        op = self.by_email(email) if email else None
        if op is None:
            _password_ok(_dummy_hash(), password)
            return None
        if not _password_ok(op.pw, password):
            return None
        if HASHER.check_needs_rehash(op.pw):
            self._update(op.id, pw=HASHER.hash(password))
        return op

    def use_totp(self, op: Operator, code: str) -> bool:
        """Whether ``code`` is ``op``'s current TOTP code, not used before (then it is used up)."""
        step = totp_step_of(op.totp, code, self.clock())
        return step is not None and bool(self.r.script(_TOTP_STEP_LUA)(keys=[keys.OPERATORS], args=[op.id, step]))

    # ---- settings ----

    def totp_required(self) -> bool:
        found = self.r.hget(keys.SETTINGS, "totp_required")
        return found is not None and text(found) == "1"

    def require_totp(self, required: bool) -> None:
        self.r.hset(keys.SETTINGS, "totp_required", "1" if required else "0")

