// Quill's GraphiQL playground in a real browser: Debian's Chromium, driven by playwright-core,
// with every request to an origin other than Quill's aborted. Opens ${QUILL_URL}/graphql, types
// and runs a query, reads the result, walks the docs explorer to the User type, looks at the
// history; then runs a subscription over the page's WebSocket, with the token typed into the
// headers editor (a bad one is refused at once with 4403), creates a post over HTTP and reads
// its event in the result pane; and saves a screenshot. Fails (exit 1) on a failed check, on
// any request or WebSocket to another origin, on any console error, page error or Content
// Security Policy violation.
// Run by `run` beside this file, which starts the server; see README.md.
//
// Settings (environment):
//   QUILL_URL          the running server, e.g. http://127.0.0.1:8000 (required)
//   QUILL_ADMIN_TOKEN  a token with the role `admin` for that server (`api token --role admin`),
//                      required: typed into the headers editor for the subscription, and sent
//                      by the test itself to create the post
//   CHROMIUM           the Chromium executable (default: /usr/bin/chromium)
//   SCREENSHOT         where to save the screenshot (default: playground.png beside this file)

import { randomUUID } from 'node:crypto';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { executable, launch } from './chromium.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));
const STEP_TIMEOUT_MS = 15_000;
// On a fresh database there are no users; the query is what a newcomer would try first.
const QUERY = '{ users(first: 1) { totalCount } }';
const EXPECTED_RESULT = /"totalCount":\s*0\b/;
// `email` is shown to admins only (`null` to anonymous callers): a non-null one in the event
// proves the headers editor's token reached the subscription.
const SUBSCRIPTION = 'subscription { postCreated { title author { email } } }';

const say = (message) => console.log(`playground: ${message}`);
const fail = (message) => {
  console.error(`playground: FAILED: ${message}`);
  process.exitCode = 1;
};

if (!process.env.QUILL_URL) {
  fail('set QUILL_URL to the running server, e.g. http://127.0.0.1:8000');
  process.exit(1);
}
const base = new URL(process.env.QUILL_URL);
const origin = base.origin;
const pageUrl = new URL('/graphql', base).href;
// The page's origin as a WebSocket's: ws: for http:, wss: for https:.
const wsOrigin = origin.replace(/^http/, 'ws');

const adminToken = process.env.QUILL_ADMIN_TOKEN;
if (!adminToken) {
  fail('set QUILL_ADMIN_TOKEN to an admin token for that server (api token --role admin)');
  process.exit(1);
}

// A JSON POST from here (not the browser), as the admin; the data, or it throws.
async function postAsAdmin(query, variables) {
  const response = await fetch(pageUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${adminToken}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (response.status !== 200 || body.errors) throw new Error(`HTTP ${response.status} ${short(JSON.stringify(body))}`);
  return body.data;
}
const screenshot = resolve(process.env.SCREENSHOT || join(here, 'playground.png'));

// --- what the browser did that it must not: each entry is a reason to fail.
const blocked = []; // requests to another origin (aborted)
const problems = []; // console errors, page errors, CSP violations, failed same-origin requests
const sockets = []; // every WebSocket the page opened: { url, sent, received, closed }
let currentStep = 'start';
const problem = (what) => problems.push(`${what} (during: ${currentStep})`);

const isQuill = (url) => {
  if (url.startsWith('data:')) return true; // inline, never on the network
  try {
    return new URL(url).origin === origin; // blob: URLs carry their creator's origin
  } catch {
    return false;
  }
};
const short = (text, n = 300) => {
  const t = text.trim();
  return t.length > n ? `${t.slice(0, n)}…` : t;
};
const mentionsCsp = (text) => /content[ -]security[ -]policy/i.test(text);
// A request to another origin, counted once (by the route or by the request event).
const seen = new WeakSet();
const countBlocked = (request) => {
  if (seen.has(request)) return;
  seen.add(request);
  blocked.push(`${request.method()} ${short(request.url(), 200)} (during: ${currentStep})`);
};

// Each step gets at most STEP_TIMEOUT_MS, and must leave no new problem behind.
async function step(name, run) {
  currentStep = name;
  const started = Date.now();
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`did not finish within ${STEP_TIMEOUT_MS / 1000} s`)), STEP_TIMEOUT_MS);
  });
  try {
    const result = await Promise.race([run(), timeout]);
    if (blocked.length || problems.length) throw new Error('the browser reported problems (below)');
    const took = ((Date.now() - started) / 1000).toFixed(1);
    say(`ok: ${name}${result ? ` — ${result}` : ''} (${took} s)`);
  } catch (error) {
    throw new Error(`${name}: ${error.message.split('\n')[0]}`);
  } finally {
    clearTimeout(timer);
  }
}

