#!/usr/bin/env python3
"""Quill's benchmark: Quill and its peers side by side, on one seeded database, one table.

Run it through `bench/run` (see BENCHMARKS.md). Everything stays on this machine: the
servers bind to 127.0.0.1, wrk and pgbench talk to them there, every run is bounded.

Quill authenticates bearer tokens and will not start on PostgreSQL without a key: it gets
`AUTH_JWT_SECRET`, a secret made for each run. A query of `quill.json` with `"auth": <role>`
is sent with `Authorization: Bearer <token>`, the token minted by Quill's own `token`
command (`quill.json`'s "token"): admin for the queries that read `email` (q2 among them,
so that every answer holds what the peers' do) and for q4's createPost. q2a is q2 without a
token (the email then null) and q2t is q2a with the token of a user who is not the one read,
so the same answer: the two side by side give the cost of verifying a token. The peers get
no token and have neither q2a nor q2t.

`--fanout` is another benchmark: subscriptions. Each server of `--fanout-servers` in turn runs
as two instances on the one database and Redis, and `bench/fanout/fanout.mjs` opens the
subscribers over both, writes posts at a fixed rate to the first and counts and times every
delivery (see BENCHMARKS.md, "Subscriptions: fan-out across two instances"). `--smoke` ends
with a small one, Quill alone.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PEERS = BENCH / "peers"
FANOUT = BENCH / "fanout"
RESULTS = BENCH / "results"
PG_ADMIN = os.environ.get("BENCH_POSTGRES_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379")
DATABASE = "quill_bench"
QUERIES = ["q1", "q1f", "q2", "q2a", "q2t", "q3_first", "q3", "q4", "q5"]
# The secret Quill verifies tokens with (and `token` signs them with), new for each run.
AUTH_JWT_SECRET = secrets.token_hex(32)
# Tokens outlive the longest run (a full run is about 20 minutes, the soak 10 by default).
TOKEN_TTL = "24h"
# The soak's mix (run at once, a third of the connections each), and the window whose RSS
# must hold still: every sample from the end of the first minute on within SOAK_LIMIT (max / min).
SOAK_QUERIES = ["q1", "q1f", "q5"]
SOAK_SAMPLE_S = 10
SOAK_SETTLE_S = 60
SOAK_LIMIT = 1.10
# Debian's own interpreter, where its python3-matplotlib is importable.
SYSTEM_PYTHON = "/usr/bin/python3"
CLK_TCK = os.sysconf("SC_CLK_TCK")
# The fan-out targets (Quill's; a peer's figures are reported only): nothing lost or
# duplicated, p99 from commit to client, RSS of each instance with its idle subscribers.
FANOUT_P99_MS = 50
FANOUT_IDLE_RSS_MB = 80
# --smoke's fan-out: Quill alone, this many subscribers over two instances for this long.
SMOKE_FANOUT_SUBSCRIBERS = 20
SMOKE_FANOUT_SECONDS = 2


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, check=True, **kwargs)


def psql(database_url: str, sql: str) -> str:
    return run(["psql", database_url, "-v", "ON_ERROR_STOP=1", "-Atqc", sql], capture_output=True, text=True).stdout


def database_url(name: str) -> str:
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


# Every client reaches the benchmark database over plain TCP on loopback, as the Node
# peers' `pg` does by default; libpq and sqlx would otherwise negotiate TLS
# (sslmode=prefer) and pay for encryption that no peer pays for.
BENCH_DATABASE_URL = database_url(DATABASE) + "?sslmode=disable"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: dict, timeout: float = 10, headers: dict | None = None) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json", **(headers or {})}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def pointer(document, path: str):
    for part in path.strip("/").split("/"):
        document = document[int(part)] if isinstance(document, list) else document[part]
    return document


def count_keys(document, key: str) -> int:
    if isinstance(document, dict):
        return sum((k == key) + count_keys(v, key) for k, v in document.items())
    if isinstance(document, list):
        return sum(count_keys(v, key) for v in document)
    return 0


def count_strings(document, key: str) -> int:
    """How many `key`s hold a string (an email Quill hides is there, as null)."""
    if isinstance(document, dict):
        return sum((k == key and isinstance(v, str)) + count_strings(v, key) for k, v in document.items())
    if isinstance(document, list):
        return sum(count_strings(v, key) for v in document)
    return 0


@dataclass
class Server:
    name: str
    spec: dict
    directory: Path
    port: int = 0
    process: subprocess.Popen | None = None
    cursor_900: str | None = None
    log_file: object = None
    # Bearer tokens by role, for the queries that name one ("auth").
    tokens: dict[str, str] = field(default_factory=dict)
    # Settings of this instance alone, over the spec's (the fan-out's events channel).
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/graphql"

    def has(self, query: str) -> bool:
        return query in self.spec["queries"]

    def headers(self, query: str) -> dict:
        """The HTTP headers a query is sent with: a bearer token when it names a role."""
        role = self.spec["queries"][query].get("auth")
        return {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}

    def environment(self, env: dict) -> dict:
        """The process environment of the server and of its commands: the spec's "env"
        with its placeholders filled."""
        fill = {"<QUILL_BIN>": env["QUILL_BIN"], "<AUTH_JWT_SECRET>": AUTH_JWT_SECRET}
        spec_env = {k: fill.get(v, v) for k, v in self.spec.get("env", {}).items()}
        return {**os.environ, **env, **spec_env, **self.extra_env}

    def mint_tokens(self, env: dict) -> None:
        """One token per role the queries name, from the spec's "token" command."""
        roles = {q["auth"] for q in self.spec["queries"].values() if q.get("auth")}
        roles = sorted(roles | ({self.spec["fanout"]["auth"]} if self.spec.get("fanout", {}).get("auth") else set()))
        if roles and "token" not in self.spec:
            raise SystemExit(f"{self.name}: queries name roles {roles}, but the spec has no token command")
        for role in roles:
            fill = {"<QUILL_BIN>": env["QUILL_BIN"], "<ROLE>": role, "<TTL>": TOKEN_TTL}
            command = [fill.get(part, part) for part in self.spec["token"]]
            result = subprocess.run(command, cwd=self.directory, env=self.environment(env), capture_output=True, text=True)
            token = result.stdout.strip()
            if result.returncode or not re.fullmatch(r"[\w-]+\.[\w-]+\.[\w-]+", token):
                raise SystemExit(f"{self.name}: `{' '.join(command)}` did not print a token:\n{result.stderr.strip()}")
            self.tokens[role] = token

    def install(self) -> None:
        command = self.spec.get("install")
        if command:
            npm_install(self.name, self.directory, command)

    def start(self, env: dict) -> None:
        self.port = free_port()
        command = [part.replace("<QUILL_BIN>", env["QUILL_BIN"]) for part in self.spec["start"]]
        process_env = self.environment(env)
        process_env.update(PORT=str(self.port), BIND_ADDR=f"127.0.0.1:{self.port}")
        self.log_file = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            command, cwd=self.directory, env=process_env, stdout=self.log_file, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log_file.seek(0)
                raise SystemExit(f"{self.name} exited at start:\n{self.log_file.read().decode(errors='replace')}")
            try:
                if "errors" not in post(self.url, {"query": "{ __typename }"}, timeout=2):
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"{self.name} did not answer on {self.url}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def cpu_ticks(self) -> int:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime, all threads

    def status_mb(self, key: str) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def peak_rss_mb(self) -> float:
        return self.status_mb("VmHWM")

    def rss_mb(self) -> float:
        return self.status_mb("VmRSS")


