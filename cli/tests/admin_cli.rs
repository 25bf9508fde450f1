//! The admin command line as scripts use it: the real `tdsync` binary, every command, on both
//! control-plane backends (SQLite in a temp data dir; Postgres in a per-test database).

#[macro_use]
mod admin_support;

use admin_support::{Plane, finish};
async fn tenants(p: Plane) {
    let id = p.run(&["tenant", "create", "acme"]).ok().line();
    assert!(id.starts_with("t_"), "{id}");
    let json = p.run(&["tenant", "create", "globex", "--json"]).ok().json();
    assert_eq!(json["name"], "globex");
    assert!(json["id"].as_str().unwrap().starts_with("t_"));
    p.run(&["tenant", "create", "acme"])
        .fails_with("a tenant named \"acme\" already exists");
    let listed = p.run(&["tenant", "list"]).ok().stdout;
    assert!(listed.starts_with("ID "), "{listed}");
    assert!(
        listed.contains(&id) && listed.contains("globex"),
        "{listed}"
    );
    let all = p.run(&["tenant", "list", "--json"]).ok().json();
    let names: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["acme", "globex"]);
}

async fn projects(p: Plane) {
    let tenant = p.run(&["tenant", "create", "acme"]).ok().line();
    let web = p
        .run(&[
            "project",
            "create",
            "--tenant",
            &tenant,
            "web",
            "--description",
            "the site",
        ])
        .ok()
        .line();
    assert!(web.starts_with("p_"), "{web}");
    let api = p
        .run(&["project", "create", "--tenant", &tenant, "api", "--json"])
        .ok()
        .json();
    assert_eq!(api["tenant"], tenant.as_str());
    p.run(&["project", "create", "--tenant", &tenant, "web"])
        .fails_with("already has a project named \"web\"");
    let text = p.run(&["project", "list", "--tenant", &tenant]).ok().stdout;
    assert!(text.contains(&web) && text.contains("the site"), "{text}");
    let list = p
        .run(&["project", "list", "--tenant", &tenant, "--json"])
        .ok()
        .json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["id"], web.as_str());
    for key in [
        "id",
        "tenant",
        "name",
        "description",
        "created_at",
        "updated_at",
    ] {
        assert!(list[0].get(key).is_some(), "{key} in {}", list[0]);
    }
    p.run(&["project", "list", "--tenant", "acme"])
        .fails_with(&format!("the tenant named \"acme\" has the id {tenant}"));
    p.run(&["project", "list", "--tenant", "t_nope"])
        .fails_with("no tenant has the id \"t_nope\"");
}

async fn tokens(p: Plane) {
    let tenant = p.run(&["tenant", "create", "acme"]).ok().line();
    let web = p
        .run(&["project", "create", "--tenant", &tenant, "web"])
        .ok()
        .line();
    let minted = p
        .run(&["token", "mint", "--tenant", &tenant, "--scope", "write"])
        .ok();
    let token = minted.line();
    assert!(token.starts_with("tds_") && token.len() == 49, "{token}");
    assert!(
        minted.stderr.contains("shown only once"),
        "{}",
        minted.stderr
    );
    let json = p
        .run(&[
            "token",
            "mint",
            "--tenant",
            &tenant,
            "--scope",
            "read,mint",
            "--project",
            &web,
            "--ttl",
            "12h",
            "--name",
            "viewer",
            "--json",
        ])
        .ok()
        .json();
    for key in ["id", "token", "scopes", "projects", "expires_at"] {
        assert!(json.get(key).is_some(), "{key} in {json}");
    }
    assert_eq!(json["scopes"], serde_json::json!(["read", "mint"]));
    assert_eq!(json["projects"], serde_json::json!([web]));
    assert_eq!(json["name"], "viewer");
    assert!(json["expires_at"].as_str().unwrap().ends_with('Z'));
    let viewer_secret = json["token"].as_str().unwrap().to_string();

    let text = p.run(&["token", "list", "--tenant", &tenant]).ok().stdout;
    let listed = p
        .run(&["token", "list", "--tenant", &tenant, "--json"])
        .ok();
    for secret in [&token, &viewer_secret] {
        assert!(
            !text.contains(secret.as_str()) && !listed.stdout.contains(secret.as_str()),
            "list never shows secrets"
        );
        assert!(
            !listed.stdout.contains(&secret[17..]),
            "nor the secret half"
        );
    }
    let all = listed.json();
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0]["projects"], "all");
    assert_eq!(all[1]["state"], "active");
    assert!(
        text.contains("viewer") && text.contains("read,mint"),
        "{text}"
    );

    let id = all[0]["id"].as_str().unwrap();
    assert_eq!(
        p.run(&["token", "revoke", id]).ok().line(),
        format!("revoked {id}")
    );
    assert_eq!(
        p.run(&["token", "revoke", id]).ok().line(),
        format!("token {id} was already revoked")
    );
    assert_eq!(
        p.run(&["token", "revoke", id, "--json"]).ok().json()["revoked"],
        serde_json::json!([])
    );
    p.run(&["token", "revoke", "zzzzzzzzzzzz"])
        .fails_with("token zzzzzzzzzzzz not found");
    p.run(&["token", "revoke", "nope"])
        .fails_with("invalid token id");
    let after = p
        .run(&["token", "list", "--tenant", &tenant, "--json"])
        .ok()
        .json();
    assert_eq!(after[0]["state"], "revoked");
    assert!(after[0]["revoked_at"].is_string());
}

