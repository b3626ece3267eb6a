"""The ``crmbot`` command.

    crmbot serve              web app + worker in one process (local use)
    crmbot web [--threads N]  the web app alone (Procfile ``web:``): verifies, commits, answers
    crmbot worker             the worker: delivers every message (Procfile ``worker:``)
    crmbot chat [--user ID]   take the diagnosis in this terminal (same machine, same store)
    crmbot outbox [--requeue ID]   list parked messages, or put one back in line
    crmbot outbox --check [--repair]  list messages neither due nor parked (and mark them due)
    crmbot clock              the reminder schedule (Procfile ``clock:``)
    crmbot remind --now ISO-8601 [--dry-run]   one pass of every reminder due at that instant
    crmbot line setup [--url URL] [--dry-run]  ready the LINE channel: token, webhook, rich menu
    crmbot line links --source NAME [--qr PNG]  a chat link (and QR code) that records where people came from
    crmbot console add-operator EMAIL --name NAME --role admin|operator|viewer   an operator account (the
                              password from standard input, or asked for on a terminal)
    crmbot console login-link [--url URL]   a one-time link to the console (only while no operator exists)

Heavy imports (Flask, the LINE SDK) happen inside the commands that need them, so ``chat`` starts fast.
"""

from __future__ import annotations

import argparse
import errno
import logging
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO, assert_never

from bot.config import Config
from conversations.errors import ConfigError, CrmbotError, StoreUnavailable

if TYPE_CHECKING:
    from bot.views import Button as views_Button
    from conversations.content import Script
    from conversations.outputs import Output

log = logging.getLogger("crmbot")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="crmbot", description="CRM diagnosis and KPI bot")
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the web app and a worker in one process (local use)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=None, help="default: $PORT or 8000")
    web = sub.add_parser("web", help="run the web app alone (Procfile web:)")
    web.add_argument("--host", default="127.0.0.1")
    web.add_argument("--port", type=int, default=None, help="default: $PORT or 8000")
    web.add_argument("--threads", type=_positive, default=16, help="request threads (default: 16)")
    sub.add_parser("worker", help="run the worker: delivers every reply, post and reminder")
    sub.add_parser("clock", help="run the quarterly reminder schedule")
    remind = sub.add_parser("remind", help="one pass of every reminder due at an instant, then exit")
    remind.add_argument("--now", required=True, help="the instant, ISO-8601 with a time zone")
    remind.add_argument("--dry-run", action="store_true", help="send nothing, change nothing")
    chat = sub.add_parser("chat", help="take the diagnosis in this terminal")
    chat.add_argument("--user", default="local", help="local user name (default: local)")
    ob = sub.add_parser("outbox", help="list parked messages")
    ob.add_argument("--requeue", metavar="ID", help="put a parked message back in line")
    ob.add_argument("--check", action="store_true", help="audit: list messages that are neither due nor parked")
    ob.add_argument("--repair", action="store_true", help="with --check: mark each one found due now")
    demo = sub.add_parser("demo", help="load a sample to look around the console with (marked as demo)")
    demo.add_argument("--remove", action="store_true", help="remove the sample: the figures are as before it")
    line = sub.add_parser("line", help="LINE channel tasks").add_subparsers(dest="line_command", required=True)
    line_setup = line.add_parser("setup", help="ready the LINE channel: check the token, set and test the "
                                 "webhook, install the rich menu (run again: changes only what is not right)")
    line_setup.add_argument("--url", help="the bot's public https:// address; the webhook becomes URL/line/webhook")
    line_setup.add_argument("--dry-run", action="store_true", help="read only: print what would change")
    line_links = line.add_parser("links", help="print a link that opens the chat with 「診断 NAME」 typed in, and "
                                 "write its QR code: the diagnoses it starts are counted under that source")
    line_links.add_argument("--source", required=True, help="the source's name: a-z, 0-9, - and _ (e.g. ads)")
    line_links.add_argument("--qr", metavar="PNG", help="where to write the QR code (default: line-NAME.png)")
    console = sub.add_parser("console", help="console accounts").add_subparsers(dest="console_command",
                                                                                   required=True)
    add_op = console.add_parser("add-operator", help="add an operator (the password from standard input, or "
                                "asked for on a terminal)")
    add_op.add_argument("email")
    add_op.add_argument("--name", required=True)
    add_op.add_argument("--role", choices=("admin", "operator", "viewer"), default="operator")
    link = console.add_parser("login-link", help="print a one-time login link (only while no operator exists: "
                              "it makes the first admin)")
    link.add_argument("--url", default="http://127.0.0.1:8000", help="the console's address (default: %(default)s)")
    args = parser.parse_args(argv)

    from bot.logs import setup

    setup("WARNING" if args.command in ("chat", "line") else args.log_level)
    try:
        config = Config.from_env()
        _observe(config, "WARNING" if args.command in ("chat", "line") else args.log_level)
        if args.command == "serve":
            return serve_cmd(config, args.host, args.port or config.port)
        if args.command == "web":
            return web_cmd(config, args.host, args.port or config.port, args.threads)
        if args.command == "worker":
            return worker_cmd(config)
        if args.command == "chat":
            return chat_cmd(config, args.user)
        if args.command == "clock":
            return clock_cmd(config)
        if args.command == "remind":
            return remind_cmd(config, args.now, args.dry_run)
        if args.command == "line" and args.line_command == "links":
            return line_links_cmd(config, args.source, args.qr)
        if args.command == "line":
            return line_setup_cmd(config, args.url, args.dry_run)
        if args.command == "demo":
            return demo_cmd(config, args.remove)
        if args.command == "console":
            if args.console_command == "add-operator":
                return add_operator_cmd(config, args.email, args.name, args.role)
            return login_link_cmd(config, args.url)
        return outbox_cmd(config, args.requeue, args.check, args.repair)
    except ConfigError as e:
        print(f"crmbot: configuration error: {e}", file=sys.stderr)
        return 2
    except CrmbotError as e:
        print(f"crmbot: {e}", file=sys.stderr)
        return 1


