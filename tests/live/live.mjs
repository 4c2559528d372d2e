// Quill live: three instances on one database and one Redis, nginx round-robin in front,
// driven with the graphql-ws client (subscriptions) and fetch (HTTP). Started by
// tests/live/run, which passes in the environment where everything is:
//   QUILL_LIVE_NGINX          nginx's base URL (http://127.0.0.1:PORT)
//   QUILL_LIVE_INSTANCES      {"A": {"url": "http://127.0.0.1:PORT", "pid": PID}, "B": …, "C": …}
//   QUILL_LIVE_ADMIN_TOKEN    an admin's bearer token
//   QUILL_LIVE_REDIS_PORT     the private Redis's port
//   QUILL_LIVE_REDIS_PIDFILE  its pid file (it runs daemonised)
//   QUILL_LIVE_REDIS_CMD      its command line, as a JSON array, to start it again
//   QUILL_LIVE_STOPPED        a file to write the name of the instance stopped here to
//   QUILL_LIVE_RUN_ID         a word unique to the run (titles and emails carry it)
// The checks run in order; d stops an instance for good, e runs on the other two.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

function setting(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: start this with tests/live/run`);
  return value;
}
const NGINX = setting('QUILL_LIVE_NGINX');
const INSTANCES = JSON.parse(setting('QUILL_LIVE_INSTANCES'));
const ADMIN = setting('QUILL_LIVE_ADMIN_TOKEN');
const REDIS_PORT = Number(setting('QUILL_LIVE_REDIS_PORT'));
const REDIS_PIDFILE = setting('QUILL_LIVE_REDIS_PIDFILE');
const REDIS_CMD = JSON.parse(setting('QUILL_LIVE_REDIS_CMD'));
const STOPPED = setting('QUILL_LIVE_STOPPED');
const RUN = setting('QUILL_LIVE_RUN_ID');
const NAMES = Object.keys(INSTANCES);
// The machine's shared Redis is never touched.
assert.notEqual(REDIS_PORT, 6379, 'the private Redis must not be on the shared port 6379');

/** The instance an upstream address ("127.0.0.1:PORT") is, or the address itself. */
function instanceAt(address) {
  for (const name of NAMES) if (INSTANCES[name].url === `http://${address}`) return name;
  return address;
}
/** The instance that finally answered, from nginx's X-Quill-Upstream ("a, b" when passed on). */
function answeredBy(header) {
  if (!header) return null;
  return instanceAt(header.split(',').at(-1).trim());
}

const log = (...words) => console.log('   ', ...words);

// --- HTTP --------------------------------------------------------------------------------

/** POSTs one operation; never throws: a network failure comes back as status 0. */
async function gql(base, query, variables = {}, { token = ADMIN } = {}) {
  const headers = { 'content-type': 'application/json', accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  try {
    const response = await fetch(`${base}/graphql`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ query, variables }),
      signal: AbortSignal.timeout(15_000),
    });
    const text = await response.text();
    let body;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    const upstream = response.headers.get('x-quill-upstream');
    return { status: response.status, body, text, upstream, by: answeredBy(upstream) };
  } catch (error) {
    return { status: 0, text: String(error?.cause ?? error), upstream: null, by: null };
  }
}

/** Like gql, but a non-200 answer or any GraphQL error is thrown. */
async function must(base, query, variables, options) {
  const answer = await gql(base, query, variables, options);
  if (answer.status !== 200 || !answer.body?.data || answer.body.errors) {
    throw new Error(`${base}: HTTP ${answer.status} ${answer.text.slice(0, 500)}`);
  }
  return answer;
}

const CREATE_USER = `mutation ($input: CreateUserInput!) { createUser(input: $input) { id name } }`;
const UPDATE_USER = `mutation ($id: UUID!, $name: String) { updateUser(id: $id, input: { name: $name }) { id name } }`;
const READ_USER = `query ($id: UUID!) { user(id: $id) { id name } }`;
const CREATE_POST = `mutation ($title: String!, $authorId: UUID) {
  createPost(input: { title: $title, authorId: $authorId }) { id title } }`;
const READ_POST = `query ($id: UUID!) { post(id: $id) { id title } }`;
const POSTS_OF = `query ($authorId: UUID!, $after: String) {
  posts(authorId: $authorId, first: 100, after: $after) {
    nodes { id title } pageInfo { hasNextPage endCursor } } }`;
const POST_CREATED = `subscription ($authorId: UUID) { postCreated(authorId: $authorId) { id title author { id } } }`;

async function createUser(base, label) {
  const input = { email: `${label}-${RUN}@example.com`, name: `${label} ${RUN}` };
  return (await must(base, CREATE_USER, { input })).body.data.createUser;
}

async function createPost(base, title, authorId) {
  return (await must(base, CREATE_POST, { title, authorId })).body.data.createPost;
}

/** Every post of one author, through `base`, page by page. */
async function postsOf(base, authorId) {
  const posts = [];
  let after = null;
  for (;;) {
    const page = (await must(base, POSTS_OF, { authorId, after })).body.data.posts;
    posts.push(...page.nodes);
    if (!page.pageInfo.hasNextPage) return posts;
    after = page.pageInfo.endCursor;
  }
}

