// GraphQL client libraries against a running Quill, in Node (no browser): Apollo Client 4
// (relay-style pagination with fetchMore, a mutation updating the normalised cache, an error
// read by its extensions.code, automatic persisted queries), urql (the README's
// `preferGetMethod: false`, and the 400 its default GET gets without it) and graphql-request
// (a JSON-array batch). Seeds its own data through mutations first. Prints one `ok:` line per
// check; exits 1 on the first failure.
// Run by `run` beside this file, which starts the server; see README.md.
//
// Settings (environment):
//   QUILL_URL   the running server, e.g. http://127.0.0.1:8000 (required)

import { createHash, randomUUID } from 'node:crypto';
import { ApolloClient, ApolloLink, CombinedGraphQLErrors, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { createPersistedQueryLink } from '@apollo/client/link/persisted-queries';
import { relayStylePagination } from '@apollo/client/utilities';
import { Client as UrqlClient, fetchExchange, gql as urqlGql } from '@urql/core';
import { GraphQLClient, gql as requestGql } from 'graphql-request';

const CHECK_TIMEOUT_MS = 15_000;
const POSTS = 5; // seeded for one author; paged two at a time

const say = (message) => console.log(`libraries: ${message}`);
if (!process.env.QUILL_URL) {
  console.error('libraries: FAILED: set QUILL_URL to the running server, e.g. http://127.0.0.1:8000');
  process.exit(1);
}
const url = new URL('/graphql', process.env.QUILL_URL).href;

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

// A plain JSON POST, for seeding and for the reference answers.
async function post(query, variables) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
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

await check(`seed: createUser + ${POSTS} createPost (plain fetch)`, async () => {
  const { createUser } = await post(
    'mutation ($input: CreateUserInput!) { createUser(input: $input) { id email } }',
    { input: { email: `libraries-${run}@example.com`, name: 'Libraries', profile: { bio: 'Seeded by libraries.mjs.' } } },
  );
  author = createUser;
  seeded = [];
  for (let i = 1; i <= POSTS; i++) {
    const { createPost } = await post(
      'mutation ($input: CreatePostInput!) { createPost(input: $input) { id } }',
      { input: { authorId: author.id, title: `Post ${i}`, content: `Body ${i}` } },
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
  });
  assert(data?.updatePost?.title === title, `the mutation returned ${json(data)}`);
  const after = apolloCache.readFragment({ id: cacheId, fragment });
  assert(after?.title === title, `after the mutation the cache holds ${json(after)}`);
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
  const client = new ApolloClient({
    link: ApolloLink.from([createPersistedQueryLink({ sha256 }), new HttpLink({ uri: url, fetch: recordingFetch(log) })]),
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
  const client = new UrqlClient({ url, exchanges: [fetchExchange], preferGetMethod: false, fetch: recordingFetch(log) });
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
  const client = new GraphQLClient(url, { fetch: recordingFetch(log) });
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

say('all checks passed');
