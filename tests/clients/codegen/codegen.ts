// graphql-codegen's client preset on Quill's committed SDL, with the README's config
// ("Typed clients"). Paths are relative to tests/clients, where `codegen/check` runs it.
import type { CodegenConfig } from '@graphql-codegen/cli';

const config: CodegenConfig = {
  schema: '../../schema.graphql',
  documents: ['codegen/usage.ts'],
  generates: {
    'codegen/gql/': { preset: 'client', config: { scalars: { UUID: 'string', DateTime: 'string' } } },
  },
  silent: true,
};
export default config;