def npm_install(name: str, directory: Path, command: list[str]) -> None:
    """`npm ci` (the command given) unless node_modules is as new as the lockfile."""
    marker = directory / "node_modules" / ".package-lock.json"
    lock = directory / "package-lock.json"
    if marker.exists() and lock.exists() and marker.stat().st_mtime >= lock.stat().st_mtime:
        return
    log(f"installing {name}: {' '.join(command)}")
    run(command, cwd=directory, stdout=subprocess.DEVNULL)


def substitute(value, user_ids: list[str], server: Server):
    if isinstance(value, dict):
        return {k: substitute(v, user_ids, server) for k, v in value.items()}
    if value == "<USER_ID>":
        return user_ids[0]
    if value == "<CURSOR_900>":
        return server.cursor_900
    if value == "<NEW_UUID>":
        import uuid

        return str(uuid.uuid4())
    return value


def resolve_cursor(server: Server) -> None:
    spec = server.spec["cursor"]
    cursor = None
    for _ in range(9):
        cursor = pointer(post(server.url, {"query": spec["query"], "variables": {"after": cursor}}), spec["endCursor"])
    server.cursor_900 = cursor


def verify(server: Server, user_ids: list[str], ninth_hundred: str, title: str) -> None:
    """Every answer must be complete and error-free before it is timed."""
    for query in filter(server.has, QUERIES):
        spec = server.spec["queries"][query]
        variables = substitute(spec["variables"], user_ids, server)
        if query == "q4":
            variables = {k: (title if v == "bench post" else v) for k, v in variables.items()}
        body = post(server.url, {"query": spec["query"], "variables": variables}, headers=server.headers(query))
        problem = None
        if body.get("errors"):
            problem = f"errors: {body['errors']}"
        elif query in ("q1", "q1f") and (count_keys(body, "title") != 500 or count_strings(body, "email") != 550):
            problem = f"{count_keys(body, 'title')} titles, {count_strings(body, 'email')} emails (want 500, 550)"
        elif query == "q5" and (len(first_connection(body)["nodes"]) != 20 or count_keys(body, "title") != 100):
            problem = f"{len(first_connection(body)['nodes'])} users, {count_keys(body, 'title')} titles (want 20, 100)"
        elif query == "q2" and count_strings(body, "email") != 1:
            problem = "no user with an email"
        elif query in ("q2a", "q2t") and count_keys(body, "email") != 1:
            problem = "no user"
        elif query == "q2t" and body != post(server.url, {"query": server.spec["queries"]["q2a"]["query"], "variables": variables}):
            problem = "the answer differs from q2a's (the same query without a token)"
        elif query in ("q3", "q3_first") and count_strings(body, "email") != 20:
            problem = f"{count_strings(body, 'email')} users with an email (want 20)"
        elif query == "q3" and not all(i > ninth_hundred for i in ids_in(body)):
            problem = "the page after 900 users holds users of the first 900"
        if problem:
            raise SystemExit(f"{server.name} {query}: {problem}\n{json.dumps(body)[:500]}")
    psql(BENCH_DATABASE_URL, f"DELETE FROM posts WHERE title = '{title}'")


