"""Slack installations in Redis: which bot token answers for which workspace (many workspaces, OAuth).

Pure storage, no Slack SDK: :mod:`bot.slack.oauth` adapts it to slack_sdk's ``InstallationStore`` (for
Bolt's OAuth flow and the web tier's authorize) and the worker reads it with redis.asyncio
(:class:`AsyncInstallations`). What both tiers do is written once, as plans (``plan_*`` below, see
:mod:`conversations.redis_ops`): :class:`Installations` runs them on the sync runner,
:class:`AsyncInstallations` on the async one. Keys are built in :mod:`conversations.keys`; one workspace's keys share
its hash slot ``{ws:<workspace>}`` (with its list of teams):

    crmbot:{ws:<workspace>}:install     hash: "bot" -> :class:`BotInstall` (JSON), "installer" -> the
                                        latest installer's record, "installer:<user>" -> each installer's
                                        (JSON objects, opaque here: the adapter's)
    crmbot:{ws:<workspace>}:rotating    the token-rotation lock (its owner token, PX)
    crmbot:{oauth}:state:<state>        an install's one-time state (when it was issued, EX)
    crmbot:{oauth}:states               the states outstanding (sorted set: state -> when issued)
    crmbot:{oauth}:client:<hash>        the states a client address was issued in the last minute

Issuing states is bounded (:data:`ISSUE_STATE_LUA`, one script): at most :data:`STATES_PER_CLIENT` per
client address a minute, and at most :data:`MAX_STATES` outstanding in all (a new one is refused, never
an older one dropped: an install in progress is never broken by someone else's visits).

Token rotation: an expiring bot token is exchanged for a new one with its refresh token, and Slack
revokes a refresh token once used. So one process at a time refreshes a workspace's token (the
``rotating`` lock), and the new token is stored only if the stored refresh token is still the one
it used (compare-and-set, :data:`REPLACE_BOT_LUA`): a slow process never puts an older token back.
The rotation itself (one algorithm for the web tier and the worker) is :func:`bot.slack.tokens.rotate`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from conversations import keys
from conversations.redis_ops import Eval, Plan, async_runner, call, runner, text

BOT = "bot"
INSTALLER = "installer"  # the latest installer's record; "installer:<user>" each installer's
STATE_GRACE = 60  # seconds a consumed-or-not state key outlives its expiry in Redis (its age decides)
STATES_PER_CLIENT = 10  # install states one client address is issued per CLIENT_WINDOW
CLIENT_WINDOW = 60  # seconds
MAX_STATES = 10_000  # install states outstanding at once, all clients together (about 4 MB of Redis)

# Issue an install's one-time state, within its client's share and the cap on outstanding states.
# KEYS[1] the state (string: when issued, EX)    crmbot:{oauth}:state:<state>
# KEYS[2] the outstanding states (sorted set: state -> when issued)    crmbot:{oauth}:states
# KEYS[3] the client's recent states (sorted set: state -> when issued)    crmbot:{oauth}:client:<hash>
# ARGV[1] the state, ARGV[2] now (seconds, the injected clock), ARGV[3] how long a state is good for (s),
# ARGV[4] how long its key lives in Redis (s), ARGV[5] states per client per window, ARGV[6] the window (s),
# ARGV[7] most states outstanding
# Returns {1, 0} issued; {0, 0} the state exists (draw another); {-1, s} the client had its share of the
# window (again in s seconds); {-2, s} too many states outstanding (the oldest runs out in s seconds).
# Nothing is written unless the state is issued.
ISSUE_STATE_LUA = """
local now = tonumber(ARGV[2])
local window = tonumber(ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - window)
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[5]) then
  local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  return {-1, math.max(1, math.ceil(tonumber(first[2]) + window - now))}
end
local ttl = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. (now - ttl))
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[7]) then
  local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  return {-2, math.max(1, math.ceil(tonumber(first[2]) + ttl - now))}
