-- The control plane on Postgres: tenants, their projects, tokens (hashes only), the audit log and
-- the revocation generation. Applied by sqlx's migrator (acl/src/store/postgres/mod.rs), which
-- takes an advisory lock so several gateways can start at once.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE projects (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
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
    -- true: every project of the tenant; false: only the rows of token_projects
    all_projects BOOLEAN NOT NULL,
    parent_id    TEXT,
    expires_at   TIMESTAMPTZ,
    created_at   TIMESTAMPTZ NOT NULL,
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ,
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
    seq       BIGSERIAL PRIMARY KEY,
    at        TIMESTAMPTZ NOT NULL,
    tenant_id TEXT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    subject   TEXT NOT NULL,
    detail    TEXT NOT NULL
);
CREATE INDEX audit_by_tenant ON audit_log(tenant_id, seq);

-- Moves forward with every revocation, announced on channel tdsync_acl_revocations.
CREATE TABLE revocation_generation (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation BIGINT NOT NULL
);
INSERT INTO revocation_generation (id, generation) VALUES (1, 0);