// --- waiting -----------------------------------------------------------------------------

/** Polls `ready` until it is true; past `seconds`, fails with `what` and `explain()`. */
async function waitFor(what, ready, { seconds = 20, explain = () => '' } = {}) {
  const until = Date.now() + seconds * 1000;
  for (;;) {
    if (await ready()) return;
    if (Date.now() > until) {
      const details = explain();
      throw new Error(`timed out after ${seconds} s waiting for ${what}${details ? `: ${details}` : ''}`);
    }
    await sleep(20);
  }
}

// --- processes -----------------------------------------------------------------------------

/** Whether a process runs (a zombie, dead but not yet reaped, does not). */
function running(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** The private Redis's pid, checked against its command line (pids get reused). */
function redisPid() {
  const pid = Number(fs.readFileSync(REDIS_PIDFILE, 'utf8').trim());
  const cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  assert.ok(
    cmdline.includes(`redis-server 127.0.0.1:${REDIS_PORT}`),
    `pid ${pid} of ${REDIS_PIDFILE} is not the private redis-server on ${REDIS_PORT}: ${cmdline}`,
  );
  return pid;
}

/** Whether the private Redis answers PING. */
function redisAnswers() {
  return new Promise((resolve) => {
    const socket = net.connect(REDIS_PORT, '127.0.0.1');
    let reply = '';
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.on('error', () => done(false));
    socket.on('connect', () => socket.write('PING\r\n'));
    socket.on('data', (chunk) => {
      reply += chunk;
      if (reply.includes('\r\n')) done(reply.startsWith('+PONG'));
    });
  });
}

async function killRedis() {
  const pid = redisPid();
  process.kill(pid, 'SIGKILL');
  await waitFor('the killed redis-server to be gone', async () => !running(pid) && !(await redisAnswers()), {
    seconds: 10,
  });
}

async function startRedis() {
  const started = spawnSync(REDIS_CMD[0], REDIS_CMD.slice(1), { encoding: 'utf8', timeout: 10_000 });
  assert.equal(started.status, 0, `redis-server did not start: ${started.stderr}${started.stdout}`);
  await waitFor('the restarted redis-server to answer PING', redisAnswers, { seconds: 10 });
  redisPid();
}

// --- subscribers ---------------------------------------------------------------------------

/** A ws WebSocket that keeps which instance nginx passed its upgrade to. */
function trackedWebSocket(options = {}) {
  return class TrackedWebSocket extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols, options);
      this.upstream = null;
      this.once('upgrade', (response) => {
        this.upstream = answeredBy(response.headers['x-quill-upstream']) ?? null;
      });
    }
  };
}

const wsUrl = (base) => `${base.replace(/^http/, 'ws')}/graphql`;

/**
 * One graphql-ws client, and what happened to it: its connections (where each landed,
 * when it was acknowledged, how it closed), and per subscription the payloads received,
 * each with the connection it came on (its "epoch") and split into events and gap notices.
 */
class Subscriber {
  constructor(label, base, { token, retry = false } = {}) {
    this.label = label;
    this.connections = [];
    this.failedAttempts = [];
    this.events = {};
    this.notices = {};
    this.failures = [];
    this.client = createClient({
      url: wsUrl(base),
      webSocketImpl: trackedWebSocket(),
      connectionParams: token ? { authorization: `Bearer ${token}` } : undefined,
      // Direct subscribers must never lose their connection: no retry, so a loss fails.
      retryAttempts: retry ? 1000 : 0,
      shouldRetry: () => true,
      on: {
        connected: (socket) => {
          this.connections.push({ upstream: socket.upstream, at: Date.now(), closed: null });
        },
        closed: (event) => {
          const last = this.connections.at(-1);
          const close = { code: event?.code, reason: String(event?.reason ?? ''), at: Date.now() };
          if (last && !last.closed) last.closed = close;
          else this.failedAttempts.push(close);
        },
      },
    });
  }

  get epoch() {
    return this.connections.length - 1;
  }

  /** Subscribes `key` to `query`; what arrives is kept under `key`. */
  listen(key, query, variables = {}) {
    this.events[key] = [];
    this.notices[key] = [];
    this.client.subscribe(
      { query, variables },
      {
        next: (result) => {
          const at = Date.now();
          if (result.errors && !result.data) {
            for (const error of result.errors) {
              this.notices[key].push({ epoch: this.epoch, at, code: error.extensions?.code, ...error.extensions, message: error.message });
            }
          } else if (result.errors) {
            this.failures.push({ key, result });
          } else {
            this.events[key].push({ epoch: this.epoch, at, data: result.data });
          }
        },
        error: (error) => this.failures.push({ key, error: describe(error) }),
        complete: () => this.failures.push({ key, error: 'completed unexpectedly' }),
      },
    );
  }

  /** The posts of `key` (postCreated payloads), optionally of one epoch. */
  posts(key, epoch) {
    return this.events[key].filter((e) => epoch === undefined || e.epoch === epoch).map((e) => e.data.postCreated);
  }

