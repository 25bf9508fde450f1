-- td schema 38: td's local tables (never synced). Together with synced_tables.sql this is a
-- complete td database, as snapshots and simulated clients need.

CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    name TEXT DEFAULT '',
    branch TEXT DEFAULT '',
    agent_type TEXT DEFAULT '',
    agent_pid INTEGER DEFAULT 0,
    context_id TEXT DEFAULT '',
    match_context_id TEXT DEFAULT '',
    worktree_id TEXT DEFAULT '',
    worktree_root TEXT DEFAULT '',
    repo_root TEXT DEFAULT '',
    previous_session_id TEXT DEFAULT '',
    started_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    ended_at DATETIME,
    last_activity DATETIME
);
CREATE INDEX idx_sessions_branch ON sessions(branch);
CREATE INDEX idx_sessions_branch_agent ON sessions(branch, agent_type, agent_pid, match_context_id, worktree_id);

CREATE TABLE schema_info (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE session_state (
    session_id TEXT NOT NULL,
    worktree_id TEXT DEFAULT '',
    focused_issue_id TEXT DEFAULT '',
    active_work_session_id TEXT DEFAULT '',
    updated_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY(session_id, worktree_id)
);

CREATE TABLE git_snapshots (
    id TEXT PRIMARY KEY,
    issue_id TEXT NOT NULL,
    event TEXT NOT NULL,
    commit_sha TEXT NOT NULL,
    branch TEXT NOT NULL,
    dirty_files INTEGER DEFAULT 0,
    timestamp DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    FOREIGN KEY (issue_id) REFERENCES issues(id) ON DELETE CASCADE
);
CREATE INDEX idx_git_snapshots_issue ON git_snapshots(issue_id);

CREATE TABLE issue_session_history (
    id TEXT PRIMARY KEY,
    issue_id TEXT NOT NULL,
    session_id TEXT NOT NULL,
    action TEXT NOT NULL,
    created_at DATETIME DEFAULT CURRENT_TIMESTAMP,
    FOREIGN KEY (issue_id) REFERENCES issues(id) ON DELETE CASCADE
);
CREATE INDEX idx_ish_issue ON issue_session_history(issue_id);
CREATE INDEX idx_ish_session ON issue_session_history(session_id);

CREATE TABLE action_log (
    id TEXT NOT NULL PRIMARY KEY,
    session_id TEXT NOT NULL,
    action_type TEXT NOT NULL,
    entity_type TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    previous_data TEXT DEFAULT '',
    new_data TEXT DEFAULT '',
    timestamp DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
    undone INTEGER DEFAULT 0,
    synced_at DATETIME,
    server_seq INTEGER
);
CREATE INDEX idx_action_log_session ON action_log(session_id);
CREATE INDEX idx_action_log_timestamp ON action_log(timestamp);
CREATE INDEX idx_action_log_entity_type ON action_log(entity_id, action_type);

CREATE TABLE sync_state (
    project_id TEXT PRIMARY KEY,
    last_pushed_action_id INTEGER DEFAULT 0,
    last_pulled_server_seq INTEGER DEFAULT 0,
    last_sync_at DATETIME,
    sync_disabled INTEGER DEFAULT 0
);

CREATE TABLE sync_conflicts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    entity_type TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    server_seq INTEGER NOT NULL,
    local_data JSON,
    remote_data JSON,
    overwritten_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX idx_sync_conflicts_entity ON sync_conflicts(entity_type, entity_id);
CREATE INDEX idx_sync_conflicts_time ON sync_conflicts(overwritten_at);
CREATE INDEX idx_sync_conflicts_seq ON sync_conflicts(server_seq);

CREATE TABLE sync_history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    direction TEXT NOT NULL,
    action_type TEXT NOT NULL,
    entity_type TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    server_seq INTEGER,
    device_id TEXT DEFAULT '',
    timestamp DATETIME DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX idx_sync_history_ts ON sync_history(timestamp);

CREATE TABLE sync_skipped_events (
    server_seq INTEGER PRIMARY KEY,
    device_id TEXT NOT NULL DEFAULT '',
    action_type TEXT NOT NULL DEFAULT '',
    entity_type TEXT NOT NULL DEFAULT '',
    entity_id TEXT NOT NULL DEFAULT '',
    reason TEXT NOT NULL,
    error TEXT NOT NULL DEFAULT '',
    payload JSON,
    skipped_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE INDEX idx_sync_skipped_time ON sync_skipped_events(skipped_at);
CREATE INDEX idx_sync_skipped_reason ON sync_skipped_events(reason);

INSERT INTO schema_info (key, value) VALUES ('version', '38');