def _observe(config: Config, level: str) -> None:
    """The log format and error reports the configuration asks for (both off by default)."""
    if config.log_format != "text":
        from bot.logs import setup

        setup(level, config.log_format)
    if config.sentry_dsn:
        from bot.error_reports import init

        init(config.sentry_dsn)


@contextmanager
def _metrics_port(config: Config) -> Iterator[None]:
    """A worker's or the clock's own metrics on CRMBOT_METRICS_PORT while it runs (bot.metrics)."""
    if config.metrics_address is None:
        yield
        return
    from bot.metrics import MetricsServer

    host, port = config.metrics_address
    try:
        server = MetricsServer(host, port, config.metrics_token)
    except OSError as e:
        raise CrmbotError(f"metrics: cannot listen on {host}:{port}: {e.strerror}") from e
    try:
        yield
    finally:
        server.close()


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text[:20]!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def serve_cmd(config: Config, host: str, port: int) -> int:
    """The web app and a worker in one process (local use; production runs them apart). SIGTERM and
    Ctrl-C stop both cleanly, and the embedded Redis too if this process started it."""
    from bot.app import build_services, build_worker, create_app
    from bot.redis_conn import embedded_server
    from bot.web import ClientLimits, serve_web
    from bot.worker import WorkerThread

    # Without REDIS_URL the embedded Redis is looked up (started if no process has) here, so that
    # serve can stop it on the way out if it was the one that started it.
    embedded = None if config.redis_url else embedded_server(config)
    try:
        config, password_file = _local_console(config)
        svc = build_services(config)
        app = create_app(services=svc)
        worker = WorkerThread(lambda: build_worker(config, svc.script))
        worker.start()
        log.info("crmbot serving on http://%s:%d (LINE webhook: /line/webhook)", host, port)

        def ready(server: Any) -> None:
            print(console_link(svc.redis, server.addresses[0], password_file), flush=True)

        try:
            serve_web(app, host, port, limits=ClientLimits.from_config(config), ready=ready,
                      proxy=proxy_settings(config))  # until SIGTERM/Ctrl-C
        except KeyboardInterrupt:
            pass
        finally:
            worker.close()
    finally:
        if embedded is not None:
            embedded.stop()
    return 0


def _local_console(config: Config) -> tuple[Config, Any]:
    """``crmbot serve`` without CRMBOT_CONSOLE_PASSWORD: a password made once and kept (0600) in the
    data directory. Returns the config with it, and its file (None when the variable is set)."""
    if config.console_password:
        return config, None
    from bot.console.auth import local_password

    password, path = local_password(config.data_dir)
    return config.with_(console_password=password), path


