// The fan-out benchmark's driver: N subscribers spread evenly over the instances of one
// server (each URL served by one or more client processes: bench/subscriber, or
// subscriber.mjs), then one post
// written every `intervalMs` for `seconds` through HTTP to the first instance, and every
// delivery counted and timed. `bench/run --fanout` runs it (see BENCHMARKS.md); by hand:
//
//   node fanout.mjs config.json > result.json
//
// config.json:
//   servers        [{ url: "http://127.0.0.1:PORT/graphql", pid: 1234 }, ...]  (pid: for RSS and CPU)
//   subscription   the subscription document (`postCreated { id title createdAt author { name } }`)
//   write          { query, headers }: the mutation, variables `a` (author id) and `t` (title)
//   authors        user ids the posts are written by, in turn
//   subscribers    1000        seconds 30        intervalMs 10
//   clientsPerUrl  1           batch 50          settleMs 2000
//   client         "rust" (bench/subscriber, the binary at `subscriberBin`), "raw"
//                  (subscriber.mjs speaking graphql-transport-ws directly over `ws`) or
//                  "graphql-ws" (subscriber.mjs through the graphql-ws library's client)
//   drainQuietMs   5000 (stop waiting once nothing arrived for this long)   drainMaxMs 60000
//   maxInFlight    16 (writes in flight at once; the schedule slips past it)
//   databaseUrl    the database the posts are written to (for their commit times, below)
//
// Latency is the client's receipt time less the post's `createdAt`, both this machine's
// clock: `createdAt` is taken by the server when it builds the row, before the insert and
// the commit, so that figure (`latency`) overstates commit-to-client by the time the write
// takes. When PostgreSQL records commit times (`track_commit_timestamp = on`), each post's
// commit time is read afterwards (`pg_xact_commit_timestamp` of its row) and
// `latency_from_commit` is the receipt time less it: the figure the question asks for.
// Without it, `latency_from_commit` is null. Progress goes to stderr, the result (JSON)
// to stdout.

import { execFileSync, fork, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
const log = (message) => process.stderr.write(`fanout: ${message}\n`);
const CLK_TCK = 100; // Linux's USER_HZ for /proc/<pid>/stat

const config = {
  subscribers: 1000,
  seconds: 30,
  intervalMs: 10,
  clientsPerUrl: 1,
  client: 'rust',
  batch: 50,
  settleMs: 2000,
  drainQuietMs: 5000,
  drainMaxMs: 60000,
  maxInFlight: 16,
  ...JSON.parse(readFileSync(process.argv[2], 'utf8')),
};
const tag = `${process.pid}-${Date.now().toString(36)}`;
const runPrefix = `fanout ${tag} #`;
const probePrefix = `fanout probe ${tag}`;

// ---------------------------------------------------------------------------
// /proc

function status(pid, key) {
  try {
    const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith(`${key}:`));
    return line ? Number.parseInt(line.split(/\s+/)[1], 10) / 1024 : null;
  } catch {
    return null;
  }
}

// User and system CPU seconds of a process, all its threads.
function cpuTimes(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(')').pop().trim().split(/\s+/);
    return { user: Number(fields[11]) / CLK_TCK, sys: Number(fields[12]) / CLK_TCK };
  } catch {
    return { user: Number.NaN, sys: Number.NaN };
  }
}

const cpuSeconds = (pid) => {
  const { user, sys } = cpuTimes(pid);
  return user + sys;
};

// The whole machine's busy CPU seconds (every core), from /proc/stat.
function machineBusySeconds() {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const idle = fields[3] + (fields[4] ?? 0); // idle + iowait
  return (fields.reduce((a, b) => a + b, 0) - idle) / CLK_TCK;
}

// CPU seconds of every process on the machine, by pid, with its name.
function allProcesses() {
  const table = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const fields = stat.slice(stat.lastIndexOf(')') + 1).trim().split(/\s+/);
      table.set(Number(entry), { name, cpu: (Number(fields[11]) + Number(fields[12])) / CLK_TCK });
    } catch {
      // gone meanwhile
    }
  }
  return table;
}

// The other processes' CPU over the window, summed by name, busiest first (a process that
// started within it counts from its start; one that ended is missed).
function othersByName(before, after, exclude) {
  const byName = {};
  for (const [pid, { name, cpu }] of after) {
    if (exclude.has(pid)) continue;
    const used = cpu - (before.get(pid)?.cpu ?? 0);
    const group = name.startsWith('kworker') ? 'kernel workers' : name;
    if (used > 0) byName[group] = (byName[group] ?? 0) + used;
  }
  return Object.entries(byName).sort((a, b) => b[1] - a[1]);
}