def first_connection(body: dict) -> dict:
    """The query's one top-level field: the users connection, whatever each server calls it."""
    return next(iter(body["data"].values()))


def ids_in(document) -> list[str]:
    found = []
    if isinstance(document, dict):
        for k, v in document.items():
            if k == "id" and isinstance(v, str):
                found.append(v)
            else:
                found.extend(ids_in(v))
    elif isinstance(document, list):
        for v in document:
            found.extend(ids_in(v))
    return found


def lua_script(server: Server, query: str, user_ids: list[str], rate_per_connection: float | None, title: str) -> str:
    spec = server.spec["queries"][query]
    template = json.dumps({"query": spec["query"], "variables": spec["variables"]})
    if query == "q4":
        template = template.replace('"bench post"', json.dumps(title))
    lines = ['wrk.method = "POST"', 'wrk.headers["Content-Type"] = "application/json"']
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in server.headers(query).items()]
    dynamic = "<USER_ID>" in template or "<NEW_UUID>" in template
    template = template.replace("<CURSOR_900>", server.cursor_900 or "")
    if not dynamic:
        lines.append(f"wrk.body = {lua_string(template)}")
    else:
        lines.append("local ids = {" + ",".join(lua_string(i) for i in user_ids) + "}")
        lines.append(f"local template = {lua_string(template)}")
        lines.append("local n = 0")
        lines.append("math.randomseed(os.time())")
        lines.append(
            "local function uuid() return (string.gsub('xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx', '[xy]', function(c) "
            "local v = (c == 'x') and math.random(0, 15) or math.random(8, 11) return string.format('%x', v) end)) end"
        )
        lines.append(
            "function request() n = n + 1 local id = ids[(n % #ids) + 1] "
            "local body = string.gsub(template, '<USER_ID>', id) body = string.gsub(body, '<NEW_UUID>', uuid()) "
            "return wrk.format(nil, nil, nil, body) end"
        )
    if rate_per_connection:
        lines.append(f"function delay() return {1000 / rate_per_connection:.3f} end")
    return "\n".join(lines) + "\n"


def lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


def parse_wrk(output: str) -> dict:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)

    def percentile(p: str) -> float:
        match = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    return {
        "rps": rps,
        "requests": requests,
        "failed": (int(non_2xx.group(1)) if non_2xx else 0) + (sum(map(int, errors.groups())) if errors else 0),
        "p50_ms": percentile("50"),
        "p99_ms": percentile("99"),
    }


def metric(server: Server, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + " ") or line.startswith(name + "{"))


@dataclass
class Measurement:
    server: str
    query: str
    runs: list[dict] = field(default_factory=list)


def measure(server: Server, query: str, args, user_ids: list[str], title: str) -> dict:
    rate = args.q4_rate / args.connections if query == "q4" else None
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(lua_script(server, query, user_ids, rate, title))
    # The warm-up writes under another title, so q4's rows count the measured window alone.
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as warmup:
        warmup.write(lua_script(server, query, user_ids, rate, title + " warm-up"))
    wrk = ["wrk", "-t1", f"-c{args.connections}", "--timeout", "10s", "--latency", "-s", script.name, server.url]
    try:
        if args.warmup:
            warm = wrk[:3] + [f"-d{args.warmup}s"] + wrk[3:]
            warm[warm.index(script.name)] = warmup.name
            run(warm, capture_output=True)
        ticks = server.cpu_ticks()
        sql = metric(server, "db_queries_total") if server.name == "quill" else None
        output = run(wrk[:3] + [f"-d{args.duration}s"] + wrk[3:], capture_output=True, text=True).stdout
        result = parse_wrk(output)
        cpu_ms = (server.cpu_ticks() - ticks) * 1000 / CLK_TCK
        result["cpu_ms_per_req"] = cpu_ms / max(result["requests"], 1)
        result["rss_mb"] = server.peak_rss_mb()
        result["sql_per_req"] = (metric(server, "db_queries_total") - sql) / max(result["requests"], 1) if sql is not None else None
        return result
    finally:
        os.unlink(script.name)
        os.unlink(warmup.name)


def measure_pgbench(args) -> dict:
    with tempfile.TemporaryDirectory() as logs:
        # Prepared statements, as Quill (sqlx) runs its statements.
        script = ["-M", "prepared", "-f", str(BENCH / "pgbench-q1.sql")]
        command = ["pgbench", "-n", f"-c{args.connections}", "-j2", f"-T{args.duration}", *script, "-l", "--log-prefix", f"{logs}/tx", BENCH_DATABASE_URL]
        if args.warmup:
            run(command[:3] + ["-j2", f"-T{args.warmup}", *script, BENCH_DATABASE_URL], capture_output=True)
        output = run(command, capture_output=True, text=True).stdout
        latencies = sorted(
            int(line.split()[2]) / 1000 for path in Path(logs).iterdir() for line in path.read_text().splitlines()
        )
    tps = float(re.search(r"tps = ([\d.]+)", output).group(1))
    return {
        "rps": tps,
        "requests": len(latencies),
        "failed": 0,
        "p50_ms": latencies[len(latencies) // 2],
        "p99_ms": latencies[int(len(latencies) * 0.99)],
        "cpu_ms_per_req": None,
        "rss_mb": None,
        "sql_per_req": 2,
    }


def summarise(measurement: Measurement) -> dict:
    runs = measurement.runs
    rps = [r["rps"] for r in runs]
    median_run = sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]

    def median(key):
        values = [r[key] for r in runs if r[key] is not None]
        return round(statistics.median(values), 3) if values else None

    return {
        "server": measurement.server,
        "query": measurement.query,
        "rps": round(statistics.median(rps), 1),
        "rps_min": round(min(rps), 1),
        "rps_max": round(max(rps), 1),
        "p50_ms": median("p50_ms"),
        "p99_ms": median("p99_ms"),
        "cpu_ms_per_req": median("cpu_ms_per_req"),
        "rss_mb": round(max(r["rss_mb"] for r in runs), 1) if runs[0]["rss_mb"] is not None else None,
        "sql_per_req": median("sql_per_req"),
        "requests": sum(r["requests"] for r in runs),
        "failed": sum(r["failed"] for r in runs),
        **({"rows_written": median_run.get("rows_written")} if "rows_written" in median_run else {}),
    }


