// Node.js reference server for the Quill benchmark: Apollo Server 5, node-postgres,
// DataLoader and an ioredis cache-aside for users, and subscriptions the way the Apollo
// docs add them: graphql-ws (`useServer` on a `ws` WebSocketServer) on the same HTTP
// server at /graphql, fed by graphql-redis-subscriptions, so that instances sharing a
// Redis fan out to each other. Written the way a typical Node.js team would write it.
//
//   PORT=4010 DATABASE_URL=postgres://... REDIS_URL=redis://... NODE_ENV=production node server.js
//
// REDIS_URL is optional: without it users are read from PostgreSQL every time, and
// subscriptions only see this instance's writes (graphql-subscriptions' in-memory PubSub).
// EVENTS_PREFIX names the Redis channels of the events (default `node:v1:events:`).

import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { parse as urlParse } from 'node:url';

import { ApolloServer, HeaderMap } from '@apollo/server';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import { unwrapResolverError } from '@apollo/server/errors';
import { makeExecutableSchema } from '@graphql-tools/schema';
import bodyParser from 'body-parser';
import { parse as parseContentType } from 'content-type';
import cors from 'cors';
import DataLoader from 'dataloader';
import finalhandler from 'finalhandler';
import { GraphQLError } from 'graphql';
import { RedisPubSub } from 'graphql-redis-subscriptions';
import { PubSub } from 'graphql-subscriptions';
import { useServer } from 'graphql-ws/use/ws';
import { Redis } from 'ioredis';
import pg from 'pg';
import { WebSocketServer } from 'ws';

// ---------------------------------------------------------------------------
// Configuration

const PORT = Number.parseInt(process.env.PORT ?? '4000', 10);
const DATABASE_URL = process.env.DATABASE_URL;
const REDIS_URL = process.env.REDIS_URL;
const CACHE_TTL_SECONDS = 3600;
const CACHE_PREFIX = 'node:v1:user:';
const EVENTS_PREFIX = process.env.EVENTS_PREFIX || 'node:v1:events:';
const POST_CREATED = `${EVENTS_PREFIX}POST_CREATED`;
// Bound on every Redis command: past it the request is served from the database.
const REDIS_COMMAND_TIMEOUT_MS = Number.parseInt(process.env.REDIS_COMMAND_TIMEOUT_MS ?? '1000', 10);

const DEFAULT_PAGE_SIZE = 20;
const MAX_PAGE_SIZE = 100;

if (!DATABASE_URL) {
  console.error('DATABASE_URL is required');
  process.exit(1);
}
if (!Number.isInteger(PORT) || PORT < 0 || PORT > 65535) {
  console.error(`PORT must be a port number, got ${process.env.PORT}`);
  process.exit(1);
}

// ---------------------------------------------------------------------------
// PostgreSQL

// Timestamps stay PostgreSQL's text until a resolver asks for one: a Date for every post
// row would tax every query that lists posts, asked for `createdAt` or not.
pg.types.setTypeParser(pg.types.builtins.TIMESTAMPTZ, (text) => text);

const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 20 });
pool.on('error', (err) => {
  // An idle client lost its connection; the pool replaces it.
  console.error('postgres pool error:', err.message);
});

// ---------------------------------------------------------------------------
// Redis (cache-aside for users; any Redis failure falls back to the database)

let redis = null;
let lastRedisWarning = 0;
function warnRedis(err) {
  const now = Date.now();
  if (now - lastRedisWarning > 10_000) {
    lastRedisWarning = now;
    console.warn('redis unavailable, using the database:', err?.message ?? err);
  }
}

if (REDIS_URL) {
  redis = new Redis(REDIS_URL, {
    // Fail fast instead of queueing commands while Redis is down.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: REDIS_COMMAND_TIMEOUT_MS,
  });
  redis.on('error', warnRedis);
}

const userKey = (id) => `${CACHE_PREFIX}${id}`;

// ---------------------------------------------------------------------------
// Events: a publisher and a subscriber connection of their own (a connection in
// subscriber mode can do nothing else), every instance subscribed to the same channels.

