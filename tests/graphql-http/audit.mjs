// GraphQL over HTTP conformance audit of a running Quill, with the audits of graphql-http
// (written by the authors of the GraphQL over HTTP spec). See README.md beside this file.
//
//   QUILL_URL=http://127.0.0.1:8000 [QUILL_ADMIN_TOKEN=<token>] node audit.mjs
//
// Prints one line per audit, then the totals. Exits 1 when a MUST or SHOULD audit is not ok
// (unless it is listed in EXCEPTIONS below), when an audit could not run at all, or when
// EXCEPTIONS names an audit that does not exist; MAY audits are reported but never fail.
// With QUILL_ADMIN_TOKEN (`run` mints one with `api token --role admin`) every audit runs a
// second time with `Authorization: Bearer <token>` on each request, judged the same way: an
// authenticated request goes through the same HTTP handling. That pass prints the audits
// that are not ok and its totals.

import { serverAudits } from 'graphql-http';

// MUST/SHOULD audits allowed to fail, by id, each with the reason. The only acceptable
// entries are GET audits that Quill refuses on purpose: a GET query runs only when the
// request carries an `apollo-require-preflight`, `x-apollo-operation-name` or
// `x-requested-with` header or a JSON content type, and is answered 400 otherwise
// (a browser can send a plain GET cross-site without a CORS preflight).
//
// It is empty: in graphql-http 1.23.1 every audit that sends a GET is a MAY audit
// (5A70, 9C48, D6D5, 6A70), so none of them can fail the run. Every other failure is a
// bug in the server: fix the server, do not add it here.
const EXCEPTIONS = {
  // 'XXXX': 'why Quill refuses this on purpose',
};

// The MAY audits that send a GET without any of the headers above. When one of them is
// answered 400, its line says that this is the CSRF rule; each is also run again with an
// `x-requested-with` header, to show whether the GET path itself conforms. Both are
// informational only.
const CSRF_GET_AUDITS = new Set(['5A70', '9C48', 'D6D5', '6A70']);

const base = (process.env.QUILL_URL || 'http://127.0.0.1:8000').replace(/\/+$/, '');
const url = `${base}/graphql`;
const requestTimeoutMs = Number(process.env.QUILL_AUDIT_REQUEST_TIMEOUT_MS || 10000);
const adminToken = process.env.QUILL_ADMIN_TOKEN || '';

/** Global fetch with a per-request timeout; `extraHeaders` are added to GET requests,
 * `everyRequest` headers to all of them. */
function makeFetch(extraHeaders = {}, everyRequest = {}) {
  return (input, init = {}) => {
    const method = (init.method || 'GET').toUpperCase();
    const headers = new Headers(init.headers || {});
    if (method === 'GET') {
      for (const [k, v] of Object.entries(extraHeaders)) headers.set(k, v);
    }
    for (const [k, v] of Object.entries(everyRequest)) headers.set(k, v);
    return fetch(input, { ...init, headers, signal: AbortSignal.timeout(requestTimeoutMs) });
  };
}

const level = (name) => name.split(' ', 1)[0]; // MUST, SHOULD or MAY

/** What the server answered, for the report of a failed audit. */
async function describe(response) {
  if (!response) return '';
  let body = '';
  try {
    if (!response.bodyUsed) body = (await response.text()).replace(/\s+/g, ' ').trim();
  } catch {
    body = '(body unreadable)';
  }
  if (body.length > 300) body = `${body.slice(0, 300)}…`;
  const type = response.headers.get('content-type') || '(none)';
  return `got ${response.status}, content-type ${type}${body ? `, body ${body}` : ''}`;
}

/** Runs one audit; a thrown error (not an assertion) becomes a fatal result. */
async function run(audit) {
  try {
    return await audit.fn();
  } catch (error) {
    const cause = error?.cause ? ` (${error.cause.code || error.cause.message || error.cause})` : '';
    return { id: audit.id, name: audit.name, status: 'fatal', reason: `${error?.message || error}${cause}` };
  }
}

const audits = serverAudits({ url, fetchFn: makeFetch() });
const retry = new Map(
  serverAudits({ url, fetchFn: makeFetch({ 'x-requested-with': 'graphql-http-audit' }) }).map((a) => [a.id, a]),
);
const known = new Set(audits.map((a) => a.id));

