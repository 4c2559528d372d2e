// GraphQL client libraries against a running Quill, in Node (no browser): Apollo Client 4
// (relay-style pagination with fetchMore, a mutation updating the normalised cache, an error
// read by its extensions.code, automatic persisted queries), urql (the README's
// `preferGetMethod: false`, and the 400 its default GET gets without it) and graphql-request
// (a JSON-array batch), and bearer tokens as these clients send them (an admin sees emails, an
// anonymous caller sees `email: null` and may not write, a bad token is a 401
// `UNAUTHENTICATED`). Seeds its own data through mutations first, as an admin. Prints one
// `ok:` line per check; exits 1 on the first failure.
// Run by `run` beside this file, which starts the server and mints the token; see README.md.
//
// Settings (environment):
//   QUILL_URL           the running server, e.g. http://127.0.0.1:8000 (required)
//   QUILL_ADMIN_TOKEN   a token with the role `admin` for that server (`api token --role admin`,
//                       required): writes, and reads of `email`, send it; other reads go anonymous

import { createHash, randomUUID } from 'node:crypto';
import { ApolloClient, ApolloLink, CombinedGraphQLErrors, HttpLink, InMemoryCache, ServerError, gql } from '@apollo/client';
import { createPersistedQueryLink } from '@apollo/client/link/persisted-queries';
import { relayStylePagination } from '@apollo/client/utilities';
import { Client as UrqlClient, fetchExchange, gql as urqlGql } from '@urql/core';
import { ClientError, GraphQLClient, gql as requestGql } from 'graphql-request';

const CHECK_TIMEOUT_MS = 15_000;
const POSTS = 5; // seeded for one author; paged two at a time

const say = (message) => console.log(`libraries: ${message}`);
if (!process.env.QUILL_URL) {
  console.error('libraries: FAILED: set QUILL_URL to the running server, e.g. http://127.0.0.1:8000');
  process.exit(1);
}
if (!process.env.QUILL_ADMIN_TOKEN) {
  console.error('libraries: FAILED: set QUILL_ADMIN_TOKEN to an admin token for that server (api token --role admin)');
  process.exit(1);
}
const url = new URL('/graphql', process.env.QUILL_URL).href;
// What a client sends to act as an admin: the seeding, every mutation, and the reads of `email`.
const asAdmin = { authorization: `Bearer ${process.env.QUILL_ADMIN_TOKEN}` };

class CheckFailed extends Error {}
const assert = (ok, message) => {
  if (!ok) throw new CheckFailed(message);
};
const json = (value) => JSON.stringify(value);

async function check(name, run) {
  const started = Date.now();
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`did not finish within ${CHECK_TIMEOUT_MS / 1000} s`)), CHECK_TIMEOUT_MS);
  });
  try {
    const result = await Promise.race([run(), timeout]);
    const took = ((Date.now() - started) / 1000).toFixed(2);
    say(`ok: ${name}${result ? ` — ${result}` : ''} (${took} s)`);
  } catch (error) {
    console.error(`libraries: FAILED: ${name}: ${error?.stack && !(error instanceof CheckFailed) ? error.stack : error.message}`);
    process.exit(1);
  } finally {
    clearTimeout(timer);
  }
}

// A plain JSON POST, for seeding and for the reference answers; `headers` adds to the request's
// (`asAdmin` for the seeding).
async function post(query, variables, headers = {}) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json', ...headers },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  assert(response.status === 200 && !body.errors, `${query.split('\n')[0]}: HTTP ${response.status} ${json(body)}`);
  return body.data;
}

// Every fetch a client makes: its method, headers, parsed body (null for a GET), status and
// parsed response.
function recordingFetch(log) {
  return async (input, init = {}) => {
    const entry = {
      method: (init.method || 'GET').toUpperCase(),
      url: String(input instanceof Request ? input.url : input),
      body: typeof init.body === 'string' ? JSON.parse(init.body) : null,
      headers: Object.fromEntries(new Headers(init.headers || {}).entries()),
    };
    log.push(entry);
    const response = await fetch(input, init);
    entry.status = response.status;
    entry.response = await response.clone().json().catch(() => null);
    return response;
  };
}

const run = randomUUID().slice(0, 8); // distinct emails even against a long-lived server
let author; // { id, email }
let seeded; // post ids, in the order created