  codes(key) {
    return this.notices[key].map((n) => n.code);
  }

  async close() {
    await this.client.dispose();
  }
}

function describe(error) {
  if (error && typeof error === 'object' && 'code' in error) return `close ${error.code} ${error.reason ?? ''}`;
  if (Array.isArray(error)) return JSON.stringify(error);
  return String(error?.message ?? error);
}

/**
 * graphql-transport-ws does not acknowledge a subscription, so a subscriber is known to be
 * listening once it receives something: writes warm-up posts (titled `${prefix}:warmup:N`)
 * with `write` until every `[subscriber, key]` has received one.
 */
async function warmUp(listening, write, prefix) {
  const has = ([subscriber, key]) => subscriber.posts(key).some((p) => p.title.startsWith(`${prefix}:warmup:`));
  let n = 0;
  await waitFor(
    'every subscription to receive a warm-up post',
    async () => {
      if (listening.every(has)) return true;
      await write(`${prefix}:warmup:${n++}`);
      const until = Date.now() + 500;
      while (Date.now() < until && !listening.every(has)) await sleep(10);
      return listening.every(has);
    },
    {
      seconds: 30,
      explain: () =>
        `still waiting: ${listening
          .filter((l) => !has(l))
          .map(([s, k]) => `${s.label}/${k} (${JSON.stringify(s.failures)})`)
          .join(', ')}`,
    },
  );
}

const open = new Set();
function subscriber(...args) {
  const s = new Subscriber(...args);
  open.add(s);
  return s;
}
after(async () => {
  await Promise.allSettled([...open].map((s) => s.close()));
});

/** A deterministic interleaving of `a` and `b` (a small LCG: the same every run). */
function interleave(a, b) {
  const out = [];
  let seed = 12345;
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    if (j >= b.length || (i < a.length && seed % 2 === 0)) out.push(a[i++]);
    else out.push(b[j++]);
  }
  return out;
}

// --- a. fan-out -------------------------------------------------------------------------------

test('a. posts written through A reach subscribers on A, B and C once each, in commit order', { timeout: 90_000 }, async () => {
  const A = INSTANCES.A.url;
  const one = await createUser(A, 'a-one');
  const two = await createUser(A, 'a-two');
  const prefix = `${RUN}:a`;

  const subs = NAMES.map((name) => {
    const s = subscriber(`a/${name}`, INSTANCES[name].url);
    s.listen('all', POST_CREATED);
    s.listen('one', POST_CREATED, { authorId: one.id });
    s.listen('two', POST_CREATED, { authorId: two.id });
    return s;
  });
  await warmUp(
    subs.flatMap((s) => [[s, 'all'], [s, 'one'], [s, 'two']]),
    async (title) => {
      await createPost(A, `${title}:one`, one.id);
      await createPost(A, `${title}:two`, two.id);
    },
    prefix,
  );

  // 20 posts per author, interleaved, one after another through A.
  const plan = interleave(
    Array.from({ length: 20 }, (_, i) => [one, `${prefix}:one:${i}`]),
    Array.from({ length: 20 }, (_, i) => [two, `${prefix}:two:${i}`]),
  );
  const written = [];
  for (const [author, title] of plan) {
    const post = await createPost(A, title, author.id);
    written.push({ id: post.id, author: author.id, title });
  }
  // A last post each, the barrier: once every subscription has it, the others are in.
  const ends = [await createPost(A, `${prefix}:end:one`, one.id), await createPost(A, `${prefix}:end:two`, two.id)];
  const hasEnd = (s, key, end) => s.posts(key).some((p) => p.id === end.id);
  await waitFor(
    'the last posts on every subscription',
    () => subs.every((s) => hasEnd(s, 'all', ends[0]) && hasEnd(s, 'all', ends[1]) && hasEnd(s, 'one', ends[0]) && hasEnd(s, 'two', ends[1])),
    {
      explain: () => subs.map((s) => `${s.label}: all ${s.events.all.length}, one ${s.events.one.length}, two ${s.events.two.length}`).join('; '),
    },
  );

  const isTest = (p) => p.title.startsWith(`${prefix}:one:`) || p.title.startsWith(`${prefix}:two:`);
  const ids = (list) => list.map((p) => p.id);
  const byAuthor = (list, author) => ids(list.filter((p) => p.author === author));
  for (const s of subs) {
    assert.deepEqual(s.failures, [], `${s.label}: errors on the subscriptions`);
    assert.equal(s.connections.length, 1, `${s.label}: reconnected`);
    assert.equal(s.connections[0].closed, null, `${s.label}: the connection closed`);
    for (const key of ['all', 'one', 'two']) assert.deepEqual(s.codes(key), [], `${s.label}/${key}: gap notices`);

    const all = s.posts('all').filter(isTest);
    const received = all.map((p) => ({ id: p.id, author: p.author.id, title: p.title }));
    const twice = [...new Set(received.filter((p, i) => received.findIndex((q) => q.id === p.id) !== i).map((p) => p.title))];
    assert.deepEqual(twice, [], `${s.label}/all: posts that arrived twice (compare c3)`);
    for (const author of [one.id, two.id]) {
      assert.deepEqual(
        byAuthor(received, author),
        byAuthor(written, author),
        `${s.label}/all: one author's posts, each once and in the order written`,
      );
    }
    assert.deepEqual(ids(received), ids(written), `${s.label}/all: every post once, in the order written (one writer, so Redis's order is commit order)`);
    assert.deepEqual(ids(s.posts('one').filter(isTest)), byAuthor(written, one.id), `${s.label}/one: postCreated(authorId) gets that author's posts only, once each, in order`);
    assert.deepEqual(ids(s.posts('two').filter(isTest)), byAuthor(written, two.id), `${s.label}/two: postCreated(authorId) gets that author's posts only, once each, in order`);
  }
  log(`${written.length} posts through A (20 per author, interleaved): each of ${subs.length} subscribers x 3 subscriptions got its share once, in order`);
  await Promise.all(subs.map((s) => s.close()));
});

