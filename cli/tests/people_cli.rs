//! The admin commands for people, as scripts use them: the real `tdsync` binary (`invite`,
//! `user`, `project link-github`) on both control-plane backends (SQLite in a temp data dir;
//! Postgres in a per-test database). Members exist only once a login accepts an invitation,
//! which takes the server: here `user` is covered for an empty tenant and unknown people.

#[macro_use]
mod admin_support;

use admin_support::Plane;
use serde_json::Value;

impl Plane {
    /// A new tenant and one project of it: (tenant id, project id).
    fn tenant_with_project(&self, tenant: &str, project: &str) -> (String, String) {
        let t = self.run(&["tenant", "create", tenant]).ok().line();
        let p = self
            .run(&["project", "create", "--tenant", &t, project])
            .ok()
            .line();
        (t, p)
    }

    fn invitations(&self, tenant: &str) -> Vec<Value> {
        let listed = self
            .run(&["invite", "list", "--tenant", tenant, "--json"])
            .ok()
            .json();
        listed.as_array().unwrap().clone()
    }

    fn audit_actions(&self, tenant: &str) -> Vec<String> {
        let log = self
            .run(&["audit", "list", "--tenant", tenant, "--json"])
            .ok()
            .json();
        log.as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap().to_string())
            .collect()
    }
}

/// The data rows of a table (the header dropped).
fn rows(table: &str) -> Vec<&str> {
    let mut lines = table.lines();
    let header = lines.next().unwrap_or_default();
    assert!(header.starts_with("ID "), "not a table: {table}");
    lines.collect()
}

async fn invitation_lifecycle(p: Plane) {
    let (tenant, web) = p.tenant_with_project("acme", "web");
    let created = p
        .run(&[
            "invite",
            "create",
            "--project",
            &web,
            "--email",
            " Ada@Example.com ",
        ])
        .ok();
    // The id alone on stdout, for scripts; what happens next on stderr.
    let id = created.line();
    assert!(id.starts_with("inv_") && !id.contains(' '), "{id}");
    for words in [
        "invited ada@example.com to project web",
        "as writer",
        "expires at",
        "no email was sent: tell ada@example.com, or create invitations through the server \
         (`td sync-project invite`)",
        "TD_FEATURE_SYNC_CLI=1",
        "td auth login",
        "td sync-project join web",
    ] {
        assert!(
            created.stderr.contains(words),
            "{words:?} in {}",
            created.stderr
        );
    }

    let listed = p.invitations(&tenant);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let inv = &listed[0];
    assert_eq!(inv["id"], id.as_str());
    assert_eq!(inv["project"], web.as_str());
    assert_eq!(inv["tenant"], tenant.as_str());
    assert_eq!(inv["email"], "ada@example.com");
    assert_eq!(inv["role"], "writer");
    assert_eq!(inv["status"], "pending");
    assert_eq!(inv["invited_by"], "cli");
    assert!(inv["closed_at"].is_null(), "{inv}");
    assert!(inv.get("email_sent").is_none(), "{inv}");
    let text = p.run(&["invite", "list", "--tenant", &tenant]).ok().stdout;
    let table = rows(&text);
    assert_eq!(table.len(), 1, "{text}");
    for cell in [
        id.as_str(),
        &web,
        "ada@example.com",
        "writer",
        "pending",
        "cli",
    ] {
        assert!(table[0].contains(cell), "{cell} in {text}");
    }

    // --json, another role, and the server's URL filled into the invitee's lines.
    let reader = p
        .run(&[
            "invite",
            "create",
            "--project",
            &web,
            "--email",
            "bob@example.com",
            "--role",
            "reader",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(reader["role"], "reader");
    assert_eq!(reader["status"], "pending");
    assert_eq!(reader["email_sent"], false);
    let bob = reader["id"].as_str().unwrap().to_string();
    let with_url = p
        .run_with(
            &[
                "invite",
                "create",
                "--project",
                &web,
                "--email",
                "cy@example.com",
                "--role",
                "owner",
            ],
            &[("TDSYNC_PUBLIC_URL", "https://td.example.com/")],
        )
        .ok();
    assert!(
        with_url
            .stderr
            .contains("export TD_SYNC_URL=https://td.example.com TD_FEATURE_SYNC_CLI=1"),
        "{}",
        with_url.stderr
    );
    assert_eq!(p.invitations(&tenant).len(), 3);
    // --project narrows the list; newest first.
    let api = p
        .run(&["project", "create", "--tenant", &tenant, "api"])
        .ok()
        .line();
    let only_api = p
        .run(&[
            "invite",
            "list",
            "--tenant",
            &tenant,
            "--project",
            &api,
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(only_api, serde_json::json!([]));
    let only_web = p
        .run(&[
            "invite",
            "list",
            "--tenant",
            &tenant,
            "--project",
            &web,
            "--json",
        ])
        .ok()
        .json();
    let emails: Vec<&str> = only_web
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["email"].as_str().unwrap())
        .collect();
    assert_eq!(
        emails,
        ["cy@example.com", "bob@example.com", "ada@example.com"]
    );

    // Revoke: the list says so; revoking again changes nothing and says so.
    let revoked = p.run(&["invite", "revoke", "--tenant", &tenant, &id]).ok();
    assert!(
        revoked.stdout.contains(&format!("revoked invitation {id}")),
        "{}",
        revoked.stdout
    );
    let after = p.invitations(&tenant);
    let ada = after.iter().find(|i| i["id"] == id.as_str()).unwrap();
    assert_eq!(ada["status"], "revoked");
    assert!(ada["closed_at"].is_string(), "{ada}");
    let still = after.iter().find(|i| i["id"] == bob.as_str()).unwrap();
    assert_eq!(still["status"], "pending");
    let text = p.run(&["invite", "list", "--tenant", &tenant]).ok().stdout;
    let line = rows(&text)
        .into_iter()
        .find(|l| l.starts_with(&id))
        .unwrap();
    assert!(line.contains("revoked"), "{text}");
    let again = p
        .run(&["invite", "revoke", "--tenant", &tenant, &id, "--json"])
        .ok()
        .json();
    assert_eq!(again["status"], "revoked");
    let actions = p.audit_actions(&tenant);
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "invitation_created")
            .count(),
        3,
        "{actions:?}"
    );
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "invitation_revoked")
            .count(),
        1,
        "{actions:?}"
    );
}

