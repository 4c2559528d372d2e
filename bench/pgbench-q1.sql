-- The SQL that q1 needs, as pgbench runs it: the physical floor of q1 on this database.
-- A page of 50 users, then each one's 10 newest posts walked from the
-- (author_id, created_at, id) index; the posts' authors are the page's users.
SELECT id, email, name, created_at, updated_at FROM users ORDER BY id LIMIT 51;
SELECT p.* FROM (SELECT id FROM users ORDER BY id LIMIT 50) AS a
  JOIN LATERAL (SELECT id, title, content, author_id, created_at, updated_at FROM posts
                WHERE posts.author_id = a.id ORDER BY created_at DESC, id DESC LIMIT 11) AS p ON TRUE;