await check(`seed: createUser + ${POSTS} createPost (plain fetch, as an admin)`, async () => {
  const { createUser } = await post(
    'mutation ($input: CreateUserInput!) { createUser(input: $input) { id email } }',
    { input: { email: `libraries-${run}@example.com`, name: 'Libraries', profile: { bio: 'Seeded by libraries.mjs.' } } },
    asAdmin,
  );
  author = createUser;
  seeded = [];
  for (let i = 1; i <= POSTS; i++) {
    const { createPost } = await post(
      'mutation ($input: CreatePostInput!) { createPost(input: $input) { id } }',
      { input: { authorId: author.id, title: `Post ${i}`, content: `Body ${i}` } },
      asAdmin,
    );
    seeded.push(createPost.id);
  }
  return `user ${author.id} with ${seeded.length} posts`;
});

// --- Apollo Client 4
const apolloCache = new InMemoryCache({
  typePolicies: { User: { fields: { posts: relayStylePagination() } } },
});
const apolloLog = [];
const apollo = new ApolloClient({
  link: new HttpLink({ uri: url, fetch: recordingFetch(apolloLog) }),
  cache: apolloCache,
});

const USER_POSTS = gql`
  query UserPosts($id: UUID!, $first: Int!, $after: String) {
    user(id: $id) {
      id
      posts(first: $first, after: $after) {
        edges { cursor node { id title createdAt } }
        pageInfo { hasNextPage endCursor }
      }
    }
  }
`;

