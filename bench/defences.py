#!/usr/bin/env python3
"""Quill's connection-level defences, measured against a release build on PostgreSQL.

Three attacks a single machine on loopback can mount, and what a well-behaved client
sees meanwhile (the figures in the README's "Hardening" section):

  slow-headers  thousands of connections that send half a request head, then nothing
  fd-flood      far more connections than a process with few descriptors can hold
  overload      far more concurrent q1 than two cores serve

Run it through `bench/defences` (add `--quill-bin` to measure another build). It stays on
127.0.0.1 and is bounded in time; it uses the standard library only.

Quill gets a secret to verify bearer tokens with (it will not start on PostgreSQL without
one). The overload's q1 is sent with an admin token minted by Quill's `token` command, as
the benchmark sends it, so its answers hold the emails; the well-behaved client of the other
scenarios reads anonymously.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import AUTH_JWT_SECRET, PG_ADMIN, REDIS_URL, ROOT, database_url, free_port, load_server, log, psql, run  # noqa: E402

DATABASE = "quill_defences"
DATABASE_URL = database_url(DATABASE) + "?sslmode=disable"
Q1 = "{ users(first: 50) { nodes { id email posts(first: 10) { nodes { id title author { id email } } } } } }"
Q2 = "{ users(first: 1) { nodes { id email } } }"
PARTIAL_HEAD = b"POST /graphql HTTP/1.1\r\nHost: quill\r\nContent-Type: application/json\r\n"


def graphql_request(query: str, token: str | None = None) -> bytes:
    body = json.dumps({"query": query}).encode()
    authorization = f"Authorization: Bearer {token}\r\n" if token else ""
    head = (
        "POST /graphql HTTP/1.1\r\nHost: quill\r\nContent-Type: application/json\r\n"
        f"{authorization}Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def admin_token(binary: str) -> str:
    """An admin's token from the binary's `token` command (bench/quill.json's), for Quill's secret."""
    fill = {"<QUILL_BIN>": binary, "<ROLE>": "admin", "<TTL>": "1h"}
    command = [fill.get(part, part) for part in load_server("quill").spec["token"]]
    env = {**os.environ, "DATABASE_URL": DATABASE_URL, "AUTH_JWT_SECRET": AUTH_JWT_SECRET}
    return run(command, env=env, capture_output=True, text=True).stdout.strip()


class Quill:
    """A Quill process on a free port, started with `env` and at most `descriptors`."""

    def __init__(self, binary: str, env: dict[str, str], descriptors: int | None = None):
        self.port = free_port()
        command = [binary, "serve"]
        if descriptors:
            command = ["prlimit", f"--nofile={descriptors}:{descriptors}", *command]
        self.log = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            command,
            env={
                **os.environ,
                "DATABASE_URL": DATABASE_URL,
                "REDIS_URL": REDIS_URL,
                "CACHE_PREFIX": "quill-defences",
                "RUST_LOG": "warn",
                "AUTH_JWT_SECRET": AUTH_JWT_SECRET,
                "BIND_ADDR": f"127.0.0.1:{self.port}",
                **env,
            },
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    async def ready(self) -> None:
        for _ in range(200):
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return
            except OSError:
                await asyncio.sleep(0.05)
        raise SystemExit("Quill did not start")

    def stop(self) -> str:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.seek(0)
        return self.log.read().decode(errors="replace")


class Client:
    """One keep-alive HTTP/1.1 connection, by hand: no library's pool hides what happens."""

    def __init__(self, port: int):
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)

    async def send(self, request: bytes, timeout: float = 30) -> tuple[int, float]:
        """The status and seconds taken; status 0 when the connection failed or hung."""
        started = time.perf_counter()
        try:
            return await asyncio.wait_for(self._send(request, started), timeout)
        except asyncio.TimeoutError:
            self.close()
            return 0, time.perf_counter() - started

    async def _send(self, request: bytes, started: float) -> tuple[int, float]:
        try:
            if self.writer is None:
                await self.connect()
            self.writer.write(request)
            head = await self.reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await self.reader.readexactly(length)
            if b"connection: close" in head.lower():
                self.close()
            return status, time.perf_counter() - started
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, StopIteration):
            self.close()
            return 0, time.perf_counter() - started

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process (and its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] if ordered else float("nan")


