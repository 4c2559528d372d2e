// Quill's GraphiQL playground in a real browser: Debian's Chromium, driven by playwright-core,
// with every request to an origin other than Quill's aborted. Opens ${QUILL_URL}/graphql, types
// and runs a query, reads the result, walks the docs explorer to the User type, looks at the
// history, and saves a screenshot. Fails (exit 1) on a failed check, on any request to another
// origin, on any console error, page error or Content Security Policy violation.
// Run by `run` beside this file, which starts the server; see README.md.
//
// Settings (environment):
//   QUILL_URL   the running server, e.g. http://127.0.0.1:8000 (required)
//   CHROMIUM    the Chromium executable (default: /usr/bin/chromium)
//   SCREENSHOT  where to save the screenshot (default: playground.png beside this file)

import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { executable, launch } from './chromium.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));
const STEP_TIMEOUT_MS = 15_000;
// On a fresh database there are no users; the query is what a newcomer would try first.
const QUERY = '{ users(first: 1) { totalCount } }';
const EXPECTED_RESULT = /"totalCount":\s*0\b/;

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
const screenshot = resolve(process.env.SCREENSHOT || join(here, 'playground.png'));

// --- what the browser did that it must not: each entry is a reason to fail.
const blocked = []; // requests to another origin (aborted)
const problems = []; // console errors, page errors, CSP violations, failed same-origin requests
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

  const queryEditor = page.locator('.graphiql-query-editor .monaco-editor').first();
  const editorText = async (scope) =>
    (await page.locator(`${scope} .view-lines`).first().innerText()).replace(/\u00a0/g, ' ');

  await step('the query editor renders', async () => {
    await page.locator('.graphiql-container').waitFor({ state: 'visible' });
    await page.locator('.graphiql-query-editor .monaco-editor .view-lines').first().waitFor({ state: 'visible' });
    await page.getByRole('button', { name: /execute query/i }).waitFor({ state: 'visible' });
    return 'Monaco query editor and the run button are visible';
  });

  await step(`type ${QUERY}`, async () => {
    await queryEditor.click();
    await page.keyboard.press('ControlOrMeta+A');
    await page.keyboard.press('Delete');
    // Typed as text input, not key by key: key by key, Monaco closes brackets itself and its
    // completion list may take a keystroke.
    await page.keyboard.insertText(QUERY);
    await page.keyboard.press('Escape'); // a completion list, if one opened
    let text = '';
    for (let i = 0; i < 20; i++) {
      text = await editorText('.graphiql-query-editor');
      if (text.replace(/\s+/g, ' ').trim() === QUERY) {
        // GraphiQL copies the editor into its tab state after a 100 ms debounce, and history
        // records the tab state when a run starts: running sooner would record the old text.
        await page.waitForTimeout(500);
        return 'the editor holds the query';
      }
      await page.waitForTimeout(100);
    }
    throw new Error(`the query editor holds ${JSON.stringify(text)}, not the typed query`);
  });

  await step('run it (the run button) and read the result', async () => {
    await page.getByRole('button', { name: /execute query/i }).click();
    const response = page.locator('.graphiql-response');
    let text = '';
    const until = Date.now() + 10_000;
    while (Date.now() < until) {
      text = (await response.innerText()).replace(/\u00a0/g, ' ');
      if (EXPECTED_RESULT.test(text)) break;
      await page.waitForTimeout(100);
    }
    if (!EXPECTED_RESULT.test(text)) {
      throw new Error(`the result panel does not match ${EXPECTED_RESULT}: ${JSON.stringify(short(text))}`);
    }
    if (/"errors"/.test(text)) throw new Error(`the result has errors: ${JSON.stringify(short(text))}`);
    return JSON.stringify(text.replace(/\s+/g, ' ').trim());
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
say(`all checks passed; ${blocked.length} requests to other origins, no console errors, page errors or CSP violations`);