async fn invitation_refusals(p: Plane) {
    let (tenant, web) = p.tenant_with_project("acme", "web");
    let (other_tenant, other) = p.tenant_with_project("globex", "site");
    let bad: [(&[&str], &str); 6] = [
        (
            &["invite", "create", "--project", &web, "--email", "ada"],
            "\"ada\" is not an email address",
        ),
        (
            &[
                "invite",
                "create",
                "--project",
                &web,
                "--email",
                "ada@example",
            ],
            "\"ada@example\" is not an email address",
        ),
        (
            &[
                "invite",
                "create",
                "--project",
                &web,
                "--email",
                "ada@example.com",
                "--role",
                "admin",
            ],
            "unknown role \"admin\": use reader, writer or owner",
        ),
        (
            &[
                "invite",
                "create",
                "--project",
                "p_nope",
                "--email",
                "ada@example.com",
            ],
            "no project has the id \"p_nope\"",
        ),
        (
            &[
                "invite",
                "create",
                "--project",
                "../x",
                "--email",
                "ada@example.com",
            ],
            "invalid project id \"../x\"",
        ),
        (
            &["invite", "create", "--email", "ada@example.com"],
            "--project <ID>",
        ),
    ];
    for (args, message) in bad {
        p.run(args).fails_with(message);
    }
    // Nothing was created by any of them.
    assert_eq!(p.invitations(&tenant), Vec::<Value>::new());
    assert_eq!(p.invitations(&other_tenant), Vec::<Value>::new());
    assert!(
        !p.audit_actions(&tenant)
            .contains(&"invitation_created".to_string())
    );

    // Listing and revoking name what is wrong.
    p.run(&["invite", "list", "--tenant", &tenant, "--project", &other])
        .fails_with(&format!("project {other} belongs to tenant {other_tenant}"));
    p.run(&["invite", "list", "--tenant", "t_nope"])
        .fails_with("no tenant has the id \"t_nope\"");
    p.run(&["invite", "revoke", "--tenant", &tenant, "inv_000000000000"])
        .fails_with(&format!(
            "no invitation inv_000000000000 in tenant {tenant}"
        ));
    p.run(&["invite", "revoke", "--tenant", &tenant, "x_1"])
        .fails_with("invalid invitation id \"x_1\"");
    // Another tenant's invitation is not reachable through this one.
    let theirs = p
        .run(&[
            "invite",
            "create",
            "--project",
            &other,
            "--email",
            "ada@example.com",
        ])
        .ok()
        .line();
    p.run(&["invite", "revoke", "--tenant", &tenant, &theirs])
        .fails_with(&format!("no invitation {theirs} in tenant {tenant}"));
    assert_eq!(p.invitations(&other_tenant)[0]["status"], "pending");

    let help = p.run(&["invite", "create", "--help"]).ok().stdout;
    for words in [
        "--role <ROLE>",
        "[default: writer]",
        "reader",
        "owner",
        "td auth login",
        "No email is sent",
        "td sync-project invite",
    ] {
        assert!(help.contains(words), "{words} in {help}");
    }
}

