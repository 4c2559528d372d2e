-- The SQL that q1 needs (a page of 50 users, each user's 10 newest posts, their authors),
-- as pgbench runs it: the physical floor of q1 on this database.
SELECT id, email FROM users ORDER BY id LIMIT 51;
SELECT * FROM (SELECT id, title, author_id, created_at, ROW_NUMBER() OVER (PARTITION BY author_id ORDER BY created_at DESC, id DESC) AS rank FROM posts WHERE author_id IN (SELECT id FROM users ORDER BY id LIMIT 50)) ranked WHERE rank <= 11;
SELECT id, email FROM users WHERE id IN (SELECT id FROM users ORDER BY id LIMIT 50);
