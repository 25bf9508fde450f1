-- The control plane on SQLite: tenants, their projects, tokens (hashes only), the audit log and
-- the revocation generation. Times are RFC 3339 text with six fractional digits and `Z`
-- (sortable). Applied by acl/src/store/sqlite/migrate.rs, tracked in PRAGMA user_version.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
);

CREATE TABLE projects (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    UNIQUE (tenant_id, name),
    -- target of token_projects' foreign key: a token reaches only its own tenant's projects
    UNIQUE (tenant_id, id)
);

CREATE TABLE tokens (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    name         TEXT NOT NULL,
    -- argon2id PHC string of the secret half of the token; the secret itself is never stored
    secret_hash  TEXT NOT NULL,
    -- canonical comma list of the scopes as given (read, write, admin, mint)
    scopes       TEXT NOT NULL,
    -- 1: every project of the tenant; 0: only the rows of token_projects
    all_projects INTEGER NOT NULL CHECK (all_projects IN (0, 1)),
    parent_id    TEXT,
    expires_at   TEXT,
    created_at   TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at   TEXT,
    UNIQUE (tenant_id, id),
    -- a child belongs to its parent's tenant
    FOREIGN KEY (tenant_id, parent_id) REFERENCES tokens(tenant_id, id)
);
CREATE INDEX tokens_by_tenant ON tokens(tenant_id, created_at);
CREATE INDEX tokens_by_parent ON tokens(parent_id);

CREATE TABLE token_projects (
    token_id   TEXT NOT NULL,
    tenant_id  TEXT NOT NULL,
    project_id TEXT NOT NULL,
    PRIMARY KEY (token_id, project_id),
    FOREIGN KEY (tenant_id, token_id) REFERENCES tokens(tenant_id, id),
    FOREIGN KEY (tenant_id, project_id) REFERENCES projects(tenant_id, id)
);

CREATE TABLE audit_log (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    at        TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    subject   TEXT NOT NULL,
    detail    TEXT NOT NULL
);
CREATE INDEX audit_by_tenant ON audit_log(tenant_id, seq);

-- Moves forward with every revocation; verifiers compare it with the value they cached.
CREATE TABLE revocation_generation (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL
);
INSERT INTO revocation_generation (id, generation) VALUES (1, 0);