// --- b. no stale reads through nginx -----------------------------------------------------------

test('b. through nginx, a read after a write never returns the old user, whichever instance answers', { timeout: 90_000 }, async () => {
  const user = await createUser(NGINX, 'b-user');
  const rounds = 50;
  const stale = [];
  const pairs = { differ: 0, same: 0 };
  const served = { write: {}, read: {} };
  for (let i = 1; i <= rounds; i++) {
    const name = `b ${RUN} round ${i}`;
    const write = await must(NGINX, UPDATE_USER, { id: user.id, name });
    assert.equal(write.body.data.updateUser.name, name);
    const read = await must(NGINX, READ_USER, { id: user.id }, { token: null });
    served.write[write.by] = (served.write[write.by] ?? 0) + 1;
    served.read[read.by] = (served.read[read.by] ?? 0) + 1;
    pairs[write.by === read.by ? 'same' : 'differ']++;
    if (read.body.data.user?.name !== name) stale.push({ round: i, via: `nginx -> ${read.by}`, wrote: `${write.by}`, got: read.body.data.user?.name });
    // And straight from every instance, the cache of each warm with the previous name.
    for (const name_ of NAMES) {
      const direct = await must(INSTANCES[name_].url, READ_USER, { id: user.id }, { token: null });
      if (direct.body.data.user?.name !== name) stale.push({ round: i, via: name_, wrote: `${write.by}`, got: direct.body.data.user?.name });
    }
  }
  log(`${rounds} rounds of write-then-read through nginx; writes answered by ${JSON.stringify(served.write)}, reads by ${JSON.stringify(served.read)}; read on another instance than its write in ${pairs.differ} rounds`);
  assert.deepEqual(stale, [], 'stale reads');
  for (const name of NAMES) {
    assert.ok(served.write[name] > 0, `nginx sent no write to ${name}: ${JSON.stringify(served)}`);
    assert.ok(served.read[name] > 0, `nginx sent no read to ${name}: ${JSON.stringify(served)}`);
  }
  assert.ok(pairs.differ >= rounds / 2, `round-robin should put most reads on another instance than their write: ${JSON.stringify(pairs)}`);
});

// --- c. Redis killed and restarted ---------------------------------------------------------------

// What c1 leaves for c2: the subscribers on A and B, their author, the title prefix.
let redisCase = null;

