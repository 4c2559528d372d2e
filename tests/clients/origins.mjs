// Quill called from a page of another origin, in Debian's Chromium (launched as playground.mjs
// launches it): serves a tiny page from a second local HTTP server (its own port, so its own
// origin) whose script POSTs a JSON query to Quill with fetch, or (with ?client=apollo) runs one
// with Apollo Client (origins-page/apollo.js, bundled here by esbuild into one ES module that the
// page server serves), and writes the outcome into the DOM. Against the Quill started with CORS_ALLOWED_ORIGINS=<the page's origin> the call works
// (through the browser's preflight) and the page can read x-request-id; against the Quill
// without the setting, and from another origin (localhost instead of 127.0.0.1) against the
// first, the browser blocks it: fetch rejects, and Apollo's query fails with a network error.
// Prints one `ok:` line per check; exits 1 on a
// failure. Run by `run` beside this file, which starts both servers; see README.md.
//
// Settings (environment):
//   QUILL_URL       a Quill without CORS_ALLOWED_ORIGINS (required)
//   QUILL_CORS_URL  a Quill with CORS_ALLOWED_ORIGINS=http://127.0.0.1:$PAGE_PORT (required)
//   PAGE_PORT       the port to serve the page on (required; the origin Quill allows)
//   CHROMIUM        the Chromium executable (default: /usr/bin/chromium)

import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { executable, launch } from './chromium.mjs';

const STEP_TIMEOUT_MS = 15_000;
const QUERY = '{ users(first: 1) { totalCount } }';

const say = (message) => console.log(`origins: ${message}`);
const die = (message) => {
  console.error(`origins: FAILED: ${message}`);
  process.exit(1);
};
for (const name of ['QUILL_URL', 'QUILL_CORS_URL', 'PAGE_PORT']) {
  if (!process.env[name]) die(`set ${name} (see the top of origins.mjs)`);
}
const plain = new URL('/graphql', process.env.QUILL_URL).href;
const allowing = new URL('/graphql', process.env.QUILL_CORS_URL).href;
const pagePort = Number(process.env.PAGE_PORT);
const pageOrigin = `http://127.0.0.1:${pagePort}`;
const otherOrigin = `http://localhost:${pagePort}`; // same server, another origin
const here = dirname(fileURLToPath(import.meta.url));
const apolloEntry = join(here, 'origins-page', 'apollo.js');
const apolloBundle = join(here, 'origins-page', 'dist', 'apollo.js'); // ignored by git

// The page: calls the Quill named in ?quill= with the client of ?client= (fetch or apollo) and
// reports into #result.
const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>another origin</title></head>
<body><pre id="result">pending</pre>
<script>
  const params = new URL(location.href).searchParams;
  const target = params.get('quill');
  const result = document.getElementById('result');
  if (params.get('client') === 'apollo') {
    import('/apollo.js').catch((error) => {
      result.textContent = 'could not load /apollo.js: ' + error.message;
      result.setAttribute('data-done', '1');
    });
  } else fetch(target, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/graphql-response+json' },
    body: JSON.stringify({ query: ${JSON.stringify(QUERY)} }),
  })
    .then(async (response) => {
      const body = await response.json();
      result.textContent = 'resolved ' + JSON.stringify({ status: response.status, requestId: response.headers.get('x-request-id'), body });
    })
    .catch((error) => { result.textContent = 'rejected ' + error.name + ': ' + error.message; })
    .finally(() => result.setAttribute('data-done', '1'));
</script></body></html>`;

// Apollo Client for the browser: one ES module, bundled afresh on every run.
let apolloScript;
{
  const started = Date.now();
  try {
    await build({
      entryPoints: [apolloEntry],
      outfile: apolloBundle,
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      minify: true,
      define: { 'process.env.NODE_ENV': '"production"' },
      logLevel: 'error',
    });
    apolloScript = readFileSync(apolloBundle);
  } catch (error) {
    die(`bundling ${apolloEntry} with esbuild: ${error.message.split('\n')[0]}`);
  }
  say(`ok: bundled origins-page/apollo.js (@apollo/client) with esbuild into one ES module — ${apolloBundle}, ${(apolloScript.length / 1024).toFixed(0)} KiB (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}

const server = createServer((request, response) => {
  const path = new URL(request.url, pageOrigin).pathname;
  if (path === '/apollo.js') {
    response.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-store' }).end(apolloScript);
    return;
  }
  if (path !== '/') {
    response.writeHead(404).end();
    return;
  }
  response.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(PAGE);
});
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(pagePort, '127.0.0.1', resolve);
});