async fn github_links(p: Plane) {
    let (tenant, web) = p.tenant_with_project("acme", "web");
    let github_of = |p: &Plane| -> Value {
        let listed = p
            .run(&["project", "list", "--tenant", &tenant, "--json"])
            .ok()
            .json();
        listed[0]["github"].clone()
    };
    assert!(github_of(&p).is_null());

    let linked = p
        .run(&[
            "project",
            "link-github",
            "--project",
            &web,
            "--repo",
            "octo/repo",
        ])
        .ok();
    assert!(
        linked.stdout.contains("linked project web") && linked.stdout.contains("octo/repo"),
        "{}",
        linked.stdout
    );
    assert_eq!(
        github_of(&p),
        serde_json::json!({"repo": "octo/repo", "allow_write": false})
    );
    let text = p.run(&["project", "list", "--tenant", &tenant]).ok().stdout;
    assert!(
        text.lines().next().unwrap().contains("GITHUB") && rows(&text)[0].contains("octo/repo"),
        "{text}"
    );

    // GitHub's rules, checked before anything is written.
    let too_long_owner = format!("{}/x", "o".repeat(40));
    let too_long_name = format!("octo/{}", "n".repeat(101));
    for bad in [
        "octo/../x",
        "-bad/x",
        "a/b/c",
        "bad-/x",
        "a--b/x",
        "octo/..",
        "octo/.",
        "octo/",
        "/x",
        "octo",
        "octo/a b",
        "oc_to/x",
        too_long_owner.as_str(),
        too_long_name.as_str(),
    ] {
        // `--repo=…`: `--repo -bad/x` would read as a flag.
        p.run(&[
            "project",
            "link-github",
            "--project",
            &web,
            &format!("--repo={bad}"),
        ])
        .fails_with(&format!("{bad:?} is not a GitHub repository"));
    }
    assert_eq!(github_of(&p)["repo"], "octo/repo");
    // The longest names GitHub allows are fine.
    let longest = format!("{}/{}", "o".repeat(39), "n".repeat(100));
    for good in ["a-b/x.y_z-1", longest.as_str()] {
        p.run(&["project", "link-github", "--project", &web, "--repo", good])
            .ok();
        assert_eq!(github_of(&p)["repo"], good);
    }

    // Pushing may grant write when asked.
    p.run(&[
        "project",
        "link-github",
        "--project",
        &web,
        "--repo",
        "octo/repo",
        "--allow-write",
    ])
    .ok();
    assert_eq!(
        github_of(&p),
        serde_json::json!({"repo": "octo/repo", "allow_write": true})
    );
    let text = p.run(&["project", "list", "--tenant", &tenant]).ok().stdout;
    assert!(rows(&text)[0].contains("octo/repo (push writes)"), "{text}");

    // Options that make no sense together are refused.
    p.run(&["project", "link-github", "--project", &web])
        .fails_with("--repo <OWNER/NAME>|--unlink");
    p.run(&[
        "project",
        "link-github",
        "--project",
        &web,
        "--repo",
        "octo/repo",
        "--unlink",
    ])
    .fails_with("cannot be used with");
    p.run(&[
        "project",
        "link-github",
        "--project",
        &web,
        "--unlink",
        "--allow-write",
    ])
    .fails_with("cannot be used with");
    p.run(&[
        "project",
        "link-github",
        "--project",
        "p_nope",
        "--repo",
        "octo/repo",
    ])
    .fails_with("no project has the id \"p_nope\"");
    assert_eq!(github_of(&p)["allow_write"], true);

    // Unlink, then unlinking again changes nothing.
    let unlinked = p
        .run(&["project", "link-github", "--project", &web, "--unlink"])
        .ok();
    assert!(
        unlinked.stdout.contains("unlinked project web") && unlinked.stdout.contains("octo/repo"),
        "{}",
        unlinked.stdout
    );
    assert!(github_of(&p).is_null());
    let text = p.run(&["project", "list", "--tenant", &tenant]).ok().stdout;
    assert!(!text.contains("octo/repo"), "{text}");
    let before = p.audit_actions(&tenant).len();
    let again = p
        .run(&["project", "link-github", "--project", &web, "--unlink"])
        .ok();
    assert!(again.stdout.contains("not linked"), "{}", again.stdout);
    assert_eq!(p.audit_actions(&tenant).len(), before);
    // Every change was audited: octo/repo, two good names, write, unlink.
    let links = p
        .audit_actions(&tenant)
        .into_iter()
        .filter(|a| a == "github_linked")
        .count();
    assert_eq!(links, 5);

    let help = p.run(&["project", "link-github", "--help"]).ok().stdout;
    for words in [
        "--repo <OWNER/NAME>",
        "--allow-write",
        "--unlink",
        "read-only",
    ] {
        assert!(help.contains(words), "{words} in {help}");
    }
}