test('c1. Redis killed and restarted: EVENTS_INTERRUPTED, a write still succeeds, then EVENTS_MISSED', { timeout: 90_000 }, async () => {
  const { A, B, C } = Object.fromEntries(NAMES.map((n) => [n, INSTANCES[n].url]));
  const author = await createUser(C, 'c-author');
  const prefix = `${RUN}:c`;
  const subs = ['A', 'B'].map((name) => {
    const s = subscriber(`c/${name}`, INSTANCES[name].url);
    s.listen('all', POST_CREATED, { authorId: author.id });
    return s;
  });
  const [onA] = subs;
  await warmUp(subs.map((s) => [s, 'all']), (title) => createPost(C, title, author.id), prefix);

  const killedAt = Date.now();
  let redisDown = true;
  try {
    await killRedis();
    log('redis-server killed (SIGKILL)');
    await waitFor('EVENTS_INTERRUPTED on both subscribers', () => subs.every((s) => s.codes('all').includes('EVENTS_INTERRUPTED')), {
      explain: () => subs.map((s) => `${s.label}: ${JSON.stringify(s.notices.all)}`).join('; '),
    });
    const interrupted = subs.map((s) => s.notices.all.find((n) => n.code === 'EVENTS_INTERRUPTED'));
    for (const [i, notice] of interrupted.entries()) {
      const since = Date.parse(notice.since);
      assert.ok(Number.isFinite(since), `${subs[i].label}: EVENTS_INTERRUPTED since is RFC 3339: ${notice.since}`);
      assert.ok(since >= killedAt - 1000 && since <= Date.now() + 1000, `${subs[i].label}: since ${notice.since} is when Redis went away`);
      assert.match(notice.message, /interrupted/);
    }
    log(`EVENTS_INTERRUPTED on A and B ${Math.max(...interrupted.map((n) => n.at)) - killedAt} ms after the kill`);

    // A write while Redis is down is committed and answered; the writer's own subscribers
    // still get it (the others cannot: that is what EVENTS_MISSED will tell them).
    const started = Date.now();
    const outage = await createPost(A, `${prefix}:during-outage`, author.id);
    const took = Date.now() - started;
    const readBack = await must(B, READ_POST, { id: outage.id });
    assert.equal(readBack.body.data.post?.id, outage.id, 'the post written while Redis was down is committed');
    await waitFor("the outage post on the writer's own instance (A)", () => onA.posts('all').some((p) => p.id === outage.id), { seconds: 10 });
    log(`createPost through A with Redis down: answered in ${took} ms, readable through B, delivered to A's subscriber`);

    await startRedis();
    redisDown = false;
    const restartedAt = Date.now();
    log('redis-server started again on the same port');
    await waitFor('EVENTS_MISSED on both subscribers', () => subs.every((s) => s.codes('all').includes('EVENTS_MISSED')), {
      explain: () => subs.map((s) => `${s.label}: ${JSON.stringify(s.notices.all)}`).join('; '),
    });
    for (const s of subs) {
      assert.deepEqual(s.codes('all'), ['EVENTS_INTERRUPTED', 'EVENTS_MISSED'], `${s.label}: one notice of each, in order`);
      const [gone, missed] = s.notices.all;
      assert.equal(missed.since, gone.since, `${s.label}: EVENTS_MISSED since is the interruption's`);
      assert.ok(Date.parse(missed.until) >= restartedAt - 1000, `${s.label}: EVENTS_MISSED until ${missed.until} is after the restart`);
      assert.ok(Date.parse(missed.until) > Date.parse(missed.since), `${s.label}: until after since`);
      assert.match(missed.message, /refetch/);
      assert.deepEqual(s.failures, [], `${s.label}: errors on the subscription`);
      assert.equal(s.connections.length, 1, `${s.label}: the WebSocket stayed open through the outage`);
      assert.equal(s.connections[0].closed, null, `${s.label}: the WebSocket stayed open through the outage`);
    }
    log(`EVENTS_MISSED on A and B ${Math.max(...subs.map((s) => s.notices.all[1].at)) - restartedAt} ms after the restart; the WebSockets stayed open`);
    redisCase = { subs, author, prefix };
  } finally {
    if (redisDown) {
      await startRedis().catch((error) => log(`could not start Redis again: ${error.message}`));
    }
    if (!redisCase) await Promise.all(subs.map((s) => s.close()));
  }
});

test('c2. once both got EVENTS_MISSED, a post written through any instance reaches the subscribers on A and B', { timeout: 60_000 }, async (t) => {
  if (!redisCase) {
    t.skip('c1 failed');
    return;
  }
  const { subs, author, prefix } = redisCase;
  const bases = Object.fromEntries(NAMES.map((n) => [n, INSTANCES[n].url]));
  const has = (s, post) => s.posts('all').some((p) => p.id === post.id);
  const noticesBefore = subs.map((s) => s.codes('all').length);
  try {
    // The first post through each instance since Redis came back...
    const first = [];
    for (const [name, base] of Object.entries(bases)) first.push([name, await createPost(base, `${prefix}:first-after:${name}`, author.id)]);
    // ...then more through each, until one of each has reached both subscribers: delivery
    // has resumed everywhere. Events arrive in Redis's order, so by then any of the first
    // posts that went through Redis has arrived too.
    let n = 0;
    const resumed = Object.fromEntries(NAMES.map((name) => [name, null]));
    await waitFor(
      'a post written through each of A, B and C to reach both subscribers',
      async () => {
        for (const [name, base] of Object.entries(bases)) {
          if (resumed[name] && subs.every((s) => has(s, resumed[name]))) continue;
          resumed[name] = await createPost(base, `${prefix}:after:${name}:${n++}`, author.id);
        }
        const until = Date.now() + 500;
        const done = () => NAMES.every((name) => subs.every((s) => has(s, resumed[name])));
        while (Date.now() < until && !done()) await sleep(10);
        return done();
      },
      { seconds: 30, explain: () => NAMES.map((name) => `${name}'s latest reached ${subs.filter((s) => has(s, resumed[name])).map((s) => s.label).join(',') || 'none'}`).join('; ') },
    );
    log(`delivery resumed: posts through A, B and C reach both subscribers (after ${n} tries)`);
    const lost = [];
    for (const [name, post] of first) {
      const missing = subs.filter((s) => !has(s, post)).map((s) => s.label);
      if (missing.length) lost.push(`the first post through ${name} did not reach ${missing.join(', ')}`);
    }
    for (const [i, s] of subs.entries()) {
      assert.deepEqual(s.codes('all').slice(noticesBefore[i]), [], `${s.label}: gap notices after EVENTS_MISSED`);
      const ids = s.posts('all').map((p) => p.id);
      assert.equal(new Set(ids).size, ids.length, `${s.label}: a post arrived twice`);
    }
    assert.deepEqual(
      lost,
      [],
      'after EVENTS_MISSED said live updates resumed, a post written through an instance must reach the subscribers of ' +
        'every instance; these reached only their own instance, and no notice told the others ' +
        "(see 'cannot publish an event to Redis' in the instances' logs)",
    );
    log('the first post through each instance after the restart reached both, once, with no further notice');
  } finally {
    await Promise.all(subs.map((s) => s.close()));
  }
});

