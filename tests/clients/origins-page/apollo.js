// The Apollo Client half of origins.mjs's page: bundled by origins.mjs (esbuild) into one ES
// module, origins-page/dist/apollo.js (ignored by git), served by its page server as
// /apollo.js. Runs `{ users { totalCount } }` against the Quill named in the page's ?quill=
// with an HttpLink on the browser's own fetch, and writes the outcome into #result, as the
// page's fetch script does: `resolved {"data":…}` or `rejected <error name>: <message>`.
import { ApolloClient, HttpLink, InMemoryCache, gql } from '@apollo/client';

const result = document.getElementById('result');
const uri = new URL(location.href).searchParams.get('quill');
const client = new ApolloClient({ link: new HttpLink({ uri }), cache: new InMemoryCache() });

client
  .query({ query: gql`{ users { totalCount } }`, fetchPolicy: 'network-only' })
  .then((outcome) => {
    result.textContent = 'resolved ' + JSON.stringify({ data: outcome.data, error: outcome.error?.message ?? null });
  })
  .catch((error) => {
    result.textContent = 'rejected ' + error.name + ': ' + error.message;
  })
  .finally(() => result.setAttribute('data-done', '1'));
