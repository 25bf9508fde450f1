-- td schema 38: the twelve synced tables, with td's column order, defaults, foreign keys and
-- indexes (read from a fresh `td init` of td v0.62.0). This is the projection a tdsync shard keeps
-- and the part of a td database that sync touches.

CREATE TABLE issues (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    description TEXT DEFAULT '',
    status TEXT NOT NULL DEFAULT 'open',
    type TEXT NOT NULL DEFAULT 'task',
    priority TEXT NOT NULL DEFAULT 'P2',
    points INTEGER DEFAULT 0,
    labels TEXT DEFAULT '',
    parent_id TEXT DEFAULT '',
    acceptance TEXT DEFAULT '',
    implementer_session TEXT DEFAULT '',
    reviewer_session TEXT DEFAULT '',
    created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    closed_at DATETIME,
    deleted_at DATETIME,
    minor INTEGER DEFAULT 0,
    created_branch TEXT DEFAULT '',
    creator_session TEXT DEFAULT '',
    sprint TEXT DEFAULT '',
    defer_until TEXT,
    due_date TEXT,
    defer_count INTEGER DEFAULT 0,
    reviewed_at DATETIME,
    review_requested_by_session TEXT DEFAULT '',
    closed_by_session TEXT DEFAULT ''
);
CREATE INDEX idx_issues_status ON issues(status);
CREATE INDEX idx_issues_priority ON issues(priority);
CREATE INDEX idx_issues_type ON issues(type);
CREATE INDEX idx_issues_parent ON issues(parent_id);
CREATE INDEX idx_issues_deleted ON issues(deleted_at);
CREATE INDEX idx_issues_deleted_status ON issues(deleted_at, status);
CREATE INDEX idx_issues_defer_until ON issues(defer_until);
CREATE INDEX idx_issues_due_date ON issues(due_date);

CREATE TABLE boards (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL COLLATE NOCASE,
    last_viewed_at DATETIME,
    created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    query TEXT NOT NULL DEFAULT '',
    is_builtin INTEGER NOT NULL DEFAULT 0,
    view_mode TEXT NOT NULL DEFAULT 'swimlanes'
);

CREATE TABLE work_sessions (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    session_id TEXT NOT NULL,
    worktree_id TEXT DEFAULT '',
    worktree_root TEXT DEFAULT '',
    repo_root TEXT DEFAULT '',
    started_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    ended_at DATETIME,
    start_sha TEXT DEFAULT '',
    end_sha TEXT DEFAULT ''
);

CREATE TABLE notes (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    content TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    pinned INTEGER DEFAULT 0,
    archived INTEGER DEFAULT 0,
    deleted_at TEXT
);
CREATE INDEX idx_notes_updated ON notes(updated_at DESC);
CREATE INDEX idx_notes_deleted ON notes(deleted_at);

CREATE TABLE logs (
    id TEXT PRIMARY KEY,
    issue_id TEXT DEFAULT '',
    session_id TEXT NOT NULL,
    work_session_id TEXT DEFAULT '',
    message TEXT NOT NULL,
    type TEXT NOT NULL DEFAULT 'progress',
    timestamp DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX idx_logs_issue ON logs(issue_id);
CREATE INDEX idx_logs_work_session ON logs(work_session_id);
CREATE INDEX idx_logs_timestamp ON logs(timestamp);

CREATE TABLE comments (
    id TEXT PRIMARY KEY,
    issue_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    text TEXT NOT NULL,
    created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    FOREIGN KEY (issue_id) REFERENCES issues(id) ON DELETE CASCADE
);
CREATE INDEX idx_comments_issue ON comments(issue_id);
CREATE INDEX idx_comments_created_at ON comments(created_at);

CREATE TABLE handoffs (
    id TEXT PRIMARY KEY,
    issue_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    done TEXT DEFAULT '[]',
    remaining TEXT DEFAULT '[]',
    decisions TEXT DEFAULT '[]',
    uncertain TEXT DEFAULT '[]',
    timestamp DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    FOREIGN KEY (issue_id) REFERENCES issues(id) ON DELETE CASCADE
);
CREATE INDEX idx_handoffs_issue ON handoffs(issue_id);
CREATE INDEX idx_handoffs_timestamp ON handoffs(timestamp);

CREATE TABLE board_issue_positions (
    id TEXT PRIMARY KEY,
    board_id TEXT NOT NULL,
    issue_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    added_at DATETIME DEFAULT CURRENT_TIMESTAMP,
    deleted_at DATETIME,
    UNIQUE(board_id, issue_id),
    FOREIGN KEY (board_id) REFERENCES boards(id) ON DELETE CASCADE,
    FOREIGN KEY (issue_id) REFERENCES issues(id) ON DELETE CASCADE
);

CREATE TABLE work_session_issues (
    id TEXT PRIMARY KEY,
    work_session_id TEXT NOT NULL,
    issue_id TEXT NOT NULL,
    tagged_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    UNIQUE(work_session_id, issue_id),
    FOREIGN KEY (work_session_id) REFERENCES work_sessions(id) ON DELETE CASCADE,
    FOREIGN KEY (issue_id) REFERENCES issues(id) ON DELETE CASCADE
);

CREATE TABLE issue_files (
    id TEXT PRIMARY KEY,
    issue_id TEXT NOT NULL,
    file_path TEXT NOT NULL,
    role TEXT NOT NULL DEFAULT 'implementation',
    linked_sha TEXT DEFAULT '',
    linked_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    UNIQUE(issue_id, file_path),
    FOREIGN KEY (issue_id) REFERENCES issues(id) ON DELETE CASCADE
);
CREATE INDEX idx_issue_files_issue ON issue_files(issue_id);

CREATE TABLE issue_dependencies (
    id TEXT PRIMARY KEY,
    issue_id TEXT NOT NULL,
    depends_on_id TEXT NOT NULL,
    relation_type TEXT NOT NULL DEFAULT 'depends_on',
    UNIQUE(issue_id, depends_on_id, relation_type),
    FOREIGN KEY (issue_id) REFERENCES issues(id) ON DELETE CASCADE,
    FOREIGN KEY (depends_on_id) REFERENCES issues(id) ON DELETE CASCADE
);

CREATE TABLE issue_reviews (
    id TEXT PRIMARY KEY,
    issue_id TEXT NOT NULL,
    reviewer_session TEXT NOT NULL,
    decision TEXT NOT NULL,
    summary TEXT NOT NULL DEFAULT '',
    requested_by_session TEXT DEFAULT '',
    created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    superseded_at DATETIME,
    self_review INTEGER NOT NULL DEFAULT 0,
    reviewed_by TEXT NOT NULL DEFAULT '',
    FOREIGN KEY (issue_id) REFERENCES issues(id)
);
CREATE INDEX idx_issue_reviews_issue_id ON issue_reviews(issue_id);
CREATE INDEX idx_issue_reviews_active ON issue_reviews(issue_id) WHERE superseded_at IS NULL;