def span(row: dict) -> str:
    return f"{row['rps_min']:.0f}..{row['rps_max']:.0f}"


def table(rows: list[dict]) -> str:
    header = f"{'server':<13}{'query':<9}{'req/s':>10}{'range':>19}{'p50 ms':>9}{'p99 ms':>9}{'cpu ms/req':>12}{'rss MB':>8}{'sql/req':>9}{'failed':>8}"
    lines = [header, "-" * len(header)]
    fmt = lambda v, spec: "-" if v is None else format(v, spec)
    for r in rows:
        lines.append(
            f"{r['server']:<13}{r['query']:<9}{r['rps']:>10.1f}{span(r):>19}"
            f"{fmt(r['p50_ms'], '.2f'):>9}{fmt(r['p99_ms'], '.2f'):>9}{fmt(r['cpu_ms_per_req'], '.3f'):>12}"
            f"{fmt(r['rss_mb'], '.1f'):>8}{fmt(r['sql_per_req'], '.2f'):>9}{r['failed']:>8}"
        )
    return "\n".join(lines)


def apt_install(package: str) -> None:
    """Install a Debian package, refreshing the package lists first if need be."""
    log(f"installing {package}")
    if subprocess.run(["apt-get", "install", "-y", "-qq", package], stdout=subprocess.DEVNULL).returncode:
        run(["apt-get", "update", "-qq"], stdout=subprocess.DEVNULL)
        run(["apt-get", "install", "-y", "-qq", package], stdout=subprocess.DEVNULL)


def release_build(package: str, what: str) -> str:
    """A release build of the workspace's `package` (whose binary has its name); its path."""
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    log(f"building {what} (release)")
    run(["cargo", "build", "--release", "--locked", "-q", "-p", package], cwd=ROOT)
    return str(target / "release" / package)


def quill_binary(args) -> str:
    """The given `--quill-bin`, or a release build of this checkout."""
    if args.quill_bin:
        path = Path(args.quill_bin).resolve()
        if not os.access(path, os.X_OK):
            raise SystemExit(f"--quill-bin {args.quill_bin}: not an executable file")
        log(f"using the Quill binary {args.quill_bin} (no build)")
        return str(path)
    return release_build("api", "Quill")


