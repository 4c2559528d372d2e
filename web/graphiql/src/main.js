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

const fetcher = createGraphiQLFetcher({ url: '/graphql' });

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