await check('Apollo Client: relayStylePagination, first: 2 then fetchMore until hasNextPage is false', async () => {
  // The server's own order, in one page, as the reference.
  const reference = (await post('query ($id: UUID!) { user(id: $id) { posts(first: 100) { nodes { id createdAt } } } }', { id: author.id }))
    .user.posts.nodes;
  assert(reference.length === POSTS, `one page holds ${reference.length} posts, not ${POSTS}`);
  assert(
    [...reference.map((p) => p.id)].sort().join() === [...seeded].sort().join(),
    'the reference page does not hold exactly the seeded posts',
  );
  for (let i = 1; i < reference.length; i++) {
    assert(reference[i - 1].createdAt >= reference[i].createdAt, `posts are not newest first: ${json(reference)}`);
  }

  const observable = apollo.watchQuery({ query: USER_POSTS, variables: { id: author.id, first: 2 } });
  const results = [];
  const subscription = observable.subscribe({ next: (result) => results.push(result) });
  try {
    // Wait for the first page (Apollo 4: the observable emits loading, then the data).
    for (let i = 0; i < 100 && !observable.getCurrentResult().data?.user; i++) await new Promise((r) => setTimeout(r, 20));
    const current = observable.getCurrentResult();
    assert(current.data?.user, `no first page: ${json(current)}`);
    const pages = [current.data.user.posts.edges.length];
    let { hasNextPage, endCursor } = current.data.user.posts.pageInfo;
    let fetches = 0;
    while (hasNextPage) {
      assert(++fetches <= POSTS, 'fetchMore did not reach the end');
      const more = await observable.fetchMore({ variables: { after: endCursor } });
      assert(more.data?.user, `fetchMore returned ${json(more)}`);
      pages.push(more.data.user.posts.edges.length);
      ({ hasNextPage, endCursor } = more.data.user.posts.pageInfo);
    }
    // The merged list, as the watching component sees it once the last page is written.
    for (let i = 0; i < 100 && observable.getCurrentResult().data.user.posts.edges.length < POSTS; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const mergedInfo = observable.getCurrentResult().data.user.posts.pageInfo;
    assert(mergedInfo.hasNextPage === false, `the merged pageInfo still has hasNextPage: ${json(mergedInfo)}`);
    const merged = observable.getCurrentResult().data.user.posts.edges.map((edge) => edge.node.id);
    assert(merged.length === new Set(merged).size, `duplicates in the merged list: ${json(merged)}`);
    assert(
      json(merged) === json(reference.map((p) => p.id)),
      `merged ${json(merged)}, the server's order is ${json(reference.map((p) => p.id))}`,
    );
    const posts = apolloLog.filter((entry) => entry.body?.operationName === 'UserPosts');
    assert(posts.length === pages.length, `${posts.length} requests for ${pages.length} pages`);
    return `pages of ${pages.join('+')} = ${merged.length} posts, newest first, no duplicates, ${posts.length} requests`;
  } finally {
    subscription.unsubscribe();
  }
});

await check('Apollo Client: updatePost updates the normalised cache', async () => {
  const id = seeded[0];
  const fragment = gql`fragment PostTitle on Post { id title }`;
  const cacheId = apolloCache.identify({ __typename: 'Post', id });
  const before = apolloCache.readFragment({ id: cacheId, fragment });
  assert(before?.title === 'Post 1', `before the mutation the cache holds ${json(before)}`);
  const title = `Renamed ${run}`;
  const { data } = await apollo.mutate({
    mutation: gql`mutation Rename($id: UUID!, $title: String!) { updatePost(id: $id, input: { title: $title }) { id title } }`,
    variables: { id, title },
    context: { headers: asAdmin }, // per operation: the client's queries stay anonymous
  });
  assert(data?.updatePost?.title === title, `the mutation returned ${json(data)}`);
  const after = apolloCache.readFragment({ id: cacheId, fragment });
  assert(after?.title === title, `after the mutation the cache holds ${json(after)}`);
  const sent = apolloLog.at(-1);
  assert(sent?.body?.operationName === 'Rename' && sent.headers.authorization === asAdmin.authorization, `the mutation went without the token: ${json(sent?.headers)}`);
  // The paged list, read from the cache alone, shows the new title too.
  const cached = apollo.readQuery({ query: USER_POSTS, variables: { id: author.id, first: 2 } });
  const inList = cached?.user?.posts.edges.find((edge) => edge.node.id === id);
  assert(inList?.node.title === title, `the cached list holds ${json(inList)}`);
  return `${cacheId}: "${before.title}" → "${after.title}" (readFragment and the cached list)`;
});

await check('Apollo Client: errors by extensions.code (CombinedGraphQLErrors)', async () => {
  const codes = [];
  try {
    await apollo.query({ query: gql`query BadId { user(id: "not-a-uuid") { id } }`, fetchPolicy: 'network-only' });
    throw new CheckFailed('user(id: "not-a-uuid") did not throw');
  } catch (error) {
    if (error instanceof CheckFailed) throw error;
    assert(CombinedGraphQLErrors.is(error), `not a CombinedGraphQLErrors: ${error?.name}: ${error?.message}`);
    codes.push(error.errors[0]?.extensions?.code);
    assert(codes[0] === 'GRAPHQL_VALIDATION_FAILED', `user(id: "not-a-uuid") gave ${json(error.errors)}`);
  }
  try {
    await apollo.mutate({
      mutation: gql`mutation Gone($id: UUID!) { deletePost(id: $id) }`,
      variables: { id: randomUUID() },
      context: { headers: asAdmin },
    });
    throw new CheckFailed('deletePost of a missing id did not throw');
  } catch (error) {
    if (error instanceof CheckFailed) throw error;
    assert(CombinedGraphQLErrors.is(error), `not a CombinedGraphQLErrors: ${error?.name}: ${error?.message}`);
    codes.push(error.errors[0]?.extensions?.code);
    assert(codes[1] === 'NOT_FOUND', `deletePost of a missing id gave ${json(error.errors)}`);
  }
  return `user(id: "not-a-uuid") → ${codes[0]}, deletePost(<missing>) → ${codes[1]}`;
});

await check('Apollo Client: createPersistedQueryLink({ sha256 }) — miss, retry with the document, then the hash alone', async () => {
  const log = [];
  const sha256 = (text) => createHash('sha256').update(text).digest('hex');
  // It reads `email`: the link sends the admin's token with every request.
  const client = new ApolloClient({
    link: ApolloLink.from([createPersistedQueryLink({ sha256 }), new HttpLink({ uri: url, headers: asAdmin, fetch: recordingFetch(log) })]),
    cache: new InMemoryCache(),
  });
  // A document this server has not seen: the run id is in its operation name.
  const query = gql(`query Persisted_${run.replace(/-/g, '_')}($id: UUID!) { user(id: $id) { id email } }`);
  const first = await client.query({ query, variables: { id: author.id }, fetchPolicy: 'network-only' });
  assert(first.data?.user?.email === author.email, `the first request returned ${json(first)}`);
  assert(log.length === 2, `the first query took ${log.length} requests, not 2 (hash, then hash + document)`);
  const hash = log[0].body?.extensions?.persistedQuery?.sha256Hash;
  assert(hash && !('query' in log[0].body), `the first request was not the hash alone: ${json(log[0].body)}`);
  const miss = log[0].response?.errors?.[0]?.extensions?.code;
  assert(log[0].status === 200 && miss === 'PERSISTED_QUERY_NOT_FOUND', `the hash alone got ${log[0].status} ${json(log[0].response)}`);
  assert(log[1].body?.query && log[1].body.extensions?.persistedQuery?.sha256Hash === hash, 'the retry did not carry the document with its hash');
  const second = await client.query({ query, variables: { id: author.id }, fetchPolicy: 'network-only' });
  assert(second.data?.user?.email === author.email, `the second request returned ${json(second)}`);
  assert(log.length === 3, `the second query took ${log.length - 2} requests, not 1`);
  assert(!('query' in log[2].body) && log[2].body.extensions?.persistedQuery?.sha256Hash === hash, `the second request carried ${json(log[2].body)}`);
  return `requests: [hash → 200 ${miss}, hash + document → data], then [hash alone → data] (${hash.slice(0, 12)}…)`;
});

// --- urql
const USER_EMAIL = 'query UserEmail($id: UUID!) { user(id: $id) { email } }';

await check('urql: preferGetMethod: false (the README\'s setting) — a query POSTs and returns data', async () => {
  const log = [];
  const client = new UrqlClient({
    url,
    exchanges: [fetchExchange],
    preferGetMethod: false,
    fetchOptions: { headers: asAdmin }, // it reads `email`
    fetch: recordingFetch(log),
  });
  const result = await client.query(urqlGql(USER_EMAIL), { id: author.id }).toPromise();
  assert(!result.error, `error: ${result.error?.message}`);
  assert(result.data?.user?.email === author.email, `returned ${json(result.data)}`);
  assert(log.length === 1 && log[0].method === 'POST' && log[0].status === 200, `requests: ${json(log)}`);
  return `POST 200, user.email = ${result.data.user.email}`;
});

await check('urql: its default (GET, no preflight header) is refused with 400', async () => {
  const log = [];
  const client = new UrqlClient({ url, exchanges: [fetchExchange], fetch: recordingFetch(log) });
  const result = await client.query(urqlGql(USER_EMAIL), { id: author.id }).toPromise();
  assert(log.length === 1 && log[0].method === 'GET', `requests: ${json(log)}`);
  const preflightHeaders = ['apollo-require-preflight', 'x-apollo-operation-name', 'x-requested-with'];
  assert(!preflightHeaders.some((h) => h in log[0].headers), `urql sent a preflight header: ${json(log[0].headers)}`);
  assert(log[0].status === 400, `GET answered ${log[0].status}, not 400`);
  assert(result.error && !result.data, `urql reported no error: ${json(result)}`);
  const code = result.error.graphQLErrors?.[0]?.extensions?.code ?? '(none)';
  return `GET ${log[0].status}, urql error "${result.error.message.slice(0, 80)}", code ${code}`;
});

// --- graphql-request
await check('graphql-request: batchRequests — [createUser(e), userByEmail(e)] in one POST of a JSON array', async () => {
  const email = `batch-${run}@example.com`;
  const log = [];
  const client = new GraphQLClient(url, { headers: asAdmin, fetch: recordingFetch(log) });
  const results = await client.batchRequests([
    {
      document: requestGql`mutation ($email: String!) { createUser(input: { email: $email, name: "Batch" }) { id email } }`,
      variables: { email },
    },
    {
      document: requestGql`query ($email: String!) { userByEmail(email: $email) { id email } }`,
      variables: { email: email.toUpperCase() },
    },
  ]);
  assert(log.length === 1 && Array.isArray(log[0].body) && log[0].body.length === 2, `not one JSON array of two: ${json(log.map((e) => e.body))}`);
  assert(Array.isArray(results) && results.length === 2, `returned ${json(results)}`);
  const [created, found] = results.map((r) => r.data);
  assert(created?.createUser?.email === email, `the first result is ${json(results[0])}`);
  assert(found?.userByEmail?.id === created.createUser.id, `the second result is ${json(results[1])}`);
  return `1 request, createUser → ${created.createUser.id}; userByEmail(upper case) → the same id`;
});

// --- bearer tokens, as the clients send them
const USER_WITH_EMAIL = requestGql`query UserWithEmail($id: UUID!) { user(id: $id) { id email } }`;

await check('graphql-request: with the admin token, user.email is the address', async () => {
  const log = [];
  const client = new GraphQLClient(url, { headers: asAdmin, fetch: recordingFetch(log) });
  const { user } = await client.request(USER_WITH_EMAIL, { id: author.id });
  assert(log.length === 1 && log[0].headers.authorization === asAdmin.authorization, `requests: ${json(log.map((e) => e.headers))}`);
  assert(user?.id === author.id && user.email === author.email, `returned ${json(user)}`);
  const { users } = await client.request(requestGql`{ users(first: 100) { nodes { email } } }`);
  const missing = users.nodes.filter((node) => typeof node.email !== 'string');
  assert(users.nodes.length > 0 && missing.length === 0, `${missing.length} of ${users.nodes.length} users have no email for an admin`);
  return `user.email = ${user.email}; every one of the ${users.nodes.length} users has its email`;
});

await check('graphql-request: anonymous (no Authorization) — email null, me null, createPost FORBIDDEN', async () => {
  const log = [];
  const client = new GraphQLClient(url, { fetch: recordingFetch(log) });
  const { user } = await client.request(USER_WITH_EMAIL, { id: author.id });
  assert(user?.id === author.id && user.email === null, `an anonymous caller got ${json(user)}`);
  const { me } = await client.request(requestGql`{ me { id } }`);
  assert(me === null, `me is ${json(me)} without a token`);
  let code;
  try {
    await client.request(requestGql`mutation ($a: UUID!) { createPost(input: { authorId: $a, title: "Anonymous" }) { id } }`, { a: author.id });
    throw new CheckFailed('an anonymous createPost did not throw');
  } catch (error) {
    if (error instanceof CheckFailed) throw error;
    assert(error instanceof ClientError, `not a ClientError: ${error?.name}: ${error?.message}`);
    code = error.response.errors?.[0]?.extensions?.code;
    assert(error.response.status === 200 && code === 'FORBIDDEN', `an anonymous createPost gave ${error.response.status} ${json(error.response.errors)}`);
  }
  assert(log.every((entry) => !('authorization' in entry.headers)), `a request carried a token: ${json(log.map((e) => e.headers))}`);
  const { user: after } = await post('query ($id: UUID!) { user(id: $id) { posts(first: 100) { totalCount } } }', { id: author.id });
  assert(after.posts.totalCount === POSTS, `the author has ${after.posts.totalCount} posts after the refused createPost, not ${POSTS}`);
  return `user.email = null, me = null, createPost → ${code} (nothing written)`;
});

// Tokens the server must refuse: not a JWT, and the admin's token with its signature altered.
const tampered = (() => {
  const token = process.env.QUILL_ADMIN_TOKEN;
  const signature = token.slice(token.lastIndexOf('.') + 1);
  return `${token.slice(0, token.lastIndexOf('.') + 1)}${signature[0] === 'A' ? 'B' : 'A'}${signature.slice(1)}`;
})();

await check('graphql-request: a bad token is HTTP 401 UNAUTHENTICATED with a Bearer challenge (ClientError)', async () => {
  const seen = [];
  for (const token of ['not-a-jwt', tampered]) {
    const client = new GraphQLClient(url, { headers: { authorization: `Bearer ${token}` } });
    try {
      await client.request(USER_WITH_EMAIL, { id: author.id });
      throw new CheckFailed(`a request with the token ${token.slice(0, 20)}… did not throw`);
    } catch (error) {
      if (error instanceof CheckFailed) throw error;
      assert(error instanceof ClientError, `not a ClientError: ${error?.name}: ${error?.message}`);
      const { status, errors, headers, data } = error.response;
      const code = errors?.[0]?.extensions?.code;
      assert(status === 401 && code === 'UNAUTHENTICATED', `got ${status} ${json(errors)}`);
      assert(data === undefined, `a refused request carried data: ${json(data)}`);
      const challenge = headers?.get?.('www-authenticate') ?? '';
      assert(/^Bearer\b/.test(challenge), `WWW-Authenticate is ${json(challenge)}`);
      seen.push(`${status} ${code} "${errors[0].message}"`);
    }
  }
  return seen.join('; ');
});

await check('Apollo Client: a bad token rejects with a ServerError (statusCode 401, code UNAUTHENTICATED)', async () => {
  const client = new ApolloClient({
    link: new HttpLink({ uri: url, headers: { authorization: `Bearer ${tampered}` } }),
    cache: new InMemoryCache(),
  });
  try {
    await client.query({ query: gql`query Refused($id: UUID!) { user(id: $id) { id email } }`, variables: { id: author.id } });
    throw new CheckFailed('a query with a tampered token did not throw');
  } catch (error) {
    if (error instanceof CheckFailed) throw error;
    assert(ServerError.is(error), `not a ServerError: ${error?.name}: ${error?.message}`);
    assert(error.statusCode === 401, `statusCode ${error.statusCode}`);
    const code = JSON.parse(error.bodyText).errors?.[0]?.extensions?.code;
    assert(code === 'UNAUTHENTICATED', `the body is ${error.bodyText}`);
    assert(/^Bearer\b/.test(error.response.headers.get('www-authenticate') ?? ''), 'no Bearer challenge');
    return `ServerError ${error.statusCode}, body code ${code}`;
  }
});

say('all checks passed');