def seed_database(quill_bin: str) -> tuple[dict, list[str]]:
    """A fresh `quill_bench`, seeded by Quill; the servers' environment and the user ids."""
    log(f"creating and seeding the database {DATABASE}")
    psql(PG_ADMIN, f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    psql(PG_ADMIN, f"CREATE DATABASE {DATABASE}")
    env = {"DATABASE_URL": BENCH_DATABASE_URL, "REDIS_URL": REDIS_URL, "QUILL_BIN": quill_bin}
    run([quill_bin, "seed", "--users", "1000", "--posts-per-user", "10"], env={**os.environ, **env}, stdout=subprocess.DEVNULL)
    # The seeding's writes settled before anything is measured: otherwise autovacuum
    # analyses the new tables, and the first timed checkpoint writes them out, at some
    # point of the run (the soak's step at five minutes, BENCHMARKS.md "Soak").
    psql(env["DATABASE_URL"], "VACUUM ANALYZE")
    psql(PG_ADMIN, "CHECKPOINT")
    return env, psql(env["DATABASE_URL"], "SELECT id FROM users ORDER BY id").split()


def load_server(name: str) -> Server:
    spec_path = BENCH / "quill.json" if name == "quill" else PEERS / name / "bench.json"
    return Server(name, json.loads(spec_path.read_text()), ROOT if name == "quill" else PEERS / name)


def start_server(server: Server, env: dict, user_ids: list[str]) -> None:
    """Install, start and verify one server."""
    server.install()
    server.start(env)
    server.mint_tokens(env)
    resolve_cursor(server)
    verify(server, user_ids, user_ids[899], f"verify {server.name}")
    log(f"{server.name} answers every query completely on {server.url}")


def soak_verdict(samples: list[dict]) -> dict:
    """RSS from the end of the first minute on: max / min at most SOAK_LIMIT."""
    window = [s["rss_mb"] for s in samples if s["seconds"] >= SOAK_SETTLE_S]
    if len(window) < 2:
        return {"pass": False, "reason": f"fewer than two samples after {SOAK_SETTLE_S} s"}
    ratio = max(window) / min(window)
    return {
        "pass": ratio <= SOAK_LIMIT,
        "first_after_settle_mb": round(window[0], 1),
        "min_mb": round(min(window), 1),
        "max_mb": round(max(window), 1),
        "max_over_min": round(ratio, 3),
        "limit": SOAK_LIMIT,
    }


def plot_soak(json_path: Path, png_path: Path) -> None:
    """RSS against minutes, drawn by bench/plot_soak.py with whichever Python has matplotlib."""
    python = sys.executable
    if importlib.util.find_spec("matplotlib") is None:
        # Debian's python3-matplotlib serves Debian's own interpreter, not another one on PATH.
        python = SYSTEM_PYTHON
        if subprocess.run([python, "-c", "import matplotlib"], capture_output=True).returncode:
            apt_install("python3-matplotlib")
    run([python, str(BENCH / "plot_soak.py"), str(json_path), str(png_path)])


def soak(args, quill_bin: str) -> None:
    """Quill alone under q1, q1f and q5 at once (a third of the connections each), its RSS sampled every 10 s."""
    env, user_ids = seed_database(quill_bin)
    server = load_server("quill")
    samples: list[dict] = []
    totals: dict[str, dict] = {}
    scripts: dict[str, str] = {}
    loads: list[tuple[str, subprocess.Popen]] = []
    stop = threading.Event()
    total_s = int(args.soak_minutes * 60)
    try:
        start_server(server, env, user_ids)
        for query in SOAK_QUERIES:
            with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
                script.write(lua_script(server, query, user_ids, None, "soak"))
            scripts[query] = script.name
        began = time.monotonic()

        def sample() -> None:
            n = 0
            while True:
                samples.append({"seconds": round(time.monotonic() - began, 1), "rss_mb": round(server.rss_mb(), 2)})
                n += 1
                if n * SOAK_SAMPLE_S > total_s or stop.wait(max(0.0, began + n * SOAK_SAMPLE_S - time.monotonic())):
                    return

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        log(f"soak: {', '.join(SOAK_QUERIES)} at once, {args.connections} connections shared, for {args.soak_minutes} min")
        for i, query in enumerate(SOAK_QUERIES):
            connections = args.connections // len(SOAK_QUERIES) + (i < args.connections % len(SOAK_QUERIES))
            # A little past the last sample, so that every sample is taken under load.
            wrk = ["wrk", "-t1", f"-c{connections}", f"-d{total_s + 2}s", "--timeout", "10s", "--latency", "-s", scripts[query], server.url]
            loads.append((query, subprocess.Popen(wrk, stdout=subprocess.PIPE, text=True)))
        for query, process in loads:
            output, _ = process.communicate()
            if process.returncode:
                raise SystemExit(f"wrk for {query} exited with {process.returncode}")
            result = parse_wrk(output)
            totals[query] = {"requests": result["requests"], "failed": result["failed"], "rps": result["rps"], "p99_ms": result["p99_ms"]}
        sampler.join(timeout=SOAK_SAMPLE_S + 5)
    finally:
        stop.set()
        for _, process in loads:
            if process.poll() is None:
                process.kill()
                process.wait()
        server.stop()
        for name in scripts.values():
            os.unlink(name)

    verdict = soak_verdict(samples)
    json_path, png_path = RESULTS / "soak.json", RESULTS / "soak.png"
    RESULTS.mkdir(parents=True, exist_ok=True)
    report = {"minutes": args.soak_minutes, "connections": args.connections, "sample_s": SOAK_SAMPLE_S,
              "queries": totals, "samples": samples, "verdict": verdict}
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    for s in samples:
        print(f"{s['seconds']:>7.1f} s {s['rss_mb']:>8.1f} MB")
    for query, total in totals.items():
        print(f"{query}: {total['rps']:.1f} req/s, p99 {total['p99_ms']:.2f} ms, {total['requests']} requests, {total['failed']} failed")
    if "max_over_min" in verdict:
        print(
            f"soak: RSS from {SOAK_SETTLE_S} s on {verdict['min_mb']}..{verdict['max_mb']} MB, max/min "
            f"{verdict['max_over_min']:.3f} (limit {SOAK_LIMIT:.2f}): {'PASS' if verdict['pass'] else 'FAIL'}"
        )
    else:
        print(f"soak: FAIL, {verdict['reason']}")
    plot_soak(json_path, png_path)
    print(f"written to {os.path.relpath(json_path, ROOT)} and {os.path.relpath(png_path, ROOT)}")
    failed = {q: t["failed"] for q, t in totals.items() if t["failed"]}
    if failed:
        raise SystemExit(f"failed requests: {failed}")
    if not verdict["pass"]:
        raise SystemExit("soak: RSS did not hold within the limit")


def metrics_lines(server: Server, names: tuple[str, ...]) -> dict[str, float]:
    """The lines of Quill's /metrics for these metric names, by series (labels included)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5) as response:
        text = response.read().decode()
    series = {}
    for line in text.splitlines():
        if line.startswith(names):
            key, value = line.rsplit(" ", 1)
            series[key] = float(value)
    return series


def log_problems(server: Server, limit: int = 10) -> dict:
    """Warnings and errors in a server's output (stdout and stderr): how many, the first few."""
    server.log_file.seek(0)
    lines = server.log_file.read().decode(errors="replace").splitlines()
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in lines]  # the text format's colours
    bad = [line for line in lines if re.search(r"\b(WARN|ERROR|warn|error|Error)\b", line)]
    return {"lines": len(lines), "problems": len(bad), "first": bad[:limit]}


