// One client process of the fan-out benchmark (forked by fanout.mjs): opens its share of
// the subscribers against one server URL, each its own WebSocket (speaking
// graphql-transport-ws directly, or through the graphql-ws client), and records every `postCreated` that arrives: which subscriber, which post, and how long
// after the post's `createdAt` it was received. Talks to its parent over IPC:
//
//   parent -> { cmd: 'start', url, client, count, batch, query, runPrefix, probePrefix, capacity }
//   child  -> { type: 'ready', connected, failed, closeCodes }   once every batch is connected
//   parent -> { cmd: 'status' }      child -> { type: 'status', ... } (counts so far)
//   parent -> { cmd: 'finish', written: [post ids], latencyFile, committed?: { post id: ms },
//               commitLatencyFile? }
//   child  -> { type: 'result', ... }, and in `latencyFile` the latency of the first
//             delivery of each written post to each subscriber from its `createdAt`
//             (float64 milliseconds); in `commitLatencyFile` the same deliveries timed from
//             their commits, where `committed` gives the commit time; then it closes its
//             sockets and exits.

import { writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

// Wall-clock milliseconds with sub-millisecond precision, on the same clock as the
// servers' timestamps (this machine's).
const now = () => performance.timeOrigin + performance.now();

// `2026-12-03T12:00:00.123456+00:00`, `…Z`, or PostgreSQL's `2026-12-03 12:00:00.123+00`:
// milliseconds since the epoch, keeping the microseconds Date.parse would drop.
const TIMESTAMP = /^(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d(?::?\d\d)?)?$/;
function parseTimestamp(text) {
  const m = TIMESTAMP.exec(text);
  if (!m) return Number.NaN;
  let zone = m[4] ?? 'Z';
  if (/^[+-]\d\d$/.test(zone)) zone += ':00';
  else if (/^[+-]\d{4}$/.test(zone)) zone = `${zone.slice(0, 3)}:${zone.slice(3)}`;
  const seconds = Date.parse(`${m[1]}T${m[2]}${zone}`);
  const fraction = m[3] ? Number(`0.${m[3]}`) * 1000 : 0;
  return seconds + fraction;
}

class Float64List {
  constructor(capacity) {
    this.values = new Float64Array(Math.max(capacity, 1024));
    this.length = 0;
  }
  push(value) {
    if (this.length === this.values.length) {
      const bigger = new Float64Array(this.values.length * 2);
      bigger.set(this.values);
      this.values = bigger;
    }
    this.values[this.length++] = value;
  }
}

let settings;
const subscribers = []; // { index, dispose, seen: deliveries per post index, probe, connected, closed }
const closeCodes = {};
const errors = {};
let disposing = false;

// Posts of this run, by id: their index and creation time (parsed once).
const posts = new Map();
const postIds = [];
const createdAt = [];
// Every first delivery of a run's post to a subscriber: latency and post index, in arrival order.
let latencies;
let latencyPost = new Uint32Array(0);
let deliveries = 0;
let lastReceipt = 0;
let foreign = 0;
let withoutAuthor = 0;

function countInto(table, key) {
  table[key] = (table[key] ?? 0) + 1;
}

function postIndex(post) {
  let index = posts.get(post.id);
  if (index === undefined) {
    index = postIds.length;
    posts.set(post.id, index);
    postIds.push(post.id);
    createdAt.push(parseTimestamp(post.createdAt));
  }
  return index;
}

function record(subscriber, result) {
  const received = now();
  const post = result?.data?.postCreated;
  if (!post) {
    const code = result?.errors?.[0]?.extensions?.code ?? result?.errors?.[0]?.message ?? 'no data';
    countInto(errors, `payload: ${code}`);
    return;
  }
  if (post.title.startsWith(settings.probePrefix)) {
    subscriber.probe = true;
    return;
  }
  if (!post.title.startsWith(settings.runPrefix)) {
    foreign += 1;
    return;
  }
  if (!post.author || typeof post.author.name !== 'string') withoutAuthor += 1;
  const index = postIndex(post);
  if (index >= subscriber.seen.length) {
    const bigger = new Uint8Array(Math.max(subscriber.seen.length * 2, index + 1));
    bigger.set(subscriber.seen);
    subscriber.seen = bigger;
  }
  const before = subscriber.seen[index];
  if (before < 255) subscriber.seen[index] = before + 1;
  lastReceipt = received;
  if (before > 0) return; // a duplicate: counted at the end, not timed again
  if (deliveries === latencyPost.length) {
    const bigger = new Uint32Array(Math.max(latencyPost.length * 2, 1024));
    bigger.set(latencyPost);
    latencyPost = bigger;
  }
  latencyPost[deliveries] = index;
  latencies.push(received - createdAt[index]);
  deliveries += 1;
}

// Settles `subscriber` once: connected and subscribed, or failed.
function settler(subscriber, resolve) {
  let settled = false;
  return () => {
    if (!settled) {
      settled = true;
      resolve(subscriber);
    }
  };
}

// The graphql-ws library's client, one per subscriber (`client: "graphql-ws"`).
function openGraphqlWs(subscriber, settle) {
  subscriber.client = createClient({
    url: settings.url,
    webSocketImpl: WebSocket,
    connectionParams: {},
    retryAttempts: 0,
    on: {
      connected: () => {
        subscriber.connected = true;
        settle();
      },
      closed: (event) => {
        subscriber.closed = true;
        if (!disposing) countInto(closeCodes, String(event?.code ?? 'unknown'));
        settle();
      },
    },
  });
  subscriber.client.subscribe(
    { query: settings.query },
    {
      next: (result) => record(subscriber, result),
      error: (error) => {
        if (disposing) return;
        const what = Array.isArray(error)
          ? `graphql: ${error[0]?.message}`
          : error?.code !== undefined
            ? `closed: ${error.code}`
            : `error: ${error?.message ?? error}`;
        countInto(errors, what);
        settle();
      },
      complete: () => {
        if (!disposing) countInto(errors, 'completed by the server');
      },
    },
  );
  subscriber.dispose = () => subscriber.client.dispose();
}

// The graphql-transport-ws protocol spoken directly over a `ws` socket (`client: "raw"`,
// the default): the same messages graphql-ws exchanges (connection_init, subscribe, next,
// ping/pong, error, complete), without the library's per-message bookkeeping, so that the
// client processes' CPU goes on receiving and the latency measured is the server's.
function openRaw(subscriber, settle) {
  const socket = new WebSocket(settings.url, 'graphql-transport-ws', { perMessageDeflate: false });
  const send = (message) => socket.send(JSON.stringify(message));
  socket.on('open', () => send({ type: 'connection_init', payload: {} }));
  socket.on('message', (data) => {
    let message;
    try {
      message = JSON.parse(data);
    } catch {
      countInto(errors, 'a message that is not JSON');
      return;
    }
    switch (message.type) {
      case 'next':
        record(subscriber, message.payload);
        break;
      case 'ping':
        send({ type: 'pong' });
        break;
      case 'pong':
        break;
      case 'connection_ack':
        send({ id: '1', type: 'subscribe', payload: { query: settings.query } });
        subscriber.connected = true;
        settle();
        break;
      case 'error':
        if (!disposing) countInto(errors, `graphql: ${message.payload?.[0]?.message}`);
        settle();
        break;
      case 'complete':
        if (!disposing) countInto(errors, 'completed by the server');
        break;
      default:
        countInto(errors, `unexpected message: ${message.type}`);
    }
  });
  socket.on('error', (error) => {
    if (!disposing) countInto(errors, `error: ${error?.message ?? error}`);
  });
  socket.on('close', (code) => {
    subscriber.closed = true;
    if (!disposing) countInto(closeCodes, String(code));
    settle();
  });
  subscriber.dispose = () =>
    new Promise((resolve) => {
      if (socket.readyState === WebSocket.CLOSED) return resolve();
      socket.once('close', resolve);
      socket.close(1000);
    });
}

function open(index) {
  const subscriber = { index, seen: new Uint8Array(settings.capacity), probe: false, connected: false, closed: false };
  return new Promise((resolve) => {
    const settle = settler(subscriber, resolve);
    if (settings.client === 'graphql-ws') openGraphqlWs(subscriber, settle);
    else openRaw(subscriber, settle);
  });
}

async function start(message) {
  settings = message;
  latencies = new Float64List(settings.capacity * settings.count);
  for (let first = 0; first < settings.count; first += settings.batch) {
    const batch = [];
    for (let i = first; i < Math.min(first + settings.batch, settings.count); i += 1) batch.push(open(i));
    subscribers.push(...(await Promise.all(batch)));
  }
  const connected = subscribers.filter((s) => s.connected && !s.closed).length;
  process.send({ type: 'ready', connected, failed: settings.count - connected, closeCodes, errors });
}

function status() {
  process.send({
    type: 'status',
    open: subscribers.filter((s) => s.connected && !s.closed).length,
    probed: subscribers.filter((s) => s.probe).length,
    deliveries,
    lastReceipt,
  });
}

async function finish({ written, latencyFile, committed = {}, commitLatencyFile }) {
  // Which of the posts seen are the ones written and acknowledged.
  const isWritten = new Uint8Array(postIds.length);
  let writtenSeen = 0;
  for (const id of written) {
    const index = posts.get(id);
    if (index !== undefined) {
      isWritten[index] = 1;
      writtenSeen += 1;
    }
  }
  let received = 0;
  let duplicates = 0;
  let complete = 0;
  for (const subscriber of subscribers) {
    let mine = 0;
    for (let index = 0; index < postIds.length; index += 1) {
      const n = subscriber.seen[index] ?? 0;
      if (n > 0 && isWritten[index]) {
        received += 1;
        mine += 1;
        duplicates += n - 1;
      }
    }
    if (mine === written.length) complete += 1;
  }
  // The first delivery of each written post to each subscriber is timed.
  // From its commit, a delivery's latency is the one from `createdAt` less the time from
  // `createdAt` to the commit.
  const toCommit = postIds.map((id, index) => (id in committed ? committed[id] - createdAt[index] : null));
  const kept = new Float64Array(deliveries);
  const fromCommit = new Float64Array(deliveries);
  let k = 0;
  let c = 0;
  for (let i = 0; i < deliveries; i += 1) {
    if (!isWritten[latencyPost[i]]) continue;
    kept[k++] = latencies.values[i];
    const shift = toCommit[latencyPost[i]];
    if (shift !== null) fromCommit[c++] = latencies.values[i] - shift;
  }
  writeFileSync(latencyFile, Buffer.from(kept.buffer, 0, k * 8));
  if (commitLatencyFile) writeFileSync(commitLatencyFile, Buffer.from(fromCommit.buffer, 0, c * 8));
  const notWritten = postIds.length - writtenSeen;
  disposing = true;
  process.send({
    type: 'result',
    subscribers: settings.count,
    received,
    duplicates,
    complete,
    timed: k,
    postsNotWritten: notWritten,
    foreign,
    withoutAuthor,
    closeCodes,
    errors,
    lastReceipt,
  });
  await Promise.all(subscribers.map((s) => s.dispose()));
  process.disconnect();
  setTimeout(() => process.exit(0), 2000).unref();
}

process.on('message', (message) => {
  if (message.cmd === 'start') start(message);
  else if (message.cmd === 'status') status();
  else if (message.cmd === 'finish') finish(message);
});