test('c3. a Redis that answers late (stopped while a post is written) does not deliver the post twice', { timeout: 60_000 }, async () => {
  const A = INSTANCES.A.url;
  const author = await createUser(A, 'c3-author');
  const prefix = `${RUN}:c3`;
  const subs = ['A', 'B'].map((name) => {
    const s = subscriber(`c3/${name}`, INSTANCES[name].url);
    s.listen('all', POST_CREATED, { authorId: author.id });
    return s;
  });
  // Warm-up posts through A reaching B also show that A publishes to Redis again.
  await warmUp(subs.map((s) => [s, 'all']), (title) => createPost(A, title, author.id), prefix);
  const pid = redisPid();
  let stopped = false;
  let late;
  let took;
  try {
    // SIGSTOP: Redis takes the PUBLISH into its socket but answers only after SIGCONT, later
    // than the instance waits (CACHE_TIMEOUT_MS, at least 250 ms for a PUBLISH).
    process.kill(pid, 'SIGSTOP');
    stopped = true;
    const started = Date.now();
    late = await createPost(A, `${prefix}:late`, author.id);
    took = Date.now() - started;
  } finally {
    if (stopped) process.kill(pid, 'SIGCONT');
  }
  log(`createPost through A with Redis stopped: answered in ${took} ms (CACHE_TIMEOUT_MS); Redis continued`);
  // Then posts through A until one reaches both: whatever Redis had queued has arrived.
  const has = (s, post) => s.posts('all').some((p) => p.id === post.id);
  let barrier = null;
  let n = 0;
  await waitFor(
    'a post through A to reach both subscribers after Redis continued',
    async () => {
      if (!barrier || !subs.every((s) => has(s, barrier))) barrier = await createPost(A, `${prefix}:after:${n++}`, author.id);
      const until = Date.now() + 500;
      while (Date.now() < until && !subs.every((s) => has(s, barrier))) await sleep(10);
      return subs.every((s) => has(s, barrier));
    },
    { seconds: 30 },
  );
  const times = subs.map((s) => s.posts('all').filter((p) => p.id === late.id).length);
  log(`the post written while Redis was stopped arrived ${times.map((t, i) => `${t}x on ${subs[i].label}`).join(', ')}`);
  for (const s of subs) assert.deepEqual(s.failures, [], `${s.label}: errors on the subscription`);
  assert.deepEqual(
    times,
    subs.map(() => 1),
    'each subscriber gets each post once: a publish that timed out but reached Redis must not also be delivered ' +
      "locally (see 'cannot publish an event to Redis error=timed out' in A's log)",
  );
  await Promise.all(subs.map((s) => s.close()));
});

// --- d. SIGTERM through nginx ----------------------------------------------------------------