FANOUT_METRICS = (
    "websocket_connections_closed_total",
    "websocket_connections_refused_total",
    "events_published_total",
    "events_publish_errors_total",
    "events_received_total",
    "events_delivered_total",
    "events_dropped_total",
    "events_interruptions_total",
)


def fanout_server(name: str, env: dict, user_ids: list[str], settings: dict, client: dict) -> dict:
    """One server as two instances on one database and Redis, and the fan-out driver against them."""
    spec_servers = [load_server(name), load_server(name)]
    spec = spec_servers[0].spec.get("fanout")
    if not spec:
        raise SystemExit(f"{name}: its spec has no \"fanout\" section")
    # A channel of this run's own, so that nothing else on the machine's Redis is heard.
    run_tag = secrets.token_hex(4)
    for server in spec_servers:
        server.extra_env = {k: v.replace("<RUN>", run_tag) for k, v in spec.get("env", {}).items()}
    try:
        for i, server in enumerate(spec_servers):
            server.install()
            server.start(env)
            server.mint_tokens(env)
            log(f"{name} #{i + 1} on {server.url} (pid {server.process.pid})")
        # The authors' users read once, so both servers start the writes with the user
        # cache holding every author: the figures are of fan-out, not of a cold cache (the
        # Node reference reads each author once per subscription; cold, that is 500
        # PostgreSQL queries per instance for each author's first post).
        planned = int(settings["seconds"] * 1000 / settings["intervalMs"]) + 20
        for user_id in user_ids[:planned]:
            body = post(spec_servers[0].url, {"query": spec["warm"], "variables": {"id": user_id}})
            if body.get("errors") or not (body.get("data") or {}).get("user"):
                raise SystemExit(f"{name}: warming the user cache: {json.dumps(body)[:300]}")
        role = spec.get("auth")
        config = {
            "servers": [{"url": s.url, "pid": s.process.pid} for s in spec_servers],
            "subscription": spec["subscription"],
            "write": {
                "query": spec["write"],
                "headers": {"Authorization": f"Bearer {spec_servers[0].tokens[role]}"} if role else {},
            },
            "authors": user_ids,
            "databaseUrl": env["DATABASE_URL"],
            **settings,
            **client,
        }
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
            json.dump(config, file)
        try:
            driver = subprocess.run(["node", "fanout.mjs", file.name], cwd=FANOUT, stdout=subprocess.PIPE, text=True)
        finally:
            os.unlink(file.name)
        if driver.returncode:
            raise SystemExit(f"{name}: the fan-out driver exited with {driver.returncode}")
        result = {"server": name, **json.loads(driver.stdout)}
        for server, instance in zip(spec_servers, result["instances"]):
            if spec.get("metrics"):
                instance["metrics"] = metrics_lines(server, FANOUT_METRICS)
            instance["alive_after"] = server.process.poll() is None
    finally:
        for server in spec_servers:
            server.stop()
    for server, instance in zip(spec_servers, result["instances"]):
        instance["log"] = log_problems(server)
    psql(env["DATABASE_URL"], "DELETE FROM posts WHERE title LIKE 'fanout %'")
    return result


def fanout_verdict(result: dict, smoke: bool) -> list[str]:
    """What Quill missed: nothing lost or duplicated, every write and subscriber in; for the
    full run also p99 under FANOUT_P99_MS and each instance's idle RSS under FANOUT_IDLE_RSS_MB."""
    missed = []
    if result["writes"]["failed"]:
        missed.append(f"{result['writes']['failed']} writes failed ({result['writes']['first_failure']})")
    if result["connected"] < result["subscribers"] or result["probe"]["subscribers_confirmed"] < result["subscribers"]:
        missed.append(f"{result['connected']} connected, {result['probe']['subscribers_confirmed']} confirmed of {result['subscribers']}")
    if result["lost"]:
        missed.append(f"{result['lost']} deliveries lost")
    if result["duplicates"]:
        missed.append(f"{result['duplicates']} duplicates")
    if result["close_codes"] or result["errors"]:
        missed.append(f"close codes {result['close_codes']}, errors {result['errors']}")
    if not smoke:
        # From commit when the database records commit times, else from `createdAt` (later).
        latency, origin = (result["latency_from_commit"], "commit") if result.get("latency_from_commit") else (result["latency"], "createdAt")
        if latency["p99_ms"] is None or latency["p99_ms"] >= FANOUT_P99_MS:
            missed.append(f"p99 from {origin} {latency['p99_ms']} ms (target < {FANOUT_P99_MS})")
        idle = [i["rss_idle_mb"] for i in result["instances"]]
        if any(r is None or r >= FANOUT_IDLE_RSS_MB for r in idle):
            missed.append(f"idle RSS {idle} MB (target < {FANOUT_IDLE_RSS_MB} per instance)")
    return missed