end
if not redis.call('SET', KEYS[1], ARGV[2], 'NX', 'EX', ARGV[4]) then return {0, 0} end
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('ZADD', KEYS[3], now, ARGV[1])
redis.call('EXPIRE', KEYS[3], math.ceil(window))
return {1, 0}
"""

# Consume a state: its issue time (nil if unknown or used), and it is gone, from the index too.
# KEYS[1] the state, KEYS[2] the outstanding states; ARGV[1] the state
CONSUME_STATE_LUA = """
local issued = redis.call('GET', KEYS[1])
if issued then redis.call('DEL', KEYS[1]) end
redis.call('ZREM', KEYS[2], ARGV[1])
return issued
"""

# Store a refreshed bot token if the refresh token it was made with is still the stored one.
# KEYS[1] the workspace's installation (hash)      crmbot:{ws:<workspace>}:install
# ARGV[1] the refresh token the refresh used, ARGV[2] the new bot record (JSON)
# Returns 1 when stored; 0 when the installation is gone or was refreshed (or reinstalled) meanwhile.
REPLACE_BOT_LUA = """
local current = redis.call('HGET', KEYS[1], 'bot')
if not current then return 0 end
local ok, bot = pcall(cjson.decode, current)
if not ok or type(bot) ~= 'table' or bot['refresh_token'] ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'bot', ARGV[2])
return 1
"""

# Delete installer records: all of them (ARGV[1] == ""), or one user's (and the latest, if it is theirs).
# KEYS[1] the workspace's installation (hash). Returns how many fields were deleted.
DELETE_INSTALLERS_LUA = """
local n = 0
if ARGV[1] == '' then
  for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do
    if f == 'installer' or string.sub(f, 1, 10) == 'installer:' then
      n = n + redis.call('HDEL', KEYS[1], f)
    end
  end
  return n
end
n = redis.call('HDEL', KEYS[1], 'installer:' .. ARGV[1])
local latest = redis.call('HGET', KEYS[1], 'installer')
if latest then
  local ok, rec = pcall(cjson.decode, latest)
  if ok and type(rec) == 'table' and rec['user_id'] == ARGV[1] then
    n = n + redis.call('HDEL', KEYS[1], 'installer')
  end
end
return n
"""

# Compare-and-delete of the rotation lock. KEYS[1] the lock; ARGV[1] the owner's token. Returns 1 if deleted.
UNLOCK_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class BotInstall:
    """A workspace's bot installation: what a request or a delivery to that workspace needs."""

    workspace: str  # the team ID ("T...")
    token: str  # the bot token ("xoxb-...", or "xoxe.xoxb-..." with token rotation)
    bot_id: str = ""
    bot_user_id: str = ""
    scopes: tuple[str, ...] = ()
    refresh_token: str | None = None  # with token rotation: exchanges an expiring token for a new one (once)
    expires_at: int | None = None  # with token rotation: when the token expires (Unix seconds, real time)
    app_id: str | None = None
    enterprise_id: str | None = None  # an Enterprise Grid workspace's organisation
    team_name: str | None = None
    installed_at: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)  # anything else the adapter keeps (custom values)

    def __post_init__(self) -> None:
        keys.slack_id(self.workspace)

    def expiring(self, now: float, within: float) -> bool:
        """Whether the token should be refreshed now: it rotates and expires within ``within`` seconds."""
        return self.refresh_token is not None and self.expires_at is not None and self.expires_at - now <= within

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    def refreshed(self, token: str, refresh_token: str | None, expires_at: int | None) -> BotInstall:
        return replace(self, token=token, refresh_token=refresh_token, expires_at=expires_at)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> BotInstall:
        data = json.loads(raw)
        data["scopes"] = tuple(data.get("scopes") or ())
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class Issue:
    """What :meth:`Installations.issue_state` did: true when the state is issued."""

    ok: bool
    refused: str = ""  # "client": the client had its share of the minute; "full": too many outstanding
    retry_after: int = 0  # seconds until the refusal ends

    def __bool__(self) -> bool:
        return self.ok


def _installer_field(user: str | None) -> str:
    return INSTALLER if user is None else f"{INSTALLER}:{keys.slack_id(user, 'user')}"


def _bot(raw: Any) -> BotInstall | None:
    return BotInstall.from_json(raw) if raw else None


# ---- the operations both tiers run, each written once ---------------------------------------------------


def plan_bot(workspace: str) -> Plan[BotInstall | None]:
    """The workspace's bot installation, or None (not installed)."""
    return _bot((yield call("hget", keys.installation(workspace), BOT)))


def plan_replace_bot(previous: BotInstall, new: BotInstall) -> Plan[bool]:
    """Store ``new`` (a refreshed token) if ``previous``'s refresh token is still the stored one."""
    done = yield Eval(REPLACE_BOT_LUA, [keys.installation(previous.workspace)],
                      [previous.refresh_token or "", new.to_json()])
    return bool(done)


def plan_lock_rotation(workspace: str, owner: str, ttl: float) -> Plan[bool]:
    """Take the workspace's rotation lock for ``ttl`` seconds, unless another owner holds it."""
    taken = yield call("set", keys.installation_rotating(workspace), owner, nx=True, px=max(1, round(ttl * 1000)))
    return bool(taken)


def plan_unlock_rotation(workspace: str, owner: str) -> Plan[None]:
    """Let go of the rotation lock, only if ``owner`` still holds it."""
    yield Eval(UNLOCK_LUA, [keys.installation_rotating(workspace)], [owner])


