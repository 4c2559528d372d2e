// Quill's self-hosted GraphiQL playground.
//
// Built by Vite into ../../api/assets/graphiql and served by the Quill binary
// under /graphiql/. The Rust side renders the HTML page (from
// .vite/manifest.json) with a <div id="graphiql"> and links this entry's JS
// and CSS. Nothing here may load anything from another origin.

// Monaco web workers (editor, GraphQL, JSON), bundled by Vite as separate
// files under /graphiql/assets/. Must run before any editor is created.
import 'graphiql/setup-workers/vite';
import 'graphiql/style.css';
import './main.css';

import { createElement } from 'react';
import { createRoot } from 'react-dom/client';
import { GraphiQL, HISTORY_PLUGIN } from 'graphiql';
import { createGraphiQLFetcher } from '@graphiql/toolkit';
import { getOperationAST } from 'graphql';
import { createClient } from 'graphql-ws';

// Queries and mutations are POSTed to /graphql.
const httpFetcher = createGraphiQLFetcher({ url: '/graphql' });

// Subscriptions go over a WebSocket (graphql-transport-ws) to this page's own
// origin, ws: or wss: as the page is http: or https:, at /graphql too.
const subscriptionUrl = new URL('/graphql', location.href);
subscriptionUrl.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';

// Each subscription run gets its own graphql-ws client, with the headers
// editor's JSON as its connection_init payload (Quill reads `authorization`
// there, in any case), so a changed token counts from the next run. The client
// is lazy: it opens its socket on subscribe and closes it when the
// subscription ends. No retries: a refused token (4403) or a dropped socket
// shows as an error at once, not after half a minute of reconnecting. The run
// is handed to GraphiQL as an Observable: through the toolkit's own WebSocket
// path (`wsClient`, `subscriptionUrl`), each such error would also surface as
// an unhandled promise rejection.
function fetcher(params, options) {
  const operation =
    options?.documentAST && getOperationAST(options.documentAST, params.operationName || undefined);
  if (operation?.operation !== 'subscription') return httpFetcher(params, options);
  const client = createClient({
    url: subscriptionUrl.href,
    connectionParams: options.headers ?? {},
    retryAttempts: 0,
  });
  return {
    subscribe: (sink) => ({
      unsubscribe: client.subscribe(params, {
        ...sink,
        // A closed socket comes as a CloseEvent: shown by its code and reason.
        error: (error) =>
          sink.error(
            error instanceof CloseEvent
              ? new Error(`Socket closed with event ${error.code} ${error.reason}`.trim())
              : error,
          ),
      }),
    }),
  };
}

const container = document.getElementById('graphiql');
createRoot(container).render(
  createElement(GraphiQL, {
    fetcher,
    // The documentation explorer is GraphiQL 5's default reference plugin
    // (@graphiql/plugin-doc-explorer); history is passed explicitly.
    plugins: [HISTORY_PLUGIN],
    isHeadersEditorEnabled: true,
    initialHeaders: '{}',
    defaultHeaders: '{}',
  }),
);