def console_link(client: Any, address: tuple[str, int], password_file: Any = None) -> str:
    """The one-time login link ``crmbot serve`` prints (as Jupyter does): printed, never logged."""
    from bot.console.auth import ONCE_TTL, issue_login_token

    host, port = address
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    shown = f"[{host}]" if ":" in host else host
    from bot.console.operators import OperatorStore

    if OperatorStore(client, time.time).any():  # the link would open nothing: operators log in as themselves
        return f"Console: http://{shown}:{port}/console/login"
    lines = [f"Console: http://{shown}:{port}/console/login?token={issue_login_token(client)}",
             f"  (logs in once, within {ONCE_TTL // 3600} hours, to create the first admin"
             + (f"; the password is in {password_file})" if password_file else ")")]
    return "\n".join(lines)


def _read_password(stdin: TextIO) -> str:
    """The new operator's password: asked for twice on a terminal (not echoed), else standard input's first line."""
    if stdin.isatty():
        import getpass

        first = getpass.getpass("Password (10 characters or more): ")
        if getpass.getpass("Again: ") != first:
            raise CrmbotError("console: the passwords do not match")
        return first
    return stdin.readline().rstrip("\r\n")


def add_operator_cmd(config: Config, email: str, name: str, role: str, stdin: TextIO | None = None) -> int:
    """``crmbot console add-operator``: an operator account, written to the audit log as "cli"."""
    from bot.console import audit
    from bot.console.operators import OperatorError, OperatorStore
    from bot.redis_conn import connect

    password = _read_password(stdin or sys.stdin)
    client = connect(config)
    try:
        op = OperatorStore(client, time.time).create(email, name, role, password)
    except OperatorError as e:
        raise CrmbotError(f"console: cannot add {email}: {e.reason.replace('_', ' ')}") from None
    audit.record(client, who="cli", action="operator.create", target=f"operator:{op.id}",
                 detail=f"{op.name} ({op.role})", now=time.time())
    print(f"crmbot: operator {op.email} added ({op.role})")
    return 0


def login_link_cmd(config: Config, url: str) -> int:
    """``crmbot console login-link``: a one-time link for the shared account, to make the first admin."""
    from bot.console.auth import ONCE_TTL, issue_login_token
    from bot.console.operators import OperatorStore
    from bot.redis_conn import connect

    client = connect(config)
    if OperatorStore(client, time.time).any():
        raise CrmbotError("console: operators exist; log in with your own account "
                          "(or add one with crmbot console add-operator)")
    print(f"{url.rstrip('/')}/console/login?token={issue_login_token(client)}")
    print(f"  (logs in once, within {ONCE_TTL // 3600} hours)")
    return 0


def proxy_settings(config: Config) -> dict[str, Any] | None:
    """waitress' trusted-proxy settings for CRMBOT_TRUST_PROXY: from that peer only, X-Forwarded-For (its
    entry CRMBOT_PROXY_HOPS from the end) gives the client's address (REMOTE_ADDR) and
    X-Forwarded-Proto the scheme (HTTPS: the console's cookie is Secure). From any other peer, and with
    no proxy configured, waitress drops every X-Forwarded-* header before the app sees it."""
    if config.trusted_proxy is None:
        return None
    return {"trusted_proxy": config.trusted_proxy, "trusted_proxy_count": config.proxy_hops,
            "trusted_proxy_headers": {"x-forwarded-for", "x-forwarded-proto"}}


def web_cmd(config: Config, host: str, port: int, threads: int = 16) -> int:
    """The web app alone (Procfile ``web:``), served by waitress (bot.web); SIGTERM stops it cleanly."""
    from bot.app import build_services, create_app
    from bot.web import ClientLimits, serve_web

    svc = build_services(config)
    app = create_app(services=svc)
    try:
        serve_web(app, host, port, threads=threads, limits=ClientLimits.from_config(config),
                  proxy=proxy_settings(config))
    except OSError as e:
        if e.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            raise
        raise CrmbotError(f"web: cannot listen on {host}:{port}: {e.strerror}") from e
    return 0


def worker_cmd(config: Config) -> int:
    """Deliver every job until SIGTERM or SIGINT; the attempts in flight finish first."""
    import asyncio

    from bot.app import build_worker
    from conversations.content import load_script

    script = load_script(config.locale, config.content_dir)
    _say_if_cannot_persist(config)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        worker = await build_worker(config, script)
        try:
            await worker.run(stop)
        finally:
            await worker.close()

    with _metrics_port(config):
        asyncio.run(main())
    return 0


