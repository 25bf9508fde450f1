-- People on Postgres (acl/src/people.rs): users known by a verified email and/or a GitHub
-- account, their memberships of tenants, invitations, `td auth login`s in progress, GitHub links
-- of projects and the tokens granted from them. Secrets are never stored: codes and link secrets
-- as SHA-256, GitHub tokens sealed by the gateway.

CREATE TABLE users (
    id                  TEXT PRIMARY KEY,
    -- lowercased; NULL until verified
    email               TEXT UNIQUE,
    github_id           BIGINT UNIQUE,
    github_login        TEXT,
    -- the person's GitHub token, sealed (AEAD) by the gateway with its secret key
    github_token_sealed TEXT,
    created_at          TIMESTAMPTZ NOT NULL
);

-- Token-shaped: one role over the tenant's projects (all, or the rows of member_projects).
CREATE TABLE memberships (
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    user_id      TEXT NOT NULL REFERENCES users(id),
    role         TEXT NOT NULL CHECK (role IN ('reader', 'writer', 'owner')),
    all_projects BOOLEAN NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
CREATE INDEX memberships_by_user ON memberships(user_id);

CREATE TABLE member_projects (
    tenant_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    project_id TEXT NOT NULL,
    PRIMARY KEY (tenant_id, user_id, project_id),
    FOREIGN KEY (tenant_id, user_id) REFERENCES memberships(tenant_id, user_id),
    FOREIGN KEY (tenant_id, project_id) REFERENCES projects(tenant_id, id)
);

ALTER TABLE tokens ADD COLUMN user_id TEXT REFERENCES users(id);
CREATE INDEX tokens_by_user ON tokens(user_id);

CREATE TABLE invitations (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    project_id TEXT NOT NULL,
    email      TEXT NOT NULL,
    role       TEXT NOT NULL CHECK (role IN ('reader', 'writer', 'owner')),
    invited_by TEXT NOT NULL,
    status     TEXT NOT NULL CHECK (status IN ('pending', 'accepted', 'declined', 'revoked')),
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    closed_at  TIMESTAMPTZ,
    FOREIGN KEY (tenant_id, project_id) REFERENCES projects(tenant_id, id)
);
CREATE INDEX invitations_by_email ON invitations(email, status);
CREATE INDEX invitations_by_project ON invitations(project_id, created_at);

CREATE TABLE device_logins (
    code_hash        TEXT PRIMARY KEY,
    link_id          TEXT NOT NULL UNIQUE,
    link_secret_hash TEXT NOT NULL,
    email            TEXT NOT NULL,
    device_name      TEXT NOT NULL,
    code_challenge   TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'consumed')),
    created_at       TIMESTAMPTZ NOT NULL,
    expires_at       TIMESTAMPTZ NOT NULL,
    token_id         TEXT REFERENCES tokens(id)
);
CREATE INDEX device_logins_by_expiry ON device_logins(expires_at);

CREATE TABLE github_links (
    project_id  TEXT PRIMARY KEY REFERENCES projects(id),
    repo        TEXT NOT NULL,
    allow_write BOOLEAN NOT NULL
);

CREATE TABLE github_grants (
    token_id   TEXT PRIMARY KEY REFERENCES tokens(id),
    project_id TEXT NOT NULL REFERENCES projects(id),
    user_id    TEXT NOT NULL REFERENCES users(id),
    repo       TEXT NOT NULL,
    checked_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX github_grants_by_check ON github_grants(checked_at);