console.log(`graphql-http serverAudits against ${url}: ${audits.length} audits`);

const counts = { ok: 0, warn: 0, error: 0, notice: 0, fatal: 0 };
const failing = [];
const excepted = [];
for (const audit of audits) {
  // One at a time, in the package's order, so the output is stable.
  const result = await run(audit);
  counts[result.status] = (counts[result.status] ?? 0) + 1;
  const lvl = level(result.name);
  let line = `${result.id}  ${result.status.padEnd(6)}  ${result.name}`;
  if (result.status !== 'ok') {
    const got = await describe(result.response);
    line += `\n        reason: ${result.reason}${got ? `; ${got}` : ''}`;
    if (result.status === 'fatal') {
      failing.push(result.id);
    } else if (lvl === 'MUST' || lvl === 'SHOULD') {
      if (Object.hasOwn(EXCEPTIONS, result.id)) {
        excepted.push(result.id);
        line += `\n        exception: ${EXCEPTIONS[result.id]}`;
      } else {
        failing.push(result.id);
      }
    } else if (CSRF_GET_AUDITS.has(result.id) && result.response?.status === 400) {
      line += '\n        note: a GET without a preflight header is refused on purpose (CSRF rule)';
    }
  } else if (Object.hasOwn(EXCEPTIONS, result.id)) {
    line += '\n        note: listed in EXCEPTIONS but passes now: remove it from the list';
  }
  if (CSRF_GET_AUDITS.has(result.id) && result.status !== 'fatal') {
    // Informational: the same GET with a preflight header, past the CSRF rule.
    const again = await run(retry.get(result.id));
    line += `\n        again with \`x-requested-with\`: ${again.status}`;
    if (again.status !== 'ok') {
      const got = await describe(again.response);
      line += ` (${again.reason}${got ? `; ${got}` : ''})`;
    }
  }
  console.log(line);
}

for (const id of Object.keys(EXCEPTIONS)) {
  if (!known.has(id)) {
    console.log(`EXCEPTIONS names ${id}, which is not an audit of this graphql-http version`);
    failing.push(id);
  }
}

const totals = (c) =>
  `${c.ok} ok, ${c.warn} warn (SHOULD), ${c.error} error (MUST), ` +
  `${c.notice} notice (MAY)${c.fatal ? `, ${c.fatal} fatal (could not run)` : ''}`;
console.log(`totals: ${totals(counts)}; ${excepted.length} excepted`);

// --- the same audits with an admin's bearer token on every request.
if (adminToken) {
  const authorization = { authorization: `Bearer ${adminToken}` };
  const withToken = serverAudits({ url, fetchFn: makeFetch({}, authorization) });
  const tokenCounts = { ok: 0, warn: 0, error: 0, notice: 0, fatal: 0 };
  console.log(`again with \`Authorization: Bearer <admin token>\` on every request: ${withToken.length} audits`);
  for (const audit of withToken) {
    const result = await run(audit);
    tokenCounts[result.status] = (tokenCounts[result.status] ?? 0) + 1;
    if (result.status === 'ok') continue;
    const lvl = level(result.name);
    const got = await describe(result.response);
    let line = `${result.id}  ${result.status.padEnd(6)}  ${result.name} (with the token)`;
    line += `\n        reason: ${result.reason}${got ? `; ${got}` : ''}`;
    if (result.status === 'fatal') {
      failing.push(`${result.id}+token`);
    } else if (lvl === 'MUST' || lvl === 'SHOULD') {
      if (Object.hasOwn(EXCEPTIONS, result.id)) {
        line += `\n        exception: ${EXCEPTIONS[result.id]}`;
      } else {
        failing.push(`${result.id}+token`);
      }
    } else if (CSRF_GET_AUDITS.has(result.id) && result.response?.status === 400) {
      line += '\n        note: a GET without a preflight header is refused on purpose (CSRF rule)';
    }
    console.log(line);
  }
  console.log(`totals with the token: ${totals(tokenCounts)}`);
} else {
  console.log('no QUILL_ADMIN_TOKEN: the audits ran anonymously only');
}
if (failing.length > 0) {
  console.log(
    `graphql-http audit: FAIL: ${failing.length} MUST/SHOULD audits not ok (or not run): ${failing.join(' ')}`,
  );
  process.exit(1);
}
console.log('graphql-http audit: PASS: every MUST and SHOULD audit is ok');
