import { defineConfig } from 'vite';

// Output is committed in api/assets/graphiql and embedded in the Quill
// binary, which serves it under /graphiql/. `check` rebuilds it from the
// lockfile and fails if it differs from what is committed.
export default defineConfig({
  base: '/graphiql/',
  mode: 'production',
  logLevel: 'warn',
  build: {
    outDir: '../../api/assets/graphiql',
    emptyOutDir: true,
    manifest: true,
    sourcemap: false,
    // Inline small assets as data: URIs (allowed by the CSP's img-src and
    // font-src); anything bigger is emitted as a hashed file under assets/.
    assetsInlineLimit: 4096,
    reportCompressedSize: false,
    chunkSizeWarningLimit: 8192,
    rolldownOptions: {
      onwarn(warning, defaultHandler) {
        // framer-motion's "use client" directives are meaningless in a
        // client-only bundle.
        if (warning.code === 'MODULE_LEVEL_DIRECTIVE') return;
        defaultHandler(warning);
      },
    },
  },
  worker: {
    // Classic (non-module) workers emitted as hashed files under assets/.
    format: 'iife',
  },
});