def _say_if_cannot_persist(config: Config) -> None:
    """The worker's start-up check of the disk under Redis (the web tier's is in build_services)."""
    from bot.persistence import log_if_cannot_persist
    from bot.redis_conn import connect

    try:
        client = connect(config)
    except CrmbotError:  # Redis not reachable now: the worker says so itself, and waits for it
        return
    try:
        log_if_cannot_persist(client, config)
    finally:
        client.close()


def parse_instant(text: str) -> float:
    from datetime import datetime

    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"--now: not an ISO-8601 time: {text[:40]!r}") from None
    if when.tzinfo is None:
        raise ConfigError(f"--now: give a time zone, e.g. {text.strip()}+09:00")
    return when.timestamp()


def remind_cmd(config: Config, now_text: str, dry_run: bool, out: TextIO | None = None) -> int:
    """One pass at the given instant: what is due is queued (the worker delivers it); prints a summary."""
    from bot.app import build_reminders, build_services

    now = parse_instant(now_text)
    svc = build_services(config, clock=lambda: now, slack_app=False)
    summary = build_reminders(svc).run(now, dry_run=dry_run)
    print(summary.render(), file=out or sys.stdout)
    return 0


from conversations.keys import CLOCK_LOCK as CLOCK_LOCK  # noqa: E402  (kept importable from here)


def clock_pass(svc: object, reminders: object, owner: str, interval: float) -> bool:
    """One scheduled pass by at most one clock at a time (see :mod:`bot.clock`); False if another clock
    holds the lock. ``interval`` is unused: the lock is short-lived and renewed while the pass runs."""
    from bot.clock import BUSY, Clock, reminder_steps

    return Clock(svc.redis, reminder_steps(reminders, svc.clock), owner=owner).run_pass() != BUSY  # type: ignore[attr-defined,arg-type]


def clock_cmd(config: Config, interval: float = 60.0) -> int:
    """The clock process: the KPI core and the reminders over Redis (no Bolt app, no web app)."""
    from bot.app import build_reminders, build_services
    from bot.clock import serve

    svc = build_services(config, slack_app=False)
    with _metrics_port(config):
        return serve(svc.redis, build_reminders(svc), svc.clock, interval)


def line_setup_cmd(config: Config, url: str | None, dry_run: bool, out: TextIO | None = None) -> int:
    """Ready the LINE channel (see bot.line.setup); the rich menu's labels come from the script file."""
    from bot.line.setup import setup_cmd
    from conversations.content import load_script

    script = load_script(config.locale, config.content_dir)
    return setup_cmd(config, url, dry_run, out or sys.stdout, script.richmenu)


def line_links_cmd(config: Config, source: str, qr: str | None, out: TextIO | None = None) -> int:
    """A source's chat link and QR code (see bot.line.links); the text's keyword comes from the script file."""
    from bot.line.links import links_cmd
    from conversations.content import load_script

    return links_cmd(config, load_script(config.locale, config.content_dir), source, qr, out or sys.stdout)
def demo_cmd(config: Config, remove: bool, out: TextIO | None = None, clock: Callable[[], float] | None = None) -> int:
    """Load the demo sample into the running data (bot/demo.py), or remove it (``clock``: for tests)."""
    from bot import demo
    from bot.app import build_services

    svc = build_services(config, slack_app=False, **({"clock": clock} if clock else {}))
    say = out or sys.stdout
    if remove:
        gone = demo.remove(svc.redis)
        print(f"demo: removed ({gone} diagnoses); the figures are as they were before it", file=say)
        return 0
    loaded = demo.load(svc.redis, svc.bot.machine, svc.clock(), expiry=config.conversation_ttl)
    print(f"demo: loaded {loaded}. Open the console to look around; "
          "remove it with `crmbot demo --remove` (or the button on the overview)", file=say)
    return 0