test('d. SIGTERM to one instance: its clients reconnect through nginx to the others, no write fails or is lost', { timeout: 150_000 }, async () => {
  const clients = 30;
  const author = await createUser(NGINX, 'd-author');
  const prefix = `${RUN}:d`;
  const seqOf = (post) => Number(post.title.slice(prefix.length + 1));

  const subs = Array.from({ length: clients }, (_, i) => {
    const s = subscriber(`d/${i}`, NGINX, { retry: true });
    s.listen('w', POST_CREATED, { authorId: author.id });
    return s;
  });

  // The writer: one createPost through nginx after another, ~20 ms apart, until stopped.
  const writes = [];
  let writing = true;
  const writer = (async () => {
    for (let seq = 1; writing; seq++) {
      const sentAt = Date.now();
      const answer = await gql(NGINX, CREATE_POST, { title: `${prefix}:${seq}`, authorId: author.id });
      const ok = answer.status === 200 && !!answer.body?.data?.createPost && !answer.body.errors;
      writes.push({ seq, sentAt, doneAt: Date.now(), ok, status: answer.status, by: answer.by, upstream: answer.upstream, id: answer.body?.data?.createPost?.id, text: ok ? undefined : answer.text.slice(0, 300) });
      await sleep(20);
    }
  })();
  const writesSince = (n) => writes.length - n;

  try {
    await waitFor('every client to receive a post', () => subs.every((s) => s.events.w.length > 0), {
      seconds: 30,
      explain: () => `${subs.filter((s) => s.events.w.length === 0).length} of ${clients} still waiting; ${writes.length} writes so far`,
    });
    const where = {};
    for (const s of subs) where[s.connections[0].upstream] = (where[s.connections[0].upstream] ?? 0) + 1;
    log(`${clients} clients subscribed through nginx: ${JSON.stringify(where)}`);
    assert.ok(NAMES.every((n) => where[n] > 0), `nginx should spread the WebSockets over every instance: ${JSON.stringify(where)}`);
    // The instance holding the most clients (the first such, in A, B, C order).
    const victim = NAMES.reduce((best, n) => (where[n] > where[best] ? n : best), NAMES[0]);
    const moved = subs.filter((s) => s.connections[0].upstream === victim);
    const stayed = subs.filter((s) => s.connections[0].upstream !== victim);

    const { pid, url } = INSTANCES[victim];
    await waitFor('20 writes before the SIGTERM', () => writes.length >= 20, { seconds: 30 });
    const writesBefore = writes.length;
    fs.writeFileSync(STOPPED, victim);
    const termAt = Date.now();
    process.kill(pid, 'SIGTERM');
    log(`SIGTERM to ${victim} (pid ${pid}), which held ${moved.length} clients, after ${writesBefore} writes`);

    // While it drains, /readyz on the stopping instance says 503, until its listener closes.
    const readiness = [];
    for (;;) {
      let code;
      try {
        code = (await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2000) })).status;
      } catch {
        code = 'refused';
      }
      if (readiness.at(-1)?.code !== code) readiness.push({ code, after: Date.now() - termAt });
      if (code === 'refused' || Date.now() - termAt > 20_000) break;
      await sleep(50);
    }
    log(`${victim}'s /readyz after SIGTERM: ${readiness.map((r) => `${r.code} at ${r.after} ms`).join(', ')}`);

    await waitFor(`${victim} to exit`, () => !running(pid), { seconds: 20 });
    const exitedAt = Date.now();
    await waitFor(
      `the ${moved.length} clients of ${victim} to reconnect elsewhere and receive a post again`,
      () => moved.every((s) => s.connections.length >= 2 && s.events.w.some((e) => e.epoch >= 1)),
      {
        seconds: 40,
        explain: () => moved.filter((s) => !(s.connections.length >= 2 && s.events.w.some((e) => e.epoch >= 1)))
          .map((s) => `${s.label}: ${JSON.stringify(s.connections)} failed attempts ${JSON.stringify(s.failedAttempts)}`).join('; '),
      },
    );
    // More writes once everyone is back, for 3 s at least, then the last one is the barrier.
    const mark = writes.length;
    const lastBack = Math.max(...moved.map((s) => s.connections.at(-1).at));
    await waitFor('30 more writes, 3 s past the last reconnection', () => writesSince(mark) >= 30 && Date.now() > lastBack + 3000, { seconds: 30 });
    writing = false;
    await writer;
    const lastOk = writes.findLast((w) => w.ok);
    assert.ok(lastOk, 'no write succeeded');
    await waitFor('every client to receive the last post', () => subs.every((s) => s.events.w.some((e) => seqOf(e.data.postCreated) === lastOk.seq)), {
      seconds: 20,
      explain: () => `${subs.filter((s) => !s.events.w.some((e) => seqOf(e.data.postCreated) === lastOk.seq)).map((s) => s.label).join(', ')} lack #${lastOk.seq}`,
    });

    // Everything that went wrong, all reported together.
    const problems = [];
    const check = (ok, problem) => {
      if (!ok) problems.push(problem);
    };

    // --- the writes: none failed, every one answered is there.
    const failed = writes.filter((w) => !w.ok);
    const stored = await postsOf(NGINX, author.id);
    const storedIds = new Set(stored.map((p) => p.id));
    const storedSeqs = new Set(stored.map((p) => seqOf(p)));
    const by = {};
    for (const w of writes.filter((w) => w.seq > writesBefore)) by[w.by] = (by[w.by] ?? 0) + 1;
    const passedOn = writes.filter((w) => w.upstream?.includes(','));
    log(`${writes.length} writes through nginx (${writes.length - writesBefore} after SIGTERM, answered by ${JSON.stringify(by)}; ${passedOn.length} passed on from the stopped instance), ${failed.length} failed, ${stored.length} stored`);
    for (const w of writes.filter((w) => w.ok && !storedIds.has(w.id))) check(false, `write #${w.seq} was answered with post ${w.id}, which is not stored`);
    for (const w of failed) {
      check(false, `write #${w.seq}, ${w.sentAt - termAt} ms after SIGTERM, failed: HTTP ${w.status} via ${w.upstream}: ${w.text} (stored all the same: ${storedSeqs.has(w.seq)})`);
    }
    check(storedSeqs.size === stored.length, `a write was stored twice: ${stored.length} posts, ${storedSeqs.size} titles`);

    // --- readiness while draining.
    check(readiness.some((r) => r.code === 503), `${victim}'s /readyz should answer 503 while draining: ${JSON.stringify(readiness)}`);
    check(readiness.at(-1).code === 'refused', `${victim}'s listener should close: ${JSON.stringify(readiness)}`);

    // --- the clients.
    const missed = [];
    for (const s of moved) {
      const [first, ...later] = s.connections;
      check(first.closed?.code === 1001, `${s.label}: the stopped instance should close with 1001 (going away), got ${JSON.stringify(first.closed)}`);
      check(first.closed && first.closed.at >= termAt, `${s.label}: closed before the SIGTERM`);
      if (later.length === 0) {
        check(false, `${s.label}: did not reconnect`);
        continue;
      }
      for (const c of later) check(c.upstream !== victim, `${s.label}: reconnected to the stopped instance`);
      const reconnect = later.at(-1);
      // Every post whose write began once the client was back (and its subscribe sent) is
      // there: after its first post on the new connection, the posts are consecutive to
      // the end (checked below); and that first post is no later than the first write
      // begun 2.5 s after the reconnect.
      const firstAfter = s.posts('w', later.length).map(seqOf)[0];
      const due = writes.find((w) => w.sentAt > reconnect.at + 2500);
      if (due) check(firstAfter <= due.seq, `${s.label}: its first post after reconnecting is #${firstAfter}, but #${due.seq} was written 2.5 s after it reconnected`);
      const lastBefore = s.posts('w', 0).map(seqOf).at(-1);
      missed.push({ label: s.label, gap: firstAfter - lastBefore - 1, down: reconnect.at - first.closed.at, to: reconnect.upstream });
    }
    for (const s of stayed) {
      check(s.connections.length === 1 && s.connections[0].closed === null, `${s.label}, a client of ${s.connections[0].upstream}, was closed or reconnected: ${JSON.stringify(s.connections)}`);
    }
    for (const s of subs) {
      check(s.failures.length === 0, `${s.label}: errors on the subscription: ${JSON.stringify(s.failures)}`);
      check(s.codes('w').length === 0, `${s.label}: gap notices: ${JSON.stringify(s.notices.w)}`);
      const seqs = s.posts('w').map(seqOf);
      const twice = s.events.w
        .map((e, i) => ({ seq: seqOf(e.data.postCreated), on: `connection ${e.epoch + 1} (${s.connections[e.epoch].upstream})`, i }))
        .filter((e, _, all) => all.some((o) => o.seq === e.seq && o.i !== e.i));
      for (const { seq, on } of twice) {
        check(false, `${s.label}: #${seq} arrived twice, on ${on}; it was written through ${writes.find((w) => w.seq === seq)?.by} (compare c3)`);
      }
      for (let epoch = 0; epoch < s.connections.length; epoch++) {
        const got = s.posts('w', epoch).map(seqOf);
        for (let i = 1; i < got.length; i++) {
          if (got[i] !== got[i - 1] + 1 && got[i] !== got[i - 1]) {
            check(false, `${s.label}, connection ${epoch + 1}: #${got[i - 1]} then #${got[i]} (missing or out of order)`);
          }
        }
      }
      check(seqs.at(-1) === lastOk.seq, `${s.label}: its last post is #${seqs.at(-1)}, not #${lastOk.seq}`);
    }
    const range = (values) => (values.length ? `${Math.min(...values)}-${Math.max(...values)}` : 'n/a');
    const to = {};
    for (const m of missed) to[m.to] = (to[m.to] ?? 0) + 1;
    log(`${missed.length} of ${moved.length} clients of ${victim} came back, on ${JSON.stringify(to)}, ${range(missed.map((m) => m.down))} ms after their close, missing ${range(missed.map((m) => m.gap))} posts in between (refetch on reconnect); the other ${stayed.length} stayed connected`);
    log(`${victim} exited ${exitedAt - termAt} ms after SIGTERM`);
    for (const problem of problems) log(`PROBLEM: ${problem}`);
    assert.deepEqual(problems, [], 'SIGTERM through nginx');
    log(`every client received every post from its first one on each connection to #${lastOk.seq}, once, in order`);
  } finally {
    writing = false;
    await writer;
    await Promise.all(subs.map((s) => s.close()));
  }
});