async def wait_closed(reader: asyncio.StreamReader, limit: float) -> float | None:
    """When the server closed the connection (perf_counter), or None within `limit`."""
    try:
        while await asyncio.wait_for(reader.read(4096), timeout=limit):
            pass
    except asyncio.TimeoutError:
        return None
    except OSError:
        pass
    return time.perf_counter()


async def slow_headers(binary: str, connections: int) -> None:
    quill = Quill(binary, {})
    await quill.ready()
    try:
        opened = []
        for _ in range(connections):
            reader, writer = await asyncio.open_connection("127.0.0.1", quill.port)
            writer.write(PARTIAL_HEAD)
            opened.append((reader, writer, time.perf_counter()))
        closing = [asyncio.ensure_future(wait_closed(r, 20)) for r, _, _ in opened]
        client = Client(quill.port)
        latencies = []
        for _ in range(50):
            status, took = await client.send(graphql_request(Q2))
            assert status == 200, status
            latencies.append(took)
            await asyncio.sleep(0.1)
        closed = await asyncio.gather(*closing)
        held = [c - o for c, (_, _, o) in zip(closed, opened) if c is not None]
        still_open = sum(c is None for c in closed)
        print(f"slow-headers: {connections} connections sent half a head (HTTP_HEADER_TIMEOUT_SECS=10)")
        print(f"  a normal client meanwhile: median {ms(statistics.median(latencies))}, worst {ms(max(latencies))}")
        if held:
            print(f"  closed by the server after {min(held):.2f} to {max(held):.2f} s; still open after 20 s: {still_open}")
        else:
            print(f"  none closed within 20 s ({still_open} still open)")
        for _, writer, _ in opened:
            writer.close()
    finally:
        quill.stop()


async def fd_flood(binary: str, descriptors: int, connections: int) -> None:
    quill = Quill(binary, {"HTTP_HEADER_TIMEOUT_SECS": "60"}, descriptors=descriptors)
    await quill.ready()
    try:
        established = Client(quill.port)
        assert (await established.send(graphql_request(Q2)))[0] == 200
        async def connect():
            try:
                return await asyncio.wait_for(asyncio.open_connection("127.0.0.1", quill.port), 2)
            except (OSError, asyncio.TimeoutError):
                return None

        flood = []
        for _ in range(0, connections, 500):
            flood += await asyncio.gather(*(connect() for _ in range(min(500, connections - len(flood)))))
        failed_connects = sum(c is None for c in flood)
        flood = [c for c in flood if c is not None]
        started = time.perf_counter()
        refusals = await asyncio.gather(*(wait_closed(r, 3) for r, _ in flood))
        refused = [t - started for t in refusals if t is not None]
        during = [await established.send(graphql_request(Q2), timeout=5) for _ in range(20)]
        newcomer = Client(quill.port)
        newcomer_status, _ = await newcomer.send(graphql_request(Q2), timeout=5)
        for _, writer in flood:
            writer.close()
        released = time.perf_counter()
        recovered = None
        while time.perf_counter() - released < 10:
            status, _ = await Client(quill.port).send(graphql_request(Q2), timeout=1)
            if status == 200:
                recovered = time.perf_counter() - released
                break
            await asyncio.sleep(0.01)
        print(f"fd-flood: {connections} connections against a process limited to {descriptors} descriptors")
        print(f"  held open: {len(flood) - len(refused)}; refused: {len(refused)}, all within {ms(max(refused, default=0))}; connects that failed: {failed_connects}")
        print(f"  the established client meanwhile: {sum(s == 200 for s, _ in during)}/20 answered, worst {ms(max(t for _, t in during))}")
        print(f"  a new client during the flood: status {newcomer_status or 'no answer'}")
        print(f"  after the flood: a new client served {ms(recovered) if recovered is not None else 'never (10 s)'} after release")
    finally:
        output = quill.stop()
        accept_errors = output.count("cannot accept") + output.count("Too many open files")
        print(f"  log lines about accept errors: {accept_errors}; refusal warnings: {output.count('refusing connections')}")