function createPubSub() {
  if (!REDIS_URL) return new PubSub();
  const options = { retryStrategy: (times) => Math.min(times * 50, 2000) };
  const publisher = new Redis(REDIS_URL, options);
  const subscriber = new Redis(REDIS_URL, options);
  publisher.on('error', (err) => console.error('redis publisher:', err.message));
  subscriber.on('error', (err) => console.error('redis subscriber:', err.message));
  return new RedisPubSub({ publisher, subscriber });
}

const pubsub = createPubSub();

async function cacheGetUsers(ids) {
  const found = new Map();
  if (!redis || ids.length === 0) return found;
  try {
    const values = await redis.mget(ids.map(userKey));
    values.forEach((value, i) => {
      if (value == null) return;
      try {
        found.set(ids[i], JSON.parse(value));
      } catch {
        // An unreadable entry is a miss; the write-back replaces it.
      }
    });
  } catch (err) {
    warnRedis(err);
  }
  return found;
}

async function cachePutUsers(users) {
  if (!redis || users.length === 0) return;
  try {
    const pipeline = redis.pipeline();
    for (const user of users) {
      pipeline.set(userKey(user.id), JSON.stringify(user), 'EX', CACHE_TTL_SECONDS);
    }
    await pipeline.exec();
  } catch (err) {
    warnRedis(err);
  }
}

// ---------------------------------------------------------------------------
// Helpers

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function parseUuid(value) {
  return typeof value === 'string' && UUID_RE.test(value) ? value.toLowerCase() : null;
}

function badInput(message) {
  return new GraphQLError(message, { extensions: { code: 'BAD_USER_INPUT' } });
}

function pageSize(first, argument = 'first') {
  if (first == null) return DEFAULT_PAGE_SIZE;
  if (first < 1 || first > MAX_PAGE_SIZE) {
    throw badInput(`\`${argument}\` must be between 1 and ${MAX_PAGE_SIZE}, got ${first}`);
  }
  return first;
}

const encodeCursor = (id) => Buffer.from(id, 'utf8').toString('base64');

function decodeCursor(cursor) {
  const id = cursor.length <= 100 ? parseUuid(Buffer.from(cursor, 'base64').toString('utf8')) : null;
  if (!id) throw badInput('invalid cursor');
  return id;
}

function toUser(row) {
  return { id: row.id, email: row.email, name: row.name };
}

function toPost(row) {
  return {
    id: row.id,
    title: row.title,
    content: row.content,
    authorId: row.author_id,
    createdAt: row.created_at,
  };
}

// ---------------------------------------------------------------------------
// DataLoaders (new ones for every request)

async function batchUsers(ids) {
  const cached = await cacheGetUsers(ids);
  const misses = ids.filter((id) => !cached.has(id));
  if (misses.length > 0) {
    const { rows } = await pool.query(
      'SELECT id, email, name FROM users WHERE id = ANY($1::uuid[])',
      [misses],
    );
    const loaded = rows.map(toUser);
    for (const user of loaded) cached.set(user.id, user);
    await cachePutUsers(loaded);
  }
  return ids.map((id) => cached.get(id) ?? null);
}

async function batchPostCounts(authorIds) {
  const { rows } = await pool.query(
    'SELECT author_id, count(*)::int AS n FROM posts WHERE author_id = ANY($1::uuid[]) GROUP BY author_id',
    [authorIds],
  );
  const byAuthor = new Map(rows.map((row) => [row.author_id, row.n]));
  return authorIds.map((id) => byAuthor.get(id) ?? 0);
}

async function batchProfiles(userIds) {
  const { rows } = await pool.query(
    'SELECT user_id, bio FROM profiles WHERE user_id = ANY($1::uuid[])',
    [userIds],
  );
  const byUser = new Map(rows.map((row) => [row.user_id, { bio: row.bio }]));
  return userIds.map((id) => byUser.get(id) ?? null);
}

// The newest `first` posts of each author in the batch, in one statement.
function postsByAuthorBatch(first) {
  return async (authorIds) => {
    const { rows } = await pool.query(
      `SELECT id, title, content, author_id, created_at
         FROM (SELECT id, title, content, author_id, created_at,
                      ROW_NUMBER() OVER (PARTITION BY author_id ORDER BY created_at DESC, id DESC) AS rn
                 FROM posts
                WHERE author_id = ANY($1::uuid[])) ranked
        WHERE rn <= $2
        ORDER BY author_id, rn`,
      [authorIds, first],
    );
    const byAuthor = new Map(authorIds.map((id) => [id, []]));
    for (const row of rows) byAuthor.get(row.author_id)?.push(toPost(row));
    return authorIds.map((id) => byAuthor.get(id));
  };
}