async fn agents_mint_children(p: Plane) {
    let tenant = p.run(&["tenant", "create", "acme"]).ok().line();
    let web = p
        .run(&["project", "create", "--tenant", &tenant, "web"])
        .ok()
        .line();
    let api = p
        .run(&["project", "create", "--tenant", &tenant, "api"])
        .ok()
        .line();
    let mint = p
        .run(&[
            "token",
            "mint",
            "--tenant",
            &tenant,
            "--scope",
            "write,mint",
            "--project",
            &web,
            "--ttl",
            "7d",
            "--name",
            "agent-mint",
        ])
        .ok()
        .line();
    let env = [("AGENT_MINT_TOKEN", mint.as_str())];
    let child = p
        .run_with(
            &[
                "token",
                "mint",
                "--parent-env",
                "AGENT_MINT_TOKEN",
                "--scope",
                "write",
                "--project",
                &web,
                "--ttl",
                "2h",
                "--json",
            ],
            &env,
        )
        .ok()
        .json();
    assert_eq!(child["projects"], serde_json::json!([web]));
    assert_eq!(child["scopes"], serde_json::json!(["write"]));
    assert_eq!(child["tenant"], tenant.as_str());
    assert!(child["parent"].is_string());
    // Asking for more than the parent has is refused, saying what exceeds.
    let cases: [(&[&str], &str); 4] = [
        (&["--scope", "admin"], "scope admin is not granted"),
        (
            &["--scope", "read", "--project", &api],
            &format!("project {api} is not among the parent's projects"),
        ),
        (
            &["--scope", "read", "--project", "p_nowhere1"],
            "p_nowhere1 is not among the parent's projects",
        ),
        (&["--scope", "read", "--ttl", "8d"], "after the parent"),
    ];
    for (extra, message) in cases {
        let mut args = vec!["token", "mint", "--parent-env", "AGENT_MINT_TOKEN"];
        args.extend_from_slice(extra);
        p.run_with(&args, &env)
            .fails_with(message)
            .fails_with("exceed its parent");
    }
    // What is not asked is inherited: the parent's project and expiry.
    let inherited = p
        .run_with(
            &[
                "token",
                "mint",
                "--parent-env",
                "AGENT_MINT_TOKEN",
                "--scope",
                "read",
                "--json",
            ],
            &env,
        )
        .ok()
        .json();
    assert_eq!(inherited["projects"], serde_json::json!([web]));
    assert!(inherited["expires_at"].is_string());
    // A child without mint cannot mint; a missing variable and a bad token are named.
    let no_mint = child["token"].as_str().unwrap();
    p.run_with(
        &["token", "mint", "--parent-env", "CHILD", "--scope", "read"],
        &[("CHILD", no_mint)],
    )
    .fails_with("needs the mint scope");
    p.run(&[
        "token",
        "mint",
        "--parent-env",
        "UNSET_VAR_XYZ",
        "--scope",
        "read",
    ])
    .fails_with("UNSET_VAR_XYZ is not set");
    p.run_with(
        &["token", "mint", "--parent-env", "BAD", "--scope", "read"],
        &[("BAD", "hello")],
    )
    .fails_with("the token in BAD cannot be used: not a tdsync token");
    // The parent's use is recorded; revoking the parent revokes its children at once.
    let list = p
        .run(&["token", "list", "--tenant", &tenant, "--json"])
        .ok()
        .json();
    assert!(list[0]["last_used_at"].is_string(), "{}", list[0]);
    let parent_id = list[0]["id"].as_str().unwrap();
    let revoked = p.run(&["token", "revoke", parent_id]).ok().stdout;
    assert_eq!(revoked.lines().count(), 3, "{revoked}");
    assert!(
        revoked.contains(&format!("(minted from {parent_id})")),
        "{revoked}"
    );
    p.run_with(
        &[
            "token",
            "mint",
            "--parent-env",
            "AGENT_MINT_TOKEN",
            "--scope",
            "read",
        ],
        &env,
    )
    .fails_with("was revoked");
}

