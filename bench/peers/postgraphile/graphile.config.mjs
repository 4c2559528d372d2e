// PostGraphile 5 configuration for the benchmark peer: the Amber preset over
// the `public` schema of the database in DATABASE_URL, in production shape
// (no GraphiQL, no watch mode, no explain, no schema export, no websockets).
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { makePgService } from "postgraphile/adaptors/pg";

const connectionString = process.env.DATABASE_URL;
if (!connectionString) {
  throw new Error("DATABASE_URL must be set (postgres://user@host:port/db)");
}

const port = Number(process.env.PORT ?? 5678);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  throw new Error(`PORT must be a TCP port number, got ${process.env.PORT}`);
}

/** @type {GraphileConfig.Preset} */
const preset = {
  extends: [PostGraphileAmberPreset],
  pgServices: [
    makePgService({
      connectionString,
      schemas: ["public"],
      // At most 20 connections, like Quill's default DB_MAX_CONNECTIONS.
      poolConfig: { max: 20 },
      // No subscriptions: don't set up a LISTEN/NOTIFY client.
      pubsub: false,
    }),
  ],
  grafserv: {
    host: "127.0.0.1",
    port,
    graphqlPath: "/graphql",
    graphqlOverGET: false,
    graphiql: false,
    graphiqlOnGraphQLGET: false,
    watch: false,
    websockets: false,
  },
  grafast: {
    explain: false,
  },
  // No schema.exportSchemaSDLPath / exportSchemaIntrospectionResultPath:
  // the schema is built in memory at start and never written out.
};

export default preset;
