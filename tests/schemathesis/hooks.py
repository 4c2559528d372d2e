"""Schemathesis hooks for Quill's fuzzing pass; `run` loads them through SCHEMATHESIS_HOOKS.

- `quill_no_server_error`, the one check the run uses. Schemathesis's own
  `not_a_server_error` also judges GraphQL bodies and calls any error code it does not
  know (`NOT_FOUND`, `CONFLICT`) a server error, while those are Quill answering a
  well-formed request correctly. This check fails only on what is the server's fault.
- Pagination arguments: a connection field given both `first`/`after` and `last`/`before`
  is always refused (`BAD_USER_INPUT`), and the generator gives most of them both; the
  `flatmap_body` hook keeps one direction for two thirds of such fields, so the keyset
  queries behind `users`, `posts` and `User.posts` run too.
- A generator for the `UUID` scalar that mixes the ids of rows that exist (read from the
  server when the hooks load) with random ones, so lookups, updates, deletes and
  `createPost` reach existing rows instead of always answering `null` / `NOT_FOUND`;
  with a user token it also favours that user's own id and posts, so the user's writes
  that the access rules allow happen too.
- The caller of each request (`flatmap_headers`): most carry the admin token `run` mints
  (`api token --role admin`), so mutations do their work instead of answering
  `FORBIDDEN`; some a seeded user's token, some none (anonymous), and some a token the
  server must refuse (garbage, another scheme, a tampered signature, another secret,
  `alg: none`). Schemathesis itself sends no `Authorization` header for GraphQL.
  `quill_no_server_error` also fails when a refused token is not answered 401
  `UNAUTHENTICATED` with a `WWW-Authenticate: Bearer` challenge, or when one of the
  valid tokens is answered 401.
"""

from __future__ import annotations

import base64
import json
import os
import urllib.request

import graphql
import schemathesis
from hypothesis import strategies as st
from schemathesis.graphql import nodes

# What `run` sets: the GraphQL endpoint of the server under test, and tokens it minted with
# the server's own `api token`: an admin's, a seeded user's, and an admin's signed with
# another secret (which the server must refuse).
GRAPHQL_URL = os.environ.get("QUILL_FUZZ_GRAPHQL_URL", "")
ADMIN_TOKEN = os.environ.get("QUILL_ADMIN_TOKEN", "")
USER_TOKEN = os.environ.get("QUILL_USER_TOKEN", "")
FOREIGN_TOKEN = os.environ.get("QUILL_FOREIGN_TOKEN", "")


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _tampered(token: str) -> str:
    """The token with the first character of its signature changed."""
    head, _, signature = token.rpartition(".")
    return f"{head}.{'B' if signature[:1] == 'A' else 'A'}{signature[1:]}"


def _bad_authorizations() -> list[str]:
    """`Authorization` values the server must answer 401."""
    bad = ["Bearer not-a-jwt", "Bearer ", "Basic YWRtaW46YWRtaW4=", "Bearer a.b.c"]
    if ADMIN_TOKEN:
        _, payload, _ = ADMIN_TOKEN.split(".")
        bad += [
            f"Bearer {_tampered(ADMIN_TOKEN)}",
            # The admin's claims, unsigned (`alg: none`).
            f"Bearer {_b64({'typ': 'JWT', 'alg': 'none'})}.{payload}.",
        ]
    if FOREIGN_TOKEN:
        bad.append(f"Bearer {FOREIGN_TOKEN}")
    return bad


BAD_AUTHORIZATIONS = _bad_authorizations()
VALID_AUTHORIZATIONS = {f"Bearer {t}" for t in (ADMIN_TOKEN, USER_TOKEN) if t}


