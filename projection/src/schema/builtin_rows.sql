-- Every td database has this builtin board; it is never synced, so every replica makes its own.
INSERT INTO boards (id, name, query, is_builtin, view_mode) VALUES ('bd-all-issues', 'All Issues', '', 1, 'swimlanes');