def fanout_table(results: list[dict]) -> str:
    header = (
        f"{'server':<13}{'subs':>6}{'writes':>7}{'rate/s':>8}{'expected':>10}{'received':>10}{'lost':>9}{'dups':>7}"
        f"{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'max ms':>10}{'p99 commit':>11}{'idle MB':>9}{'peak MB':>9}{'cpu %':>7}  close codes"
    )
    lines = [header, "-" * len(header)]
    # p50 to max from `createdAt`; "p99 commit" from the commit, when PostgreSQL records it.
    fmt = lambda v, spec: "-" if v is None else format(v, spec)
    for r in results:
        rows = [(r["server"], r, None)] + [(f"  #{i + 1}", inst, inst) for i, inst in enumerate(r["instances"])]
        for label, row, inst in rows:
            lat = row["latency"]
            writes = r["writes"] if inst is None else None
            lines.append(
                f"{label:<13}{row['subscribers']:>6}{fmt(writes and writes['ok'], 'd'):>7}{fmt(writes and writes['sent_per_s'], '.1f'):>8}"
                f"{row['expected']:>10}{row['received']:>10}{row['lost']:>9}{row['duplicates']:>7}"
                f"{fmt(lat['p50_ms'], '.2f'):>10}{fmt(lat['p90_ms'], '.2f'):>10}{fmt(lat['p99_ms'], '.2f'):>10}{fmt(lat['max_ms'], '.1f'):>10}{fmt((row.get('latency_from_commit') or {}).get('p99_ms'), '.2f'):>11}"
                f"{fmt(inst and inst['rss_idle_mb'], '.1f'):>9}{fmt(inst and inst['rss_peak_mb'], '.1f'):>9}"
                f"{fmt(inst and inst['cpu_pct_of_core'], '.0f'):>7}  {json.dumps(row['close_codes']) if row['close_codes'] else '-'}"
            )
        clients = ", ".join(f"{c['cpu_pct_of_core']:.0f}%" for c in r["clients"])
        lines.append(
            f"{'':<13}CPU in % of one core: client processes {clients}, writer {r['writer_cpu_pct_of_core']:.0f}%, "
            f"machine {r['machine_busy_pct_of_core']:.0f}% of {100 * r['cores']}% (the rest {r['others_pct_of_core']:.0f}%: "
            + ", ".join(f"{name} {pct:.0f}%" for name, pct in list(r["others_by_name_pct_of_core"].items())[:3]) + "); "
            f"last delivery {r['last_delivery_after_last_write_s']} s after the last write; waiting ended: {r['drain_ended_by']}"
        )
        problems = [f"#{i + 1}: {inst['log']['problems']} warnings/errors logged" for i, inst in enumerate(r["instances"]) if inst["log"]["problems"]]
        if problems:
            lines.append(f"{'':<13}" + "; ".join(problems) + f" (first: {next(i['log']['first'][0] for i in r['instances'] if i['log']['problems'])})")
    return "\n".join(lines)