class Installations:
    """The installations, for a redis-py client (the web tier, the reminder clock)."""

    def __init__(self, client: Any) -> None:
        self.r = runner(client)

    # ---- installations ----------------------------------------------------------------------------

    def save(self, workspace: str, bot: BotInstall | None, installer: Mapping[str, Any] | None = None,
             user: str | None = None) -> None:
        """Store an installation: the bot (if the install gave one) and the installer's record (as the
        workspace's latest, and as ``user``'s), in one command."""
        fields: dict[str, str] = {}
        if bot is not None:
            if bot.workspace != workspace:
                raise ValueError("a bot installation saved under another workspace")
            fields[BOT] = bot.to_json()
        if installer is not None:
            record = json.dumps(dict(installer), ensure_ascii=False, separators=(",", ":"))
            fields[INSTALLER] = record
            if user is not None:
                fields[_installer_field(user)] = record
        if fields:
            self.r.hset(keys.installation(workspace), mapping=fields)

    def bot(self, workspace: str) -> BotInstall | None:
        return self.r.run(plan_bot(workspace))

    def installed(self, workspace: str) -> bool:
        """Whether the workspace has a bot token (the app is installed there)."""
        return bool(self.r.hexists(keys.installation(workspace), BOT))

    def installer(self, workspace: str, user: str | None = None) -> dict[str, Any] | None:
        """The latest installer's record, or ``user``'s."""
        raw = self.r.hget(keys.installation(workspace), _installer_field(user))
        return json.loads(raw) if raw else None

    def delete_bot(self, workspace: str) -> bool:
        return bool(self.r.hdel(keys.installation(workspace), BOT))

    def delete_installers(self, workspace: str, user: str | None = None) -> int:
        """Every installer's record, or ``user``'s; returns how many records were deleted."""
        user_arg = "" if user is None else keys.slack_id(user, "user")
        return int(self.r.script(DELETE_INSTALLERS_LUA)(keys=[keys.installation(workspace)], args=[user_arg]))

    def delete_all(self, workspace: str) -> bool:
        """The whole installation (uninstalled): returns whether there was one."""
        return bool(self.r.delete(keys.installation(workspace)))

    # ---- token rotation ---------------------------------------------------------------------------

    def replace_bot(self, previous: BotInstall, new: BotInstall) -> bool:
        """Store ``new`` (a refreshed token) if ``previous``'s refresh token is still the stored one."""
        return self.r.run(plan_replace_bot(previous, new))

    def lock_rotation(self, workspace: str, owner: str, ttl: float) -> bool:
        return self.r.run(plan_lock_rotation(workspace, owner, ttl))

    def unlock_rotation(self, workspace: str, owner: str) -> None:
        self.r.run(plan_unlock_rotation(workspace, owner))

    # ---- one-time OAuth states --------------------------------------------------------------------

    def issue_state(self, state: str, now: float, ttl: float, *, client: str = "", per_client: int = STATES_PER_CLIENT,
                    window: float = CLIENT_WINDOW, most: int = MAX_STATES) -> Issue:
        """Remember a state just issued to ``client`` (an address), unless that client had ``per_client``
        states in the last ``window`` seconds or ``most`` states are outstanding (refused, nothing written).
        A false Issue without a refusal: the state exists already (issue another)."""
        done, wait = self.r.script(ISSUE_STATE_LUA)(
            keys=[keys.oauth_state(state), keys.OAUTH_STATES, keys.oauth_client(client)],
            args=[state, repr(now), int(ttl), int(ttl) + STATE_GRACE, per_client, window, most])
        if int(done) == 1:
            return Issue(True)
        return Issue(False, {-1: "client", -2: "full"}.get(int(done), ""), int(wait))

    def consume_state(self, state: str, now: float, ttl: float) -> bool:
        """True once for a state issued less than ``ttl`` seconds ago; it is gone after."""
        raw = self.r.script(CONSUME_STATE_LUA)(keys=[keys.oauth_state(state), keys.OAUTH_STATES], args=[state])
        if raw is None:
            return False
        try:
            issued = float(text(raw))
        except ValueError:
            return False
        return 0 <= now - issued <= ttl


class AsyncInstallations:
    """What the worker needs, for a redis.asyncio client: the same operations as :class:`Installations`
    (the same plans), awaited."""

    def __init__(self, client: Any) -> None:
        self.r = async_runner(client)

    async def bot(self, workspace: str) -> BotInstall | None:
        return await self.r.run(plan_bot(workspace))

    async def replace_bot(self, previous: BotInstall, new: BotInstall) -> bool:
        return await self.r.run(plan_replace_bot(previous, new))

    async def lock_rotation(self, workspace: str, owner: str, ttl: float) -> bool:
        return await self.r.run(plan_lock_rotation(workspace, owner, ttl))

    async def unlock_rotation(self, workspace: str, owner: str) -> None:
        await self.r.run(plan_unlock_rotation(workspace, owner))