const round = (value, digits = 2) => (value == null || Number.isNaN(value) ? null : Number(value.toFixed(digits)));

// ---------------------------------------------------------------------------
// Writes

const target = new URL(config.servers[0].url);
const agent = new http.Agent({ keepAlive: true, maxSockets: config.maxInFlight });

function graphql(body) {
  return new Promise((resolve) => {
    const data = JSON.stringify(body);
    const request = http.request(
      {
        host: target.hostname,
        port: target.port,
        path: target.pathname,
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), ...config.write.headers },
      },
      (response) => {
        const chunks = [];
        response.on('data', (chunk) => chunks.push(chunk));
        response.on('end', () => {
          try {
            resolve({ status: response.statusCode, body: JSON.parse(Buffer.concat(chunks).toString()) });
          } catch (error) {
            resolve({ status: response.statusCode, error: `unreadable answer: ${error.message}` });
          }
        });
        response.on('error', (error) => resolve({ error: error.message }));
      },
    );
    request.setTimeout(10_000, () => request.destroy(new Error('timed out')));
    request.on('error', (error) => resolve({ error: error.message }));
    request.end(data);
  });
}

let authorTurn = 0;
async function writePost(title) {
  const author = config.authors[authorTurn++ % config.authors.length];
  const sent = now();
  const answer = await graphql({ query: config.write.query, variables: { a: author, t: title } });
  const id = answer.body?.data?.createPost?.id;
  const problem = id ? null : answer.error ?? JSON.stringify(answer.body?.errors ?? answer.body).slice(0, 200);
  return { id, sent, answered: now(), problem };
}