def fanout(names: list[str], env: dict, user_ids: list[str], settings: dict, output: Path, smoke: bool) -> None:
    """Each server's fan-out in turn, the table, `output`; Quill's misses fail the run."""
    npm_install("the fan-out driver", FANOUT, ["npm", "ci", "--no-audit", "--no-fund"])
    # The binary's path goes to the driver, not into the results.
    client = {"subscriberBin": release_build("fanout-subscriber", "the fan-out subscriber")} if settings["client"] == "rust" else {}
    results = []
    for name in names:
        log(f"fan-out: {name}, {settings['subscribers']} subscribers over two instances, "
            f"a post every {settings['intervalMs']} ms for {settings['seconds']} s")
        results.append(fanout_server(name, env, user_ids, settings, client))
    for result in results:
        if result["server"] == "quill":
            result["verdict"] = {"missed": fanout_verdict(result, smoke)}
            result["verdict"]["pass"] = not result["verdict"]["missed"]
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps({"settings": settings, "results": results}, indent=2) + "\n")
    print(fanout_table(results))
    print(f"\nwritten to {os.path.relpath(output, ROOT) if str(output).startswith(str(ROOT)) else output}")
    for result in results:
        if "verdict" in result:
            missed = result["verdict"]["missed"]
            print(f"fan-out, {result['server']}: " + ("PASS" if not missed else "FAIL: " + "; ".join(missed)))
    failed = [r for r in results if r.get("verdict") and not r["verdict"]["pass"]]
    if failed:
        raise SystemExit("fan-out: " + "; ".join(f"{r['server']}: {', '.join(r['verdict']['missed'])}" for r in failed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--servers", default="quill,node-apollo,postgraphile,pgbench")
    parser.add_argument("--queries", default=",".join(QUERIES))
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=5, help="seconds of warm-up before each measurement")
    parser.add_argument("--duration", type=int, default=15, help="seconds measured")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--q4-rate", type=float, default=400, help="createPost requests per second, all connections")
    parser.add_argument("--smoke", action="store_true", help="Quill alone, short runs, one repetition (CI)")
    parser.add_argument("--quill-bin", metavar="PATH", help="this Quill binary instead of a release build (no cargo for Quill; "
                        "--fanout still builds its Rust subscriber)")
    parser.add_argument("--soak", action="store_true", help="Quill alone under q1, q1f and q5 at once, RSS sampled (see BENCHMARKS.md)")
    parser.add_argument("--soak-minutes", type=float, default=10, help="length of the soak")
    parser.add_argument("--output", default=str(RESULTS / "latest.json"))
    parser.add_argument("--fanout", action="store_true", help="subscriptions: the fan-out across two instances of each server (see BENCHMARKS.md)")
    parser.add_argument("--fanout-servers", default="quill,node-apollo", help="servers whose spec has a \"fanout\" section, in turn")
    parser.add_argument("--subscribers", type=int, default=1000, help="fan-out: subscribers, spread over the two instances")
    parser.add_argument("--fanout-seconds", type=float, default=30, help="fan-out: seconds of writes")
    parser.add_argument("--fanout-interval-ms", type=float, default=10, help="fan-out: one post written every this many ms")
    parser.add_argument("--fanout-clients", type=int, default=1, help="fan-out: client processes per instance")
    parser.add_argument("--fanout-client", choices=("rust", "raw", "graphql-ws"), default="rust",
                        help="fan-out: the subscribers' client: bench/subscriber (rust), or Node speaking "
                        "graphql-transport-ws directly over ws (raw) or through the graphql-ws library")
    parser.add_argument("--fanout-output", default=str(RESULTS / "fanout.json"))
    args = parser.parse_args()
    if args.smoke:
        args.servers, args.reps, args.warmup, args.duration = "quill", 1, 1, 2
        args.output = str(Path(tempfile.gettempdir()) / "quill-bench-smoke.json")
    names = args.servers.split(",")
    queries = args.queries.split(",")
    fanout_settings = {
        "subscribers": args.subscribers,
        "seconds": args.fanout_seconds,
        "intervalMs": args.fanout_interval_ms,
        "clientsPerUrl": args.fanout_clients,
        "client": args.fanout_client,
    }

    if args.fanout:
        quill_bin = quill_binary(args)
        env, user_ids = seed_database(quill_bin)
        fanout(args.fanout_servers.split(","), env, user_ids, fanout_settings, Path(args.fanout_output), smoke=False)
        return
    if not shutil.which("wrk"):
        apt_install("wrk")
    quill_bin = quill_binary(args)
    if args.soak:
        soak(args, quill_bin)
        return

    env, user_ids = seed_database(quill_bin)
    servers = [load_server(name) for name in names if name != "pgbench"]
    measurements: dict[tuple[str, str], Measurement] = {}
    try:
        for server in servers:
            start_server(server, env, user_ids)
        for rep in range(args.reps):
            for query in queries:
                for server in filter(lambda s: s.has(query), servers):
                    log(f"rep {rep + 1}/{args.reps}: {server.name} {query}")
                    title = f"bench {server.name} {rep}"
                    result = measure(server, query, args, user_ids, title)
                    if query == "q4":
                        time.sleep(0.5)
                        result["rows_written"] = int(psql(env["DATABASE_URL"], f"SELECT count(*) FROM posts WHERE title = '{title}'"))
                        lost = result["requests"] - result["failed"] - result["rows_written"]
                        if lost > 0:
                            raise SystemExit(f"{server.name} q4: {lost} acknowledged posts are missing")
                        # Keep the data set as seeded: later repetitions read the same rows.
                        psql(env["DATABASE_URL"], f"DELETE FROM posts WHERE title LIKE '{title}%'")
                        psql(env["DATABASE_URL"], "VACUUM ANALYZE posts")
                    measurements.setdefault((server.name, query), Measurement(server.name, query)).runs.append(result)
                if query == "q1" and "pgbench" in names:
                    log(f"rep {rep + 1}/{args.reps}: pgbench q1")
                    measurements.setdefault(("pgbench", "q1"), Measurement("pgbench", "q1")).runs.append(measure_pgbench(args))
    finally:
        for server in servers:
            server.stop()

    rows = [summarise(m) for m in measurements.values()]
    order = {name: i for i, name in enumerate(names)}
    rows.sort(key=lambda r: (queries.index(r["query"]), order.get(r["server"], 99)))
    # A peer's failed requests are reported; Quill's fail the run.
    failed = [r for r in rows if r["failed"] and r["server"] == "quill"]
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(rows, indent=2) + "\n")
    print(table(rows))
    print(f"\nwritten to {os.path.relpath(args.output, ROOT) if args.output.startswith(str(ROOT)) else args.output}")
    if failed:
        raise SystemExit(f"failed requests: {[(r['server'], r['query'], r['failed']) for r in failed]}")
    if args.smoke and "q1" in queries:
        q1 = next(r for r in rows if r["server"] == "quill" and r["query"] == "q1")
        if q1["sql_per_req"] is None or q1["sql_per_req"] > 4:
            raise SystemExit(f"q1 costs {q1['sql_per_req']} SQL statements per request; at most 4 expected")
        print(f"smoke: {len(rows)} measurements, no failed request, q1 at {q1['sql_per_req']:.2f} SQL statements per request")
    if args.smoke:
        # Subscriptions too: a small fan-out over two instances of Quill, every event delivered once.
        smoke_fanout = {**fanout_settings, "subscribers": SMOKE_FANOUT_SUBSCRIBERS, "seconds": SMOKE_FANOUT_SECONDS,
                        "settleMs": 500, "drainQuietMs": 2000}
        fanout(["quill"], env, user_ids, smoke_fanout, Path(tempfile.gettempdir()) / "quill-bench-smoke-fanout.json", smoke=True)


if __name__ == "__main__":
    main()