async fn audit(p: Plane) {
    let tenant = p.run(&["tenant", "create", "acme"]).ok().line();
    p.run(&["project", "create", "--tenant", &tenant, "web"])
        .ok();
    let token = p
        .run(&["token", "mint", "--tenant", &tenant, "--scope", "read"])
        .ok()
        .line();
    let id = &token[4..16];
    p.run(&["token", "revoke", id]).ok();
    let log = p
        .run(&["audit", "list", "--tenant", &tenant, "--json"])
        .ok()
        .json();
    let actions: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "tenant_created",
            "project_created",
            "token_minted",
            "token_revoked"
        ]
    );
    assert!(log.as_array().unwrap().iter().all(|e| e["actor"] == "cli"));
    let text = p.run(&["audit", "list", "--tenant", &tenant]).ok().stdout;
    assert!(
        text.contains("token_revoked") && text.contains(id) && !text.contains(&token),
        "{text}"
    );
}

async fn options_and_errors(p: Plane) {
    // Global options after the subcommand work as well as before.
    let mut args = vec!["tenant", "create", "late"];
    let global: Vec<&str> = p.global.iter().map(String::as_str).collect();
    args.extend(&global);
    let mut cmd = p.command();
    cmd.args(&args);
    let id = finish(cmd.output().unwrap()).ok().line();
    let listed = p.run(&["tenant", "list"]).ok().stdout;
    assert!(listed.contains(&id), "{listed}");
    // The same control plane through the environment.
    let (var, value) = match global[0] {
        "--data-dir" => ("TDSYNC_DATA_DIR", global[1]),
        _ => ("TDSYNC_CONTROL_PLANE", global[1]),
    };
    let mut cmd = p.command();
    cmd.args(["tenant", "list"]).env(var, value);
    assert!(finish(cmd.output().unwrap()).ok().stdout.contains(&id));

    let bad: [(&[&str], &str); 8] = [
        (
            &["token", "mint", "--tenant", &id, "--scope", "sync"],
            "unknown scope \"sync\"",
        ),
        (
            &[
                "token", "mint", "--tenant", &id, "--scope", "read", "--ttl", "5x",
            ],
            "invalid duration \"5x\"",
        ),
        (
            &[
                "token", "mint", "--tenant", &id, "--scope", "read", "--ttl", "0m",
            ],
            "it is zero",
        ),
        (
            &["token", "mint", "--scope", "read"],
            "--tenant <ID>|--parent-env <VAR>",
        ),
        (
            &[
                "token",
                "mint",
                "--tenant",
                &id,
                "--parent-env",
                "X",
                "--scope",
                "read",
            ],
            "cannot be used with",
        ),
        (
            &["token", "mint", "--tenant", "t_missing", "--scope", "read"],
            "no tenant has the id \"t_missing\"",
        ),
        (
            &[
                "token",
                "mint",
                "--tenant",
                &id,
                "--scope",
                "read",
                "--project",
                "p_missing",
            ],
            "project p_missing in tenant",
        ),
        (
            &["project", "create", "--tenant", &id, " "],
            "project name is empty",
        ),
    ];
    for (args, message) in bad {
        p.run(args).fails_with(message);
    }
    let mut cmd = p.command();
    cmd.args(["--control-plane", "mysql://x", "tenant", "list"]);
    finish(cmd.output().unwrap()).fails_with("use sqlite://PATH or postgres://");
    let help = p.run(&["token", "mint", "--help"]).ok().stdout;
    for words in [
        "--parent-env <VAR>",
        "--ttl <DURATION>",
        "30m, 12h or 7d",
        "implies read",
    ] {
        assert!(help.contains(words), "{words} in {help}");
    }
}

async fn default_data_dir_and_sqlite_url(p: Plane) {
    if p.global[0] != "--data-dir" {
        return;
    }
    // No option at all: ./tdsync-data/control-plane.db in the working directory.
    let mut cmd = p.command();
    cmd.args(["tenant", "create", "here"]);
    finish(cmd.output().unwrap()).ok();
    assert!(p.cwd.path().join("tdsync-data/control-plane.db").exists());
    // An explicit sqlite:// URL to the same file sees the same tenants.
    let url = format!(
        "sqlite://{}",
        p.cwd.path().join("tdsync-data/control-plane.db").display()
    );
    let mut cmd = p.command();
    cmd.args(["tenant", "list", "--control-plane", &url]);
    assert!(finish(cmd.output().unwrap()).ok().stdout.contains("here"));
    // A file that is not a control plane is refused, not written into.
    std::fs::write(p.cwd.path().join("notes.db"), b"not sqlite at all, just text....................................................................................").unwrap();
    let url = format!("sqlite://{}", p.cwd.path().join("notes.db").display());
    let mut cmd = p.command();
    cmd.args(["tenant", "list", "--control-plane", &url]);
    finish(cmd.output().unwrap()).fails_with("cannot open the control plane");
}

both_backends!(
    tenants,
    projects,
    tokens,
    agents_mint_children,
    audit,
    options_and_errors,
    default_data_dir_and_sqlite_url,
);