// --- e. the nginx example and the origin rule ---------------------------------------------------

/** Opens a graphql-transport-ws socket with `origin` and says how it went. */
function tryOrigin(base, origin) {
  return new Promise((resolve) => {
    const socket = new WebSocket(wsUrl(base), 'graphql-transport-ws', { origin });
    const done = (outcome) => {
      socket.terminate();
      resolve(outcome);
    };
    const timer = setTimeout(() => done('no answer in 10 s'), 10_000);
    socket.on('unexpected-response', (_request, response) => {
      clearTimeout(timer);
      done(`HTTP ${response.statusCode}`);
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      done(`error: ${error.message}`);
    });
    socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init' })));
    socket.on('message', (data) => {
      clearTimeout(timer);
      done(JSON.parse(String(data)).type);
    });
    socket.on('close', (code) => {
      clearTimeout(timer);
      done(`closed ${code}`);
    });
  });
}

test('e. through nginx, a page of nginx\'s own origin may open a WebSocket, another origin may not', { timeout: 30_000 }, async () => {
  const own = new URL(NGINX).origin;
  for (let i = 0; i < NAMES.length; i++) {
    // Three tries, round-robin over the instances still running.
    assert.equal(await tryOrigin(NGINX, own), 'connection_ack', `same-origin WebSocket (Origin: ${own}) through nginx, try ${i + 1}: nginx must pass the Host with its port`);
  }
  assert.equal(await tryOrigin(NGINX, 'http://elsewhere.example'), 'HTTP 403', 'a WebSocket from another origin is refused');
  log(`Origin ${own}: acknowledged (3 tries, round-robin); Origin http://elsewhere.example: 403`);
});