async function step(name, run) {
  const started = Date.now();
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`did not finish within ${STEP_TIMEOUT_MS / 1000} s`)), STEP_TIMEOUT_MS);
  });
  try {
    const result = await Promise.race([run(), timeout]);
    say(`ok: ${name}${result ? ` — ${result}` : ''} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  } catch (error) {
    throw new Error(`${name}: ${error.message.split('\n')[0]}`);
  } finally {
    clearTimeout(timer);
  }
}

let browser;
let context;
let failed = false;
try {
  await step('launch Chromium', async () => {
    browser = await launch({ timeout: STEP_TIMEOUT_MS });
    context = browser.context;
    return executable;
  });

  // Opens the page at `origin`, pointed at `quill`, calling it with `client` (fetch or apollo);
  // returns what it wrote into #result.
  const call = async (origin, quill, client = 'fetch') => {
    const page = await context.newPage();
    try {
      const response = await page.goto(`${origin}/?client=${client}&quill=${encodeURIComponent(quill)}`);
      if (response?.status() !== 200) throw new Error(`the page answered ${response?.status()}`);
      await page.locator('#result[data-done]').waitFor({ state: 'attached' });
      return await page.locator('#result').innerText();
    } finally {
      await page.close();
    }
  };
  const resolvedWithData = (text) => {
    if (!text.startsWith('resolved ')) throw new Error(`fetch did not resolve: ${text}`);
    const outcome = JSON.parse(text.slice('resolved '.length));
    if (outcome.status !== 200 || outcome.body?.data?.users?.totalCount === undefined || outcome.body.errors) {
      throw new Error(`unexpected answer: ${text}`);
    }
    if (!outcome.requestId) throw new Error(`the page could not read x-request-id: ${text}`);
    return outcome;
  };
  const rejected = (text) => {
    if (!/^rejected TypeError: /.test(text)) throw new Error(`fetch was not blocked: ${text}`);
    return text.slice('rejected '.length);
  };
  // Apollo Client: the data, { users: { totalCount: 0 } } (the cors server's database is fresh).
  const apolloData = (text) => {
    if (!text.startsWith('resolved ')) throw new Error(`Apollo's query failed: ${text}`);
    const outcome = JSON.parse(text.slice('resolved '.length));
    if (outcome.data?.users?.totalCount !== 0 || outcome.error) throw new Error(`unexpected Apollo result: ${text}`);
    return outcome;
  };
  // Apollo Client 4 rejects with the network error itself: fetch's TypeError (not a
  // CombinedGraphQLErrors or a ServerError, which would mean Quill's answer was read).
  const apolloNetworkError = (text) => {
    if (!/^rejected TypeError: /.test(text)) throw new Error(`Apollo's query did not fail with a network error: ${text}`);
    return text.slice('rejected '.length);
  };

  await step(`${pageOrigin} → Quill with CORS_ALLOWED_ORIGINS=${pageOrigin}: the JSON POST works`, async () => {
    const outcome = resolvedWithData(await call(pageOrigin, allowing));
    return `HTTP ${outcome.status}, ${JSON.stringify(outcome.body)}, x-request-id readable (${outcome.requestId})`;
  });
  await step(`${pageOrigin} → Quill with CORS_ALLOWED_ORIGINS=${pageOrigin}: Apollo Client's query works`, async () => {
    return `data ${JSON.stringify(apolloData(await call(pageOrigin, allowing, 'apollo')).data)}`;
  });

  await step(`${pageOrigin} → Quill without CORS_ALLOWED_ORIGINS: the browser blocks it`, async () => {
    return `fetch rejected: ${rejected(await call(pageOrigin, plain))}`;
  });
  await step(`${pageOrigin} → Quill without CORS_ALLOWED_ORIGINS: Apollo Client's query fails`, async () => {
    return `network error: ${apolloNetworkError(await call(pageOrigin, plain, 'apollo'))}`;
  });

  await step(`${otherOrigin} (not allowed) → Quill with CORS_ALLOWED_ORIGINS=${pageOrigin}: the browser blocks it`, async () => {
    return `fetch rejected: ${rejected(await call(otherOrigin, allowing))}`;
  });
  await step(`${otherOrigin} (not allowed) → Quill with CORS_ALLOWED_ORIGINS=${pageOrigin}: Apollo Client's query fails`, async () => {
    return `network error: ${apolloNetworkError(await call(otherOrigin, allowing, 'apollo'))}`;
  });
} catch (error) {
  failed = true;
  console.error(`origins: FAILED: ${error.message}`);
} finally {
  await browser?.close();
  server.close();
  server.closeAllConnections?.();
}
if (failed) process.exit(1);
say('all checks passed');