@schemathesis.check
def quill_no_server_error(ctx, response, case):
    """Fails on a 5xx, a server-side timeout (408) or an `INTERNAL_SERVER_ERROR` in the body.

    4xx answers and GraphQL errors with a client code (`BAD_USER_INPUT`, `NOT_FOUND`,
    `CONFLICT`, `GRAPHQL_*`, `BAD_REQUEST`) are the server rejecting bad input: they pass.
    """
    status = response.status_code
    if status >= 500:
        raise AssertionError(f"HTTP {status}: {_excerpt(response)}")
    _check_authentication(case, response)
    if status == 408:
        # The request is sent whole at once, so a 408 is the server's own 30 s request
        # timeout: a handler that hung.
        raise AssertionError(f"HTTP 408 (the request ran into the server's timeout): {_excerpt(response)}")
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    for item in body if isinstance(body, list) else [body]:
        if not isinstance(item, dict):
            continue
        for error in item.get("errors") or []:
            extensions = error.get("extensions") if isinstance(error, dict) else None
            if isinstance(extensions, dict) and extensions.get("code") == "INTERNAL_SERVER_ERROR":
                raise AssertionError(
                    "INTERNAL_SERVER_ERROR in a GraphQL response (the server's log has the cause): "
                    + json.dumps(error)[:500]
                )
    return None


def _excerpt(response) -> str:
    return response.content[:300].decode("utf-8", "replace")


# Answers given before the token is read: a body that is not a GraphQL request, a refused
# media type.
BEFORE_AUTHENTICATION = frozenset({400, 406, 413, 415})


def _check_authentication(case, response) -> None:
    """A refused token gets 401 `UNAUTHENTICATED` and a Bearer challenge; a valid one never 401."""
    authorization = (case.headers or {}).get("Authorization")
    status = response.status_code
    if authorization in VALID_AUTHORIZATIONS and status == 401:
        raise AssertionError(f"a valid token was refused: {_excerpt(response)}")
    if authorization is None or authorization in VALID_AUTHORIZATIONS or status in BEFORE_AUTHENTICATION:
        return
    if status != 401:
        raise AssertionError(f"a request with a bad token was answered {status}, not 401: {_excerpt(response)}")
    challenge = " ".join(response.headers.get("www-authenticate") or [])
    if not challenge.startswith("Bearer"):
        raise AssertionError(f"a 401 without a `WWW-Authenticate: Bearer` challenge (got {challenge!r})")
    try:
        codes = [e.get("extensions", {}).get("code") for e in json.loads(response.content)["errors"]]
    except (ValueError, KeyError, TypeError, AttributeError):
        codes = []
    if codes != ["UNAUTHENTICATED"]:
        raise AssertionError(f"a 401 whose errors are not one UNAUTHENTICATED: {_excerpt(response)}")


# Who calls, drawn for each request: mostly the admin, so every mutation runs to its end.
CALLERS = ["admin"] * 6 + ["user"] * 2 + ["anonymous", "bad token"]


@schemathesis.hook
def flatmap_headers(context, headers):
    """Sets the request's `Authorization` header for a caller drawn from CALLERS."""
    base = dict(headers or {})

    def with_authorization(value):
        return {**base, "Authorization": value} if value is not None else (base or None)

    def authorizations(caller: str) -> st.SearchStrategy:
        if caller == "admin" and ADMIN_TOKEN:
            return st.just(f"Bearer {ADMIN_TOKEN}")
        if caller == "user" and USER_TOKEN:
            return st.just(f"Bearer {USER_TOKEN}")
        if caller == "bad token":
            return st.sampled_from(BAD_AUTHORIZATIONS)
        return st.none()

    return st.sampled_from(CALLERS).flatmap(authorizations).map(with_authorization)


FORWARD = frozenset({"first", "after"})
BACKWARD = frozenset({"last", "before"})


@schemathesis.hook
def flatmap_body(context, body):
    """For each field paginated both ways at once, keep forward, backward, or both."""
    if not isinstance(body, graphql.DocumentNode):
        return st.just(body)
    count = _count_two_way(body)
    if count == 0:
        return st.just(body)
    directions = st.lists(st.sampled_from(["forward", "backward", "both"]), min_size=count, max_size=count)
    return directions.map(lambda chosen: _keep_directions(body, chosen))