function createLoaders() {
  const postsByFirst = new Map();
  return {
    user: new DataLoader(batchUsers),
    profile: new DataLoader(batchProfiles),
    postCount: new DataLoader(batchPostCounts),
    // One loader per page size, so that a batch shares one LIMIT.
    postsByAuthor(first) {
      let loader = postsByFirst.get(first);
      if (!loader) {
        loader = new DataLoader(postsByAuthorBatch(first));
        postsByFirst.set(first, loader);
      }
      return loader;
    },
  };
}

// ---------------------------------------------------------------------------
// Schema

const typeDefs = `#graphql
  type Query {
    user(id: ID!): User
    users(first: Int, after: String): UserConnection!
  }

  type Mutation {
    createPost(input: CreatePostInput!): Post!
  }

  type Subscription {
    postCreated: Post!
  }

  input CreatePostInput {
    authorId: ID!
    title: String!
    content: String
  }

  type User {
    id: ID!
    email: String!
    name: String
    profile: Profile
    posts(first: Int): PostConnection!
  }

  type Profile {
    bio: String
  }

  type Post {
    id: ID!
    title: String!
    content: String
    createdAt: String!
    author: User!
  }

  type UserConnection {
    nodes: [User!]!
    pageInfo: PageInfo!
    totalCount: Int!
  }

  type PostConnection {
    nodes: [Post!]!
    totalCount: Int!
  }

  type PageInfo {
    endCursor: String
    hasNextPage: Boolean!
  }
`;

const resolvers = {
  Query: {
    user(_parent, { id }, { loaders }) {
      const uuid = parseUuid(id);
      return uuid ? loaders.user.load(uuid) : null;
    },

    async users(_parent, { first, after }) {
      const limit = pageSize(first);
      const afterId = after == null ? null : decodeCursor(after);
      const { rows } = afterId
        ? await pool.query(
            'SELECT id, email, name FROM users WHERE id > $1 ORDER BY id LIMIT $2',
            [afterId, limit + 1],
          )
        : await pool.query('SELECT id, email, name FROM users ORDER BY id LIMIT $1', [limit + 1]);
      const hasNextPage = rows.length > limit;
      const nodes = rows.slice(0, limit).map(toUser);
      return {
        nodes,
        pageInfo: {
          endCursor: nodes.length > 0 ? encodeCursor(nodes[nodes.length - 1].id) : null,
          hasNextPage,
        },
      };
    },
  },

  Mutation: {
    async createPost(_parent, { input }) {
      const authorId = parseUuid(input.authorId);
      if (!authorId) throw badInput('`authorId` is not a valid id');
      let post;
      try {
        const { rows } = await pool.query(
          `INSERT INTO posts (id, title, content, author_id)
           VALUES ($1, $2, $3, $4)
           RETURNING id, title, content, author_id, created_at`,
          [randomUUID(), input.title, input.content ?? null, authorId],
        );
        post = toPost(rows[0]);
      } catch (err) {
        if (err.code === '23503') {
          throw new GraphQLError('no such author', { extensions: { code: 'NOT_FOUND' } });
        }
        throw err;
      }
      // Committed (one statement, autocommit): tell every instance's subscribers. A lost
      // event does not fail the write.
      try {
        await pubsub.publish(POST_CREATED, { postCreated: post });
      } catch (err) {
        console.error('cannot publish postCreated:', err.message);
      }
      return post;
    },
  },

  Subscription: {
    postCreated: {
      subscribe: () => pubsub.asyncIterableIterator(POST_CREATED),
    },
  },

  User: {
    profile(user, _args, { loaders }) {
      return loaders.profile.load(user.id);
    },
    async posts(user, { first }, { loaders }) {
      const nodes = await loaders.postsByAuthor(pageSize(first)).load(user.id);
      return { authorId: user.id, nodes };
    },
  },

  // Counted only when asked for.
  UserConnection: {
    async totalCount() {
      const { rows } = await pool.query('SELECT count(*)::int AS n FROM users');
      return rows[0].n;
    },
  },

  PostConnection: {
    totalCount(connection, _args, { loaders }) {
      return loaders.postCount.load(connection.authorId);
    },
  },

  Post: {
    createdAt(post) {
      return new Date(post.createdAt).toISOString();
    },
    async author(post, _args, { loaders }) {
      const author = await loaders.user.load(post.authorId);
      if (!author) throw new Error(`post ${post.id} has no author`);
      return author;
    },
  },
};

