// Typed documents against Quill's schema, through the `graphql()` that graphql-codegen
// generates into ./gql (see codegen.ts). `codegen/check` runs `tsc --strict --noEmit` on this
// file and the generated ones: the assertions below hold only when the types are right, and
// the line under `@ts-expect-error` must NOT compile (tsc fails should it ever compile).
import { graphql } from './gql/index.js';
import type {
  CreatePostInput,
  CreatePostMutation,
  CreatePostMutationVariables,
  UserPostsQuery,
  UserPostsQueryVariables,
} from './gql/graphql.js';

export const UserPostsDocument = graphql(`
  query UserPosts($id: UUID!, $first: Int!, $after: String) {
    user(id: $id) {
      id
      email
      name
      posts(first: $first, after: $after) {
        nodes { id title content createdAt }
        pageInfo { hasNextPage endCursor }
      }
    }
  }
`);

export const CreatePostDocument = graphql(`
  mutation CreatePost($input: CreatePostInput!) {
    createPost(input: $input) { id title author { id } }
  }
`);

// Exact type equality: `any` or `unknown` in place of `string` fails.
type Equals<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;

// The scalars travel as strings (the README's `scalars: { UUID: "string", DateTime: "string" }`):
// UUID in an input type (`authorId`, optional: the caller writes the post when it is omitted)
// and in variables,
export const authorIdInputIsString: Equals<CreatePostInput['authorId'], string | null | undefined> = true;
export const idVariableIsString: Equals<UserPostsQueryVariables['id'], string> = true;
// UUID and DateTime in an operation's result.
type PostNode = NonNullable<UserPostsQuery['user']>['posts']['nodes'][number];
export const postIdIsString: Equals<PostNode['id'], string> = true;
export const createdAtIsString: Equals<PostNode['createdAt'], string> = true;
export const contentIsNullable: Equals<PostNode['content'], string | null> = true;
export const authorIdIsString: Equals<CreatePostMutation['createPost']['author']['id'], string> = true;
// `email` is private (the user themselves and admins see it; anyone else gets null).
export const emailIsNullable: Equals<NonNullable<UserPostsQuery['user']>['email'], string | null> = true;
const someId: string = 'c5c3a1e0-0000-4000-8000-000000000000';

// Variables as the schema requires them.
export const firstPage: UserPostsQueryVariables = { id: someId, first: 2 };
export const newPost: CreatePostMutationVariables = { input: { authorId: someId, title: 'Notes' } };
export const newPostAsCaller: CreatePostMutationVariables = { input: { title: 'Notes' } };
// @ts-expect-error CreatePostInput.title is String!: an input without it must not compile.
export const noTitle: CreatePostMutationVariables = { input: { authorId: someId } };

// A typed execute, as a client library has it: result and variables come from the document.
type Typed<R, V> = { __apiType?: (variables: V) => R };
declare function execute<R, V>(document: Typed<R, V>, variables: V): Promise<R>;
export async function titles(id: string): Promise<string[]> {
  const result = await execute(UserPostsDocument, { id, first: 10 });
  return result.user?.posts.nodes.map((post) => post.title) ?? [];
}
