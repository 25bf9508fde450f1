//! A control plane that cannot answer is a 503 in td's envelope — never a 404 that would tell a
//! client its project or member is gone — and nothing changes meanwhile.

use crate::support::{Backend, TestServer};

#[test]
fn a_control_plane_outage_answers_503_never_404() {
    let Some(s) = TestServer::start_on(Backend::Postgres, "outage") else {
        return;
    };
    let team = s.team("acme");
    let (p, owner) = (team.project.as_str(), team.admin.token.as_str());
    let member = s.mint(&team.tenant, "write", &[p], None);
    // Both tokens verified and the project looked up while the control plane is up.
    s.get(&format!("/v1/projects/{p}/members"), owner)
        .expect(200);
    s.get(&format!("/v1/projects/{p}/sync/status"), &member.token)
        .expect(200);

    s.set_control_plane_reachable(false);
    let members = format!("/v1/projects/{p}/members");
    s.get(&members, owner).error(503, "internal_error");
    let kick = format!("/v1/projects/{p}/members/{}", member.id);
    s.delete(&kick, owner).error(503, "internal_error");
    s.delete(&format!("/v1/tokens/{}", member.id), owner)
        .error(503, "internal_error");

    s.set_control_plane_reachable(true);
    // Nothing was revoked while the control plane was away.
    crate::support::eventually(
        "the control plane answers again",
        std::time::Duration::from_secs(10),
        || s.get(&members, owner).status == 200,
    );
    let listed = s.get(&members, owner).expect(200);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["user_id"] == member.id.to_string()),
        "{listed}"
    );
    s.get(&format!("/v1/projects/{p}/sync/status"), &member.token)
        .expect(200);
}