let browser;
let context;
let page;
try {
  await step('launch Chromium', async () => {
    browser = await launch({ viewport: { width: 1400, height: 900 }, timeout: STEP_TIMEOUT_MS });
    context = browser.context;
    // Every request, from the page and its workers: Quill's origin goes through, any other is
    // aborted and counted.
    await context.route('**/*', (route) => {
      const request = route.request();
      if (isQuill(request.url())) return route.continue();
      countBlocked(request);
      return route.abort('blockedbyclient');
    });
    // And counted as soon as it is made, should the route not see it.
    context.on('request', (request) => {
      if (!isQuill(request.url())) countBlocked(request);
    });
    context.on('response', (response) => {
      if (isQuill(response.url()) && response.status() >= 400) {
        problem(`HTTP ${response.status()} for ${response.request().method()} ${response.url()}`);
      }
    });
    context.on('requestfailed', (request) => {
      if (isQuill(request.url())) problem(`request failed: ${request.url()}: ${request.failure()?.errorText}`);
    });
    // CSP violations as the page sees them, reported as console errors. Init scripts come in
    // through the DevTools protocol, so the page's policy does not stop this one.
    await context.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (event) => {
        console.error(
          `Content Security Policy violation: ${event.violatedDirective} blocked ${event.blockedURI || '(inline)'}` +
            ` at ${event.sourceFile}:${event.lineNumber} ${event.sample || ''}`,
        );
      });
    });
    page = context.pages()[0] ?? (await context.newPage());
    const onConsole = (where) => (message) => {
      const text = message.text();
      if (message.type() === 'error') problem(`${where}console error: ${short(text)}`);
      else if (mentionsCsp(text)) problem(`${where}console ${message.type()} about the CSP: ${short(text)}`);
    };
    page.on('console', onConsole(''));
    page.on('pageerror', (error) => problem(`page error: ${short(String(error?.stack || error), 500)}`));
    page.on('worker', (worker) => worker.on('console', onConsole(`worker ${worker.url()}: `)));
    // WebSockets are no requests to the route above: each is recorded with its frames, and one
    // to another origin counts as such a request.
    page.on('websocket', (socket) => {
      const entry = { url: socket.url(), sent: [], received: [], closed: false };
      sockets.push(entry);
      if (!URL.canParse(entry.url) || new URL(entry.url).origin !== wsOrigin) {
        blocked.push(`WebSocket ${short(entry.url, 200)} (during: ${currentStep})`);
      }
      socket.on('framesent', ({ payload }) => entry.sent.push(String(payload)));
      socket.on('framereceived', ({ payload }) => entry.received.push(String(payload)));
      socket.on('socketerror', (error) => problem(`WebSocket error on ${entry.url}: ${error}`));
      socket.on('close', () => {
        entry.closed = true;
      });
    });
    return executable;
  });

  await step(`open ${pageUrl}`, async () => {
    // The schema is fetched by introspection (a POST) once the page starts.
    const introspection = page.waitForResponse(
      (response) => response.url() === new URL('/graphql', base).href && response.request().method() === 'POST',
    );
    const response = await page.goto(pageUrl, { waitUntil: 'load' });
    if (!response) throw new Error('no response');
    if (response.status() !== 200) throw new Error(`answered ${response.status()}`);
    const type = response.headers()['content-type'] || '';
    if (!type.startsWith('text/html')) throw new Error(`answered ${type}, not text/html`);
    const csp = response.headers()['content-security-policy'] || '';
    if (!/default-src 'self'/.test(csp)) throw new Error(`no same-origin Content-Security-Policy (got "${csp}")`);
    const answer = await introspection;
    if (answer.status() !== 200) throw new Error(`the schema introspection was answered ${answer.status()}`);
    const body = await answer.json();
    if (!body?.data?.__schema) throw new Error(`the schema introspection returned no schema: ${short(JSON.stringify(body))}`);
    return `"${await page.title()}", schema loaded`;
  });

  const editorText = async (scope) =>
    (await page.locator(`${scope} .view-lines`).first().innerText()).replace(/\u00a0/g, ' ');
  const oneLine = (text) => text.replace(/\s+/g, ' ').trim();
  // The result pane wraps long lines, within words too: compare its text without whitespace.
  const shows = (text, value) => text.replace(/\s+/g, '').includes(JSON.stringify(value).replace(/\s+/g, ''));
  // Replaces the text of the editor in `scope`. Typed as text input, not key by key: key by
  // key, Monaco closes brackets itself and its completion list may take a keystroke.
  const replaceText = async (scope, text, what) => {
    await page.locator(`${scope} .monaco-editor`).first().click();
    await page.keyboard.press('ControlOrMeta+A');
    await page.keyboard.press('Delete');
    await page.keyboard.insertText(text);
    await page.keyboard.press('Escape'); // a completion list, if one opened
    let seen = '';
    for (let i = 0; i < 20; i++) {
      seen = await editorText(scope);
      if (oneLine(seen) === text) return;
      await page.waitForTimeout(100);
    }
    throw new Error(`the ${what} holds ${JSON.stringify(seen)}, not the typed text`);
  };
  const resultText = async () => (await page.locator('.graphiql-response').innerText()).replace(/\u00a0/g, ' ');
  // The result pane's text once `matches` it, or null after `ms`.
  const waitForResult = async (matches, ms) => {
    const until = Date.now() + ms;
    for (;;) {
      const text = await resultText();
      if (matches(text)) return text;
      if (Date.now() >= until) return null;
      await page.waitForTimeout(100);
    }
  };
  const runButton = (name) => page.getByRole('button', { name });

  await step('the query editor renders', async () => {
    await page.locator('.graphiql-container').waitFor({ state: 'visible' });
    await page.locator('.graphiql-query-editor .monaco-editor .view-lines').first().waitFor({ state: 'visible' });
    await page.getByRole('button', { name: /execute query/i }).waitFor({ state: 'visible' });
    return 'Monaco query editor and the run button are visible';
  });

  await step(`type ${QUERY}`, async () => {
    await replaceText('.graphiql-query-editor', QUERY, 'query editor');
    // GraphiQL copies the editor into its tab state after a 100 ms debounce, and history
    // records the tab state when a run starts: running sooner would record the old text.
    await page.waitForTimeout(500);
    return 'the editor holds the query';
  });

  await step('run it (the run button) and read the result', async () => {
    await runButton(/execute query/i).click();
    const text = await waitForResult((t) => EXPECTED_RESULT.test(t), 10_000);
    if (text === null) {
      throw new Error(`the result panel does not match ${EXPECTED_RESULT}: ${JSON.stringify(short(await resultText()))}`);
    }
    if (/"errors"/.test(text)) throw new Error(`the result has errors: ${JSON.stringify(short(text))}`);
    return JSON.stringify(oneLine(text));
  });

  await step('docs explorer: Query → User shows its fields', async () => {
    await page.getByRole('button', { name: /show documentation explorer/i }).click();
    const explorer = page.locator('.graphiql-doc-explorer');
    await explorer.waitFor({ state: 'visible' });
    const typeLink = (name) =>
      explorer.locator('a.graphiql-doc-explorer-type-name', { hasText: new RegExp(`^${name}$`) }).first();
    await typeLink('Query').click();
    await explorer.locator('.graphiql-doc-explorer-title', { hasText: /^Query$/ }).waitFor({ state: 'visible' });
    await typeLink('User').click();
    await explorer.locator('.graphiql-doc-explorer-title', { hasText: /^User$/ }).waitFor({ state: 'visible' });
    const content = explorer.locator('.graphiql-doc-explorer-content');
    for (const field of ['email', 'posts']) {
      await content
        .locator('.graphiql-doc-explorer-field-name', { hasText: new RegExp(`^${field}$`) })
        .first()
        .waitFor({ state: 'visible' });
    }
    return 'User: email, posts';
  });

  await step('history lists the query', async () => {
    await page.getByRole('button', { name: /show history/i }).click();
    const history = page.locator('.graphiql-history');
    await history.waitFor({ state: 'visible' });
    await history.getByText(QUERY, { exact: true }).first().waitFor({ state: 'visible' });
    return `"${QUERY}"`;
  });

  // --- a subscription, over the page's WebSocket to /graphql (graphql-transport-ws).
  // The protocol's messages of one type that a socket sent or received, parsed.
  const messages = (frames, type) =>
    frames.flatMap((frame) => {
      try {
        const message = JSON.parse(frame);
        return message?.type === type ? [message] : [];
      } catch {
        return [];
      }
    });
  // The socket opened after the first `before` ones, once `ready` holds for it (at most `ms`).
  const socketAfter = async (before, ready, ms) => {
    const until = Date.now() + ms;
    while (!(sockets[before] && ready(sockets[before])) && Date.now() < until) await page.waitForTimeout(50);
    const socket = sockets[before];
    if (!socket) throw new Error('the page opened no WebSocket');
    if (!ready(socket)) {
      const frames = `sent ${JSON.stringify(socket.sent)}, received ${JSON.stringify(socket.received)}`;
      throw new Error(`the WebSocket did not get that far: ${short(frames, 500)}`);
    }
    if (socket.url !== `${wsOrigin}/graphql`) throw new Error(`the WebSocket went to ${socket.url}, not ${wsOrigin}/graphql`);
    return socket;
  };
  // The headers editor, behind its tab under the query editor (the variables editor is hidden).
  const typeHeaders = async (headers) => {
    await page.locator('.graphiql-editor-tools button[data-name="headers"]').click();
    await replaceText('.graphiql-editor-tool .graphiql-editor:not(.hidden)', headers, 'headers editor');
  };
  // The connection_init payload's `authorization`, in any case (as Quill reads it).
  const initAuthorization = (socket) => {
    const payload = messages(socket.sent, 'connection_init')[0]?.payload ?? {};
    return Object.entries(payload).find(([key]) => key.toLowerCase() === 'authorization')?.[1];
  };

  await step(`type ${SUBSCRIPTION}`, async () => {
    await replaceText('.graphiql-query-editor', SUBSCRIPTION, 'query editor');
    await page.waitForTimeout(500); // GraphiQL reads which operation it is after a debounce
    return 'the editor holds the subscription';
  });

  await step('run it with a bad token in the headers editor: refused at once (4403)', async () => {
    await typeHeaders('{"Authorization": "Bearer not-a-token"}');
    const before = sockets.length;
    await runButton(/execute query/i).click();
    // No retries in the playground: the refusal shows at once, and the run is over.
    const text = await waitForResult((t) => /\b4403\b/.test(t), 5_000);
    if (text === null) throw new Error(`the result pane shows no 4403: ${JSON.stringify(short(await resultText()))}`);
    const socket = await socketAfter(before, (s) => s.closed, 5_000);
    if (initAuthorization(socket) !== 'Bearer not-a-token') {
      throw new Error(`connection_init carried ${JSON.stringify(socket.sent[0])}, not the headers editor's token`);
    }
    await runButton(/execute query/i).waitFor({ state: 'visible' });
    const message = /"message":\s*"([^"]*)"/.exec(oneLine(text))?.[1] ?? oneLine(text);
    return `${socket.url}, connection_init with the typed Authorization; the result pane: ${JSON.stringify(short(message, 120))}`;
  });

  await step("run it with the admin's token in the headers editor: subscribed", async () => {
    await typeHeaders(`{"Authorization": "Bearer ${adminToken}"}`);
    const before = sockets.length;
    await runButton(/execute query/i).click();
    const socket = await socketAfter(
      before,
      (s) => messages(s.received, 'connection_ack').length > 0 && messages(s.sent, 'subscribe').length > 0,
      10_000,
    );
    if (initAuthorization(socket) !== `Bearer ${adminToken}`) {
      throw new Error("connection_init did not carry the headers editor's token");
    }
    const query = messages(socket.sent, 'subscribe')[0].payload?.query ?? '';
    if (oneLine(query) !== SUBSCRIPTION) throw new Error(`subscribed to ${JSON.stringify(query)}`);
    await runButton(/stop query/i).waitFor({ state: 'visible' });
    return 'a new socket, connection_init with the new token, acknowledged, subscribe sent; the run button stops it';
  });

  await step('createPost over HTTP (from here): its event shows in the result pane', async () => {
    const email = `playground-${randomUUID()}@example.com`;
    const { createUser } = await postAsAdmin(
      'mutation ($input: CreateUserInput!) { createUser(input: $input) { id } }',
      { input: { email, name: 'Playground' } },
    );
    // A subscribe is not acknowledged in the protocol, so the server may not hold it yet when
    // the first post commits: a missed event is followed by another post, at most 3.
    for (let attempt = 1; attempt <= 3; attempt++) {
      const title = `Live in the playground ${randomUUID().slice(0, 8)}`;
      await postAsAdmin('mutation ($input: CreatePostInput!) { createPost(input: $input) { id } }', {
        input: { authorId: createUser.id, title },
      });
      const text = await waitForResult((t) => shows(t, title), 3_000);
      if (text === null) continue;
      if (/"errors"/.test(text)) throw new Error(`the event has errors: ${JSON.stringify(short(text))}`);
      if (!shows(text, email)) {
        throw new Error(`the event shows no author email (so not as the admin): ${JSON.stringify(short(text))}`);
      }
      return `post ${attempt} of 3: ${JSON.stringify(oneLine(text))}`;
    }
    throw new Error(`no event in the result pane after 3 posts: ${JSON.stringify(short(await resultText()))}`);
  });

  await step('stop it (the run button): complete sent, socket closed', async () => {
    const socket = sockets.at(-1);
    await runButton(/stop query/i).click();
    await runButton(/execute query/i).waitFor({ state: 'visible' });
    const until = Date.now() + 5_000;
    while (!socket.closed && Date.now() < until) await page.waitForTimeout(50);
    if (!messages(socket.sent, 'complete').length) throw new Error('no complete was sent');
    if (!socket.closed) throw new Error('the socket is still open');
    return `${sockets.length} WebSockets in all, each to ${wsOrigin}/graphql`;
  });

  await step('screenshot', async () => {
    await page.screenshot({ path: screenshot, fullPage: true });
    return screenshot;
  });
  say(`screenshot: ${screenshot}`);
} catch (error) {
  fail(error.message);
  if (page && !page.isClosed()) {
    // What the page looked like when it failed.
    await page
      .screenshot({ path: screenshot, fullPage: true, timeout: 5_000 })
      .then(() => say(`screenshot of the failure: ${screenshot}`))
      .catch(() => {});
  }
} finally {
  for (const request of blocked) console.error(`playground: request to another origin (aborted): ${request}`);
  for (const what of problems) console.error(`playground: ${what}`);
  if (blocked.length) fail(`${blocked.length} request(s) to an origin other than ${origin}`);
  if (problems.length) fail(`${problems.length} console error(s), page error(s) or CSP violation(s)`);
  await browser?.close();
}
if (process.exitCode) process.exit(process.exitCode);
say(
  `all checks passed; ${blocked.length} requests or WebSockets to other origins, no console errors, page errors or CSP violations`,
);