async fn users_of_an_empty_tenant(p: Plane) {
    let (tenant, web) = p.tenant_with_project("acme", "web");
    let json = p
        .run(&["user", "list", "--tenant", &tenant, "--json"])
        .ok()
        .json();
    assert_eq!(json, serde_json::json!([]));
    let text = p.run(&["user", "list", "--tenant", &tenant]).ok();
    assert!(rows(&text.stdout).is_empty(), "{}", text.stdout);
    for column in ["EMAIL", "GITHUB", "ROLE", "PROJECTS", "MEMBER SINCE"] {
        assert!(text.stdout.contains(column), "{column} in {}", text.stdout);
    }
    assert!(text.stderr.contains("no members yet"), "{}", text.stderr);
    p.run(&["user", "list", "--tenant", "t_nope"])
        .fails_with("no tenant has the id \"t_nope\"");

    // Removing someone unknown names them and changes nothing.
    p.run(&["user", "remove", "--tenant", &tenant, "nobody@example.com"])
        .fails_with("no person \"nobody@example.com\"");
    p.run(&["user", "remove", "--tenant", &tenant, "u_000000000000"])
        .fails_with("no person \"u_000000000000\"");
    p.run(&["user", "remove", "--tenant", "t_nope", "nobody@example.com"])
        .fails_with("no tenant has the id \"t_nope\"");
    // Someone only invited is not a person yet: the error says how to take the invitation back.
    let inv = p
        .run(&[
            "invite",
            "create",
            "--project",
            &web,
            "--email",
            "ada@example.com",
        ])
        .ok()
        .line();
    p.run(&["user", "remove", "--tenant", &tenant, "Ada@Example.com"])
        .fails_with(&format!("ada@example.com is only invited ({inv})"))
        .fails_with("tdsync invite revoke");
    assert_eq!(p.invitations(&tenant)[0]["status"], "pending");
    assert!(
        !p.audit_actions(&tenant)
            .contains(&"member_removed".to_string())
    );

    let help = p.run(&["user", "remove", "--help"]).ok().stdout;
    for words in ["u_", "email", "revoked"] {
        assert!(help.contains(words), "{words} in {help}");
    }
}

both_backends!(
    invitation_lifecycle,
    invitation_refusals,
    github_links,
    users_of_an_empty_tenant,
);