// Each of this run's posts' commit time (ms since the epoch), or null when the database
// does not record commit times (or cannot be asked).
function commitTimes() {
  if (!config.databaseUrl) return null;
  const sql = `SELECT id, extract(epoch FROM pg_xact_commit_timestamp(xmin)) * 1000 FROM posts WHERE starts_with(title, '${runPrefix.replaceAll("'", "''")}')`;
  try {
    const rows = execFileSync('psql', [config.databaseUrl, '-X', '-q', '-At', '-F', ' ', '-c', sql], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const pairs = rows.split('\n').map((row) => row.split(' '));
    // A row committed while the setting was off has no commit time (an empty field).
    const times = Object.fromEntries(pairs.filter(([id, ms]) => id && ms).map(([id, ms]) => [id, Number(ms)]));
    if (Object.keys(times).length === 0) log('no commit times recorded for this run\'s posts, latency from createdAt only');
    return Object.keys(times).length ? times : null;
  } catch (error) {
    log(`no commit times, latency from createdAt only: ${String(error.stderr ?? error.message).trim().split('\n')[0]}`);
    return null;
  }
}

// ---------------------------------------------------------------------------
// Client processes

const workers = [];

// A client process: `subscriber.mjs` over Node's IPC, or the Rust subscriber (`client:
// "rust"`, at `subscriberBin`) over JSON lines on its stdin and stdout. The same messages.
function spawnClient(onMessage) {
  if (config.client === 'rust') {
    const child = spawn(config.subscriberBin, [], { stdio: ['pipe', 'pipe', 'inherit'] });
    createInterface({ input: child.stdout }).on('line', (line) => onMessage(JSON.parse(line)));
    child.stdin.on('error', () => {}); // gone: its exit says so
    return { child, send: (message) => child.stdin.write(`${JSON.stringify(message)}\n`) };
  }
  const child = fork(path.join(here, 'subscriber.mjs'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  child.on('message', onMessage);
  return { child, send: (message) => child.send(message) };
}

function startWorkers() {
  const urls = config.servers.map((s) => s.url.replace(/^http/, 'ws'));
  const perUrl = urls.map((_, i) => Math.floor(config.subscribers / urls.length) + (i < config.subscribers % urls.length ? 1 : 0));
  const capacity = Math.ceil((config.seconds * 1000) / config.intervalMs) + 16;
  urls.forEach((url, server) => {
    for (let c = 0; c < config.clientsPerUrl; c += 1) {
      const count = Math.floor(perUrl[server] / config.clientsPerUrl) + (c < perUrl[server] % config.clientsPerUrl ? 1 : 0);
      if (count === 0) continue;
      const worker = { server, url, count, pending: [] };
      Object.assign(
        worker,
        spawnClient((message) => {
          const waiting = worker.pending.findIndex((p) => p.type === message.type);
          if (waiting >= 0) worker.pending.splice(waiting, 1)[0].resolve(message);
        }),
      );
      worker.child.on('exit', (code) => {
        worker.exited = code;
      });
      workers.push(worker);
      worker.send({ cmd: 'start', url, client: config.client, count, batch: config.batch, query: config.subscription, runPrefix, probePrefix, capacity });
    }
  });
}

function ask(worker, type, message) {
  return new Promise((resolve, reject) => {
    worker.pending.push({ type, resolve });
    if (message) worker.send(message);
    if (worker.exited !== undefined) reject(new Error(`a client process exited (${worker.exited})`));
  });
}

const askAll = (type, message) => Promise.all(workers.map((w) => ask(w, type, message)));

// ---------------------------------------------------------------------------
// The run

async function main() {
  const pids = config.servers.map((s) => s.pid);
  const startedAt = new Date().toISOString();
  log(`${config.subscribers} subscribers over ${config.servers.length} instances, ${config.clientsPerUrl} client process(es) per instance, ${config.client} client`);
  startWorkers();
  const connectStart = now();
  const ready = await askAll('ready');
  const connectMs = now() - connectStart;
  const connected = ready.reduce((n, r) => n + r.connected, 0);
  log(`${connected} of ${config.subscribers} connected and subscribed in ${(connectMs / 1000).toFixed(1)} s`);
  await sleep(config.settleMs);
  const rssSubscribed = pids.map((pid) => status(pid, 'VmRSS'));

  // Every subscription live end to end, on both instances: a probe post written until each
  // subscriber has seen one (the protocol acknowledges connections, not subscriptions).
  let probes = 0;
  let probed = 0;
  const probeStart = now();
  while (probed < connected && probes < 15) {
    probes += 1;
    const probe = await writePost(`${probePrefix} ${probes}`);
    if (!probe.id) log(`probe write failed: ${probe.problem}`);
    const until = now() + 1000;
    do {
      await sleep(50);
      probed = (await askAll('status', { cmd: 'status' })).reduce((n, s) => n + s.probed, 0);
    } while (probed < connected && now() < until);
  }
  const probeMs = now() - probeStart;
  log(`${probed} of ${connected} subscribers saw a probe post (${probes} written, ${(probeMs / 1000).toFixed(1)} s)`);
  await sleep(config.settleMs);
  const rssIdle = pids.map((pid) => status(pid, 'VmRSS'));
  const hwmBefore = pids.map((pid) => status(pid, 'VmHWM'));

  // RSS sampled every 100 ms from the first write until the last delivery.
  const rssPeak = [...rssIdle];
  const sampler = setInterval(() => {
    pids.forEach((pid, i) => {
      const rss = status(pid, 'VmRSS');
      if (rss != null && rss > rssPeak[i]) rssPeak[i] = rss;
    });
  }, 100);
  const serverCpu0 = pids.map(cpuSeconds);
  const serverTimes0 = pids.map(cpuTimes);
  const clientCpu0 = workers.map((w) => cpuSeconds(w.child.pid));
  const selfCpu0 = process.cpuUsage();
  const machine0 = machineBusySeconds();
  const processes0 = allProcesses();

  // The writes: one every intervalMs on a fixed schedule (not one after another), at most
  // maxInFlight at once; past that the schedule waits and the achieved rate shows it.
  const planned = Math.round((config.seconds * 1000) / config.intervalMs);
  const writes = [];
  const inFlight = new Set();
  const writeStart = now();
  for (let i = 0; i < planned; i += 1) {
    await sleep(writeStart + i * config.intervalMs - now());
    while (inFlight.size >= config.maxInFlight) await Promise.race(inFlight);
    const write = writePost(`${runPrefix}${i}`).then((result) => {
      writes[i] = result;
      inFlight.delete(write);
    });
    inFlight.add(write);
  }
  const lastSend = now();
  await Promise.all(inFlight);
  const writesDone = now();
  const ok = writes.filter((w) => w.id);
  const failedWrites = writes.filter((w) => !w.id);
  log(`${ok.length} of ${planned} posts written in ${((writesDone - writeStart) / 1000).toFixed(1)} s` + (failedWrites.length ? `; first failure: ${failedWrites[0].problem}` : ''));

  // Stragglers: until every subscriber has every post, or nothing arrived for drainQuietMs.
  const expected = ok.length * config.subscribers;
  let progress;
  let quietSince = now();
  let lastCount = -1;
  let drainEndedBy = null;
  for (;;) {
    progress = await askAll('status', { cmd: 'status' });
    const count = progress.reduce((n, s) => n + s.deliveries, 0);
    if (count !== lastCount) {
      lastCount = count;
      quietSince = now();
    }
    if (count >= expected) drainEndedBy = 'all delivered';
    else if (now() - quietSince > config.drainQuietMs) drainEndedBy = `nothing for ${config.drainQuietMs / 1000} s`;
    else if (now() - writesDone > config.drainMaxMs) drainEndedBy = `${config.drainMaxMs / 1000} s after the last write, still delivering`;
    if (drainEndedBy) break;
    await sleep(100);
  }
  const drainEnd = now();
  clearInterval(sampler);
  const serverCpu = pids.map((pid, i) => cpuSeconds(pid) - serverCpu0[i]);
  const serverSys = pids.map((pid, i) => cpuTimes(pid).sys - serverTimes0[i].sys);
  const clientCpu = workers.map((w, i) => cpuSeconds(w.child.pid) - clientCpu0[i]);
  const selfCpu = process.cpuUsage(selfCpu0);
  const machineBusy = machineBusySeconds() - machine0;
  const others = othersByName(processes0, allProcesses(), new Set([...pids, process.pid, ...workers.map((w) => w.child.pid)]));
  const window = (drainEnd - writeStart) / 1000;
  const hwmAfter = pids.map((pid) => status(pid, 'VmHWM'));
  const lastReceipt = Math.max(...progress.map((s) => s.lastReceipt));

  // Counts and latencies from every client process.
  const dir = mkdtempSync(path.join(tmpdir(), 'quill-fanout-'));
  const written = ok.map((w) => w.id);
  const committed = commitTimes();
  const results = await Promise.all(
    workers.map((w, i) =>
      ask(w, 'result', {
        cmd: 'finish',
        written,
        latencyFile: path.join(dir, `${i}.f64`),
        ...(committed && { committed, commitLatencyFile: path.join(dir, `${i}.commit.f64`) }),
      }),
    ),
  );
  const latencyOf = (indices, file = (i) => `${i}.f64`) => {
    const parts = indices.map((i) => {
      const buffer = readFileSync(path.join(dir, file(i)));
      return new Float64Array(buffer.buffer, buffer.byteOffset, buffer.byteLength / 8);
    });
    const all = new Float64Array(parts.reduce((n, p) => n + p.length, 0));
    let offset = 0;
    for (const part of parts) {
      all.set(part, offset);
      offset += part.length;
    }
    all.sort();
    const at = (q) => (all.length ? all[Math.min(all.length - 1, Math.floor(q * all.length))] : null);
    const mean = all.length ? all.reduce((a, b) => a + b, 0) / all.length : null;
    return {
      count: all.length,
      p50_ms: round(at(0.5)),
      p90_ms: round(at(0.9)),
      p99_ms: round(at(0.99)),
      p999_ms: round(at(0.999)),
      max_ms: round(all.length ? all[all.length - 1] : null),
      min_ms: round(all.length ? all[0] : null),
      mean_ms: round(mean),
    };
  };
  const merge = (tables) => {
    const merged = {};
    for (const table of tables) for (const [k, v] of Object.entries(table)) merged[k] = (merged[k] ?? 0) + v;
    return merged;
  };
  const summarise = (indices) => {
    const mine = indices.map((i) => results[i]);
    const subscribers = mine.reduce((n, r) => n + r.subscribers, 0);
    const received = mine.reduce((n, r) => n + r.received, 0);
    return {
      subscribers,
      connected: indices.reduce((n, i) => n + ready[i].connected, 0),
      expected: ok.length * subscribers,
      received,
      lost: ok.length * subscribers - received,
      duplicates: mine.reduce((n, r) => n + r.duplicates, 0),
      subscribers_with_every_post: mine.reduce((n, r) => n + r.complete, 0),
      unexpected_posts: mine.reduce((n, r) => n + r.postsNotWritten, 0),
      payloads_without_author: mine.reduce((n, r) => n + r.withoutAuthor, 0),
      latency: latencyOf(indices),
      latency_from_commit: committed && latencyOf(indices, (i) => `${i}.commit.f64`),
      close_codes: merge(mine.map((r) => r.closeCodes)),
      errors: merge(mine.map((r) => r.errors)),
    };
  };

  const instances = config.servers.map((server, s) => {
    const indices = workers.map((w, i) => (w.server === s ? i : -1)).filter((i) => i >= 0);
    const summary = summarise(indices);
    return {
      url: server.url,
      pid: server.pid,
      ...summary,
      rss_subscribed_mb: round(rssSubscribed[s], 1),
      rss_idle_mb: round(rssIdle[s], 1),
      rss_peak_mb: round(rssPeak[s], 1),
      vmhwm_before_writes_mb: round(hwmBefore[s], 1),
      vmhwm_after_mb: round(hwmAfter[s], 1),
      cpu_s: round(serverCpu[s], 2),
      cpu_pct_of_core: round((serverCpu[s] / window) * 100, 1),
      cpu_sys_s: round(serverSys[s], 2),
      // Server CPU per message it delivered (the probe's included, a rounding error).
      cpu_us_per_delivery: round((serverCpu[s] * 1e6) / Math.max(1, summary.received), 2),
    };
  });
  const sortedWriteMs = ok.map((w) => w.answered - w.sent).sort((a, b) => a - b);
  const writeQ = (q) => (sortedWriteMs.length ? round(sortedWriteMs[Math.min(sortedWriteMs.length - 1, Math.floor(q * sortedWriteMs.length))]) : null);
  const result = {
    started_at: startedAt,
    parameters: {
      subscribers: config.subscribers,
      instances: config.servers.length,
      seconds: config.seconds,
      interval_ms: config.intervalMs,
      client_processes: workers.length,
      client: config.client,
      batch: config.batch,
      settle_ms: config.settleMs,
      drain_quiet_ms: config.drainQuietMs,
      max_in_flight: config.maxInFlight,
      subscription: config.subscription,
    },
    connect_s: round(connectMs / 1000, 2),
    probe: { written: probes, subscribers_confirmed: probed, seconds: round(probeMs / 1000, 2) },
    writes: {
      planned,
      ok: ok.length,
      failed: failedWrites.length,
      first_failure: failedWrites[0]?.problem ?? null,
      planned_per_s: round(1000 / config.intervalMs, 1),
      sent_per_s: round((planned - 1) / ((lastSend - writeStart) / 1000), 1),
      ok_per_s: round(ok.length / ((writesDone - writeStart) / 1000), 1),
      write_p50_ms: writeQ(0.5),
      write_p99_ms: writeQ(0.99),
      to: config.servers[0].url,
    },
    drain_s: round((drainEnd - writesDone) / 1000, 2),
    drain_ended_by: drainEndedBy,
    last_delivery_after_last_write_s: round((lastReceipt - writesDone) / 1000, 2),
    ...summarise(workers.map((_, i) => i)),
    instances,
    clients: workers.map((w, i) => ({
      pid: w.child.pid,
      url: w.url,
      subscribers: w.count,
      cpu_s: round(clientCpu[i], 2),
      cpu_pct_of_core: round((clientCpu[i] / window) * 100, 1),
    })),
    writer_cpu_pct_of_core: round(((selfCpu.user + selfCpu.system) / 1e6 / window) * 100, 1),
    // Every core's busy time over the window, in % of one core (200 = both cores busy), and
    // what of it was neither the servers nor this benchmark's own processes (PostgreSQL,
    // Redis, anything else running).
    machine_busy_pct_of_core: round((machineBusy / window) * 100, 1),
    others_pct_of_core: round(
      ((machineBusy - serverCpu.reduce((a, b) => a + b, 0) - clientCpu.reduce((a, b) => a + b, 0) - (selfCpu.user + selfCpu.system) / 1e6) / window) * 100,
      1,
    ),
    others_by_name_pct_of_core: Object.fromEntries(others.slice(0, 6).map(([name, cpu]) => [name, round((cpu / window) * 100, 1)])),
    cores: (await import('node:os')).availableParallelism(),
    window_s: round(window, 2),
  };
  rmSync(dir, { recursive: true, force: true });
  log(
    `received ${result.received} of ${result.expected}, ${result.lost} lost, ${result.duplicates} duplicates, ` +
      `p99 ${result.latency.p99_ms} ms from createdAt, ${result.latency_from_commit?.p99_ms ?? '-'} ms from commit`,
  );
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  agent.destroy();
  await Promise.all(workers.map((w) => (w.exited !== undefined ? null : new Promise((resolve) => w.child.once('exit', resolve)))));
}

main().catch((error) => {
  log(error.stack ?? String(error));
  for (const w of workers) w.child.kill();
  process.exit(1);
});