async def overload(binary: str, connections: int, seconds: float) -> None:
    request = graphql_request(Q1, admin_token(binary))
    quill = Quill(binary, {})
    await quill.ready()
    # The token is accepted (a refused one would be a 401 under "other answers").
    first = Client(quill.port)
    status, _ = await first.send(request)
    first.close()
    if status != 200:
        quill.stop()
        raise SystemExit(f"overload: q1 with the admin token answered {status}, not 200")
    admitted: list[float] = []
    shed: list[float] = []
    other: dict[int, int] = {}
    health: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        client = Client(quill.port)
        while time.perf_counter() < deadline:
            status, took = await client.send(request)
            if status == 200:
                admitted.append(took)
            elif status == 503:
                shed.append(took)
                await asyncio.sleep(1)  # Retry-After: 1, as a well-behaved client honours it
            else:
                other[status] = other.get(status, 0) + 1
                await asyncio.sleep(0.1)

    async def probe() -> None:
        client = Client(quill.port)
        while time.perf_counter() < deadline:
            client.close()
            status, took = await client.send(b"GET /healthz HTTP/1.1\r\nHost: quill\r\n\r\n")
            health.append(took if status == 200 else float("inf"))
            await asyncio.sleep(0.5)

    server_cpu, client_cpu = cpu_seconds(quill.process.pid), time.process_time()
    try:
        await asyncio.gather(*(worker() for _ in range(connections)), probe())
        server_cpu, client_cpu = cpu_seconds(quill.process.pid) - server_cpu, time.process_time() - client_cpu
    finally:
        quill.stop()
    print(f"overload: {connections} connections of q1 for {seconds:.0f} s (a shed client waits its Retry-After)")
    print(f"  admitted: {len(admitted)} ({len(admitted) / seconds:.0f}/s), p50 {ms(percentile(admitted, 0.5))}, p99 {ms(percentile(admitted, 0.99))}, worst {ms(max(admitted, default=0))}")
    print(f"  shed with 503: {len(shed)}, p99 {ms(percentile(shed, 0.99))}")
    print(f"  other answers: {other or 'none'}; /healthz p99 {ms(percentile(health, 0.99))}")
    print(f"  CPU seconds over the run: Quill {server_cpu:.1f}, this client {client_cpu:.1f} (of {2 * seconds:.0f} on two cores)")


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quill-bin", help="the `api` binary to measure (default: build the release one)")
    parser.add_argument("--scenarios", default="slow-headers,fd-flood,overload")
    parser.add_argument("--slow-connections", type=int, default=3000)
    parser.add_argument("--flood-descriptors", type=int, default=1024)
    parser.add_argument("--flood-connections", type=int, default=5000)
    parser.add_argument("--overload-connections", type=int, default=2000)
    parser.add_argument("--overload-seconds", type=float, default=20)
    args = parser.parse_args()
    binary = args.quill_bin
    if binary is None:
        target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
        log("building Quill (release)")
        run(["cargo", "build", "--release", "--locked", "-q", "-p", "api"], cwd=ROOT)
        binary = str(target / "release" / "api")
    psql(PG_ADMIN, f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
    psql(PG_ADMIN, f"CREATE DATABASE {DATABASE}")
    run([binary, "seed", "--users", "1000", "--posts-per-user", "10"],
        env={**os.environ, "DATABASE_URL": DATABASE_URL}, stdout=subprocess.DEVNULL)
    scenarios = args.scenarios.split(",")
    if "slow-headers" in scenarios:
        asyncio.run(slow_headers(binary, args.slow_connections))
    if "fd-flood" in scenarios:
        asyncio.run(fd_flood(binary, args.flood_descriptors, args.flood_connections))
    if "overload" in scenarios:
        asyncio.run(overload(binary, args.overload_connections, args.overload_seconds))


if __name__ == "__main__":
    main()