// ---------------------------------------------------------------------------
// Server

const schema = makeExecutableSchema({ typeDefs, resolvers });

// What `startStandaloneServer` (@apollo/server/standalone) does for HTTP, line for line:
// it keeps its http.Server to itself, and a WebSocket server has to share one. The
// queries take exactly the path they took under `startStandaloneServer`.
const validCharset = /^utf-(8|((16|32)(le|be)?))$/i;
const corsHandler = cors();
const jsonHandler = bodyParser.json({
  verify(req) {
    const charset = parseContentType(req).parameters.charset || 'utf-8';
    if (!charset.match(validCharset)) {
      throw Object.assign(new Error(`unsupported charset "${charset.toUpperCase()}"`), {
        status: 415,
        name: 'UnsupportedMediaTypeError',
        charset,
        type: 'charset.unsupported',
      });
    }
  },
  limit: '50mb',
});

const httpServer = http.createServer((req, res) => {
  const errorHandler = finalhandler(req, res, {
    onerror(err) {
      console.error(err.stack || err.toString());
    },
  });
  corsHandler(req, res, (err) => {
    if (err) {
      errorHandler(err);
      return;
    }
    jsonHandler(req, res, (err) => {
      if (err) {
        errorHandler(err);
        return;
      }
      const headers = new HeaderMap();
      for (const [key, value] of Object.entries(req.headers)) {
        if (value !== undefined) {
          headers.set(key, Array.isArray(value) ? value.join(', ') : value);
        }
      }
      const httpGraphQLRequest = {
        method: req.method.toUpperCase(),
        headers,
        search: urlParse(req.url).search ?? '',
        body: 'body' in req ? req.body : undefined,
      };
      server
        .executeHTTPGraphQLRequest({ httpGraphQLRequest, context: async () => ({ loaders: createLoaders() }) })
        .then(async (httpGraphQLResponse) => {
          for (const [key, value] of httpGraphQLResponse.headers) {
            res.setHeader(key, value);
          }
          res.statusCode = httpGraphQLResponse.status || 200;
          if (httpGraphQLResponse.body.kind === 'complete') {
            res.end(httpGraphQLResponse.body.string);
            return;
          }
          for await (const chunk of httpGraphQLResponse.body.asyncIterator) {
            res.write(chunk);
          }
          res.end();
        })
        .catch((err) => {
          errorHandler(err);
        });
    });
  });
});

// Subscriptions (graphql-transport-ws) on the same server and path. Each subscription
// gets its own loaders, as each HTTP request does: its events' authors are read through
// the same DataLoader and Redis cache-aside as the queries'.
const wsServer = new WebSocketServer({ server: httpServer, path: '/graphql' });
const wsCleanup = useServer({ schema, context: async () => ({ loaders: createLoaders() }) }, wsServer);

const server = new ApolloServer({
  schema,
  introspection: false,
  includeStacktraceInErrorResponses: false,
  plugins: [
    ApolloServerPluginLandingPageDisabled(),
    ApolloServerPluginDrainHttpServer({ httpServer }),
    {
      async serverWillStart() {
        return {
          async drainServer() {
            await wsCleanup.dispose();
          },
        };
      },
    },
  ],
  formatError(formatted, error) {
    // Errors we did not raise on purpose (database, bugs) are logged, not shown.
    if (formatted.extensions?.code === 'INTERNAL_SERVER_ERROR') {
      console.error('internal error:', unwrapResolverError(error));
      return {
        message: 'Internal server error',
        locations: formatted.locations,
        path: formatted.path,
        extensions: { code: 'INTERNAL_SERVER_ERROR' },
      };
    }
    return formatted;
  },
});

await server.start();
await new Promise((resolve) => httpServer.listen({ host: '127.0.0.1', port: PORT }, resolve));

console.log(`node-apollo listening at http://127.0.0.1:${httpServer.address().port}/ (subscriptions: ws on /graphql)`);