def outbox_cmd(config: Config, requeue: str | None, check: bool = False, repair: bool = False) -> int:
    from bot.app import build_services

    svc = build_services(config)
    if check or repair:
        report = svc.outbox.audit(repair=repair, steps=10**9)
        for o in report.orphans:
            print(f"{o.job_id}\t{o.transport}\t{o.user}\tlease={o.lease or '-'}")
        print(report)
        return 1 if report.orphans and not repair else 0
    if requeue:
        ok = svc.outbox.requeue(requeue)
        print("requeued" if ok else "not found")
        return 0 if ok else 1
    rows = svc.outbox.parked()
    for row in rows:
        print(f"{row.id}\t{row.transport}\t{row.user}\tattempts={row.attempts}\t{row.reason}")
    print(f"{len(rows)} parked message(s)")
    return 0


def chat_cmd(config: Config, user: str, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """The diagnosis in the terminal: same machine, same store, transport "cli" (answered in place)."""
    from bot import views
    from bot.core import Bot, InboundEvent
    from bot.redis_conn import connect
    from conversations import inputs
    from conversations.content import load_script
    from conversations.keys import Subject
    from conversations.machine import build
    from conversations.store import RedisStore
    from conversations.transports import Transport

    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    script = load_script(config.locale, config.content_dir)
    client = connect(config)
    bot = Bot(
        RedisStore(client, dedupe_ttl=config.dedupe_ttl),
        build(config.machine_settings(script.qualify.counts)),
        None,
        conversation_ttl=config.conversation_ttl,
    )
    subject = Subject(Transport.CLI, user)
    buttons: list[views.Button] = []

    def show(outputs: Sequence[Output]) -> None:
        nonlocal buttons
        buttons = []
        for out in outputs:
            print("\n" + terminal_text(script, out), file=stdout)
            buttons = views.buttons_for(script, out) or buttons
        if buttons:
            print(_menu(buttons), file=stdout)

    def send(inp: inputs.Input) -> None:
        show(bot.handle(InboundEvent(subject, uuid.uuid4().hex, inp, timestamp=time.time())).outputs)

    print(f"{script.title} — Ctrl-D / 'quit' で終了 (to quit)", file=stdout)
    try:
        send(inputs.Input(inputs.FOLLOW) if bot.store.load(subject).state == "idle" else inputs.Input(inputs.CONTINUE))
        for line in stdin:
            text = line.strip()
            if text.lower() in ("quit", "exit", "q!"):
                break
            if not text:
                continue
            chosen = _pick(text, buttons)
            send(inputs.from_button(chosen.data) if chosen
                 else inputs.from_text(text, script.keywords, script.glossary))
    except KeyboardInterrupt:
        pass
    except StoreUnavailable as e:
        print(f"crmbot: {e}", file=sys.stderr)
        return 1
    return 0


def terminal_text(script: Script, out: Output) -> str:
    """One output as the terminal shows it: the words every channel uses (bot.views), the result as its
    text (the terminal has no card)."""
    from bot import views
    from conversations.outputs import (
        Advice,
        BookingNote,
        ConfirmRestart,
        ConsultAck,
        Definition,
        DoneHelp,
        Erasure,
        FollowOffer,
        FollowStep,
        Greeting,
        Heard,
        Notice,
        Offer,
        OptinOffer,
        Qualify,
        Question,
        Reminder,
        Result,
        Resume,
        Slots,
    )

    match out:
        case Result(answers=answers, prev=prev, peers=peers):
            return views.result_text(script, answers, prev, peers)
        case (Greeting() | Offer() | Notice() | Question() | Resume() | ConfirmRestart() | Advice() | DoneHelp()
              | OptinOffer() | ConsultAck() | Reminder() | Definition() | Erasure() | Heard() | Slots()
              | BookingNote() | Qualify() | FollowOffer() | FollowStep()):
            return views.plain_text(script, out)
        case _:
            assert_never(out)


def _is_answer(b: views_Button) -> bool:
    return b.label[:1] in "ABCD" and b.label[1:2] == ":"


def _menu(buttons: Sequence[views_Button]) -> str:
    """Answers are typed by letter (as on LINE); the other buttons get numbers: 1) back 2) restart."""
    parts, n = [], 0
    for b in buttons:
        if _is_answer(b):
            parts.append(b.label)
        else:
            n += 1
            parts.append(f"{n}) {b.label}")
    return "  [" + " / ".join(parts) + "]"


def _pick(text: str, buttons: Sequence[views_Button]) -> views_Button | None:
    others = [b for b in buttons if not _is_answer(b)]
    if text.isdigit() and 1 <= int(text) <= len(others):
        return others[int(text) - 1]
    return None