def _keep_directions(document, chosen):
    chosen = iter(chosen)

    def arguments(field):
        if not _is_two_way(field):
            return field.arguments
        drop = {"forward": BACKWARD, "backward": FORWARD, "both": frozenset()}[next(chosen)]
        return tuple(arg for arg in field.arguments if arg.name.value not in drop)

    return _rewrite(document, arguments)


def _is_two_way(field) -> bool:
    """Whether a field has a non-null pagination argument of each direction."""
    given = {arg.name.value for arg in field.arguments or () if not isinstance(arg.value, graphql.NullValueNode)}
    return bool(given & FORWARD and given & BACKWARD)


def _count_two_way(node) -> int:
    count = int(isinstance(node, graphql.FieldNode) and _is_two_way(node))
    children = list(node.definitions) if isinstance(node, graphql.DocumentNode) else []
    selection_set = getattr(node, "selection_set", None)
    children += selection_set.selections if selection_set is not None else ()
    return count + sum(_count_two_way(child) for child in children)


def _rewrite(node, arguments):
    """A copy of `node` whose fields (visited parents first) get `arguments(field)`."""
    changes = {}
    if isinstance(node, graphql.FieldNode):
        changes["arguments"] = arguments(node)
    if isinstance(node, graphql.DocumentNode):
        changes["definitions"] = tuple(_rewrite(child, arguments) for child in node.definitions)
    selection_set = getattr(node, "selection_set", None)
    if selection_set is not None:
        selections = tuple(_rewrite(child, arguments) for child in selection_set.selections)
        changes["selection_set"] = _replace(selection_set, selections=selections)
    return _replace(node, **changes) if changes else node


def _replace(node, **changes):
    # AST nodes are immutable since graphql-core 3.3: build a new one.
    return type(node)(**{**{key: getattr(node, key) for key in node.keys}, **changes})


def _post(query: str, variables: dict, token: str = "") -> dict:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        GRAPHQL_URL,
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers=headers,
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def _existing_ids(limit: int = 2000) -> list[str]:
    """Ids of users and their newest posts, following the `users` connection's pages."""
    # `posts(first: 10)`: the complexity limit refuses 100 x 100; `run` seeds 3 per user.
    query = """
      query ($after: String) {
        users(first: 100, after: $after) {
          pageInfo { hasNextPage endCursor }
          nodes { id posts(first: 10) { nodes { id } } }
        }
      }
    """
    ids: list[str] = []
    after = None
    while len(ids) < limit:
        answer = _post(query, {"after": after})
        if answer.get("errors"):
            raise RuntimeError(answer["errors"])
        users = answer["data"]["users"]
        for user in users["nodes"]:
            ids.append(user["id"])
            ids.extend(post["id"] for post in user["posts"]["nodes"])
        if not users["pageInfo"]["hasNextPage"]:
            break
        after = users["pageInfo"]["endCursor"]
    return ids[:limit]


def _own_ids() -> list[str]:
    """The id of the user of USER_TOKEN (`me`, which also proves the token works) and of their posts."""
    answer = _post("{ me { id posts(first: 10) { nodes { id } } } }", {}, USER_TOKEN)
    me = (answer.get("data") or {}).get("me")
    if answer.get("errors") or not me:
        raise RuntimeError(f"`me` with QUILL_USER_TOKEN answered {answer}")
    return [me["id"], *(post["id"] for post in me["posts"]["nodes"])]


def _uuid_strategy() -> st.SearchStrategy:
    random_ids = st.uuids().map(str)
    if not GRAPHQL_URL:
        return random_ids.map(nodes.String)
    # Failing here fails the run: without existing ids most operations test one path only.
    existing = _existing_ids()
    if not existing:
        raise RuntimeError(f"no users at {GRAPHQL_URL}: seed the database first")
    choices = [st.sampled_from(existing), random_ids]
    if USER_TOKEN:
        # The token's user and their posts: the writes a user may make reach real rows too.
        choices.append(st.sampled_from(_own_ids()))
    return st.one_of(*choices).map(nodes.String)


schemathesis.graphql.scalar("UUID", _uuid_strategy())
