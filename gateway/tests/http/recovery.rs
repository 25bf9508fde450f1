//! tdsync's recovery routes: the conflict log (both versions of a clobbered value) with a
//! restore that syncs like any event, and every entity's history with its state as of a seq.

use serde_json::{Value, json};

use crate::support::{
    TestServer,
    events::{create, event, issue, push, rename, with},
};

#[test]
fn a_clobbered_value_is_listed_with_both_versions_and_restored_by_an_event() {
    let s = TestServer::start();
    let team = s.team("acme");
    let (p, t) = (team.project.as_str(), team.admin.token.as_str());
    let base = issue("td-1", "base");
    s.push(p, t, &push("dev-a", vec![create(1, "td-1", "base")]))
        .expect(200);
    s.push(p, t, &push("dev-a", vec![rename(2, &base, "alice's")]))
        .expect(200);
    // Bob renames from the base he had: alice's title is clobbered.
    s.push(p, t, &push("dev-b", vec![rename(1, &base, "bob's")]))
        .expect(200);

    let conflicts = s.get(&format!("/v1/projects/{p}/conflicts"), t).expect(200);
    let list = conflicts.as_array().unwrap();
    assert_eq!(list.len(), 1, "{conflicts:#}");
    let c = &list[0];
    assert_eq!(c["entity_type"], "issues");
    assert_eq!(c["entity_id"], "td-1");
    assert_eq!(c["fields"], json!(["title"]));
    assert_eq!(c["clobbered"]["title"], "alice's");
    assert_eq!(
        (c["clobbered_seq"].clone(), c["clobbered_device"].clone()),
        (json!(2), json!("dev-a"))
    );
    assert_eq!(c["winner"]["title"], "bob's");
    assert_eq!(
        (c["winning_seq"].clone(), c["winning_device"].clone()),
        (json!(3), json!("dev-b"))
    );
    assert_eq!(c["restored_by_seq"], Value::Null);
    let cid = c["id"].as_i64().unwrap();

    // Filters.
    let filtered = |q: &str| s.get(&format!("/v1/projects/{p}/conflicts?{q}"), t);
    assert_eq!(
        filtered("entity_type=issues&entity_id=td-1")
            .expect(200)
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        filtered("entity_type=issue&entity_id=td-1")
            .expect(200)
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        filtered("entity_type=issues&entity_id=td-2").expect(200),
        json!([])
    );
    assert_eq!(filtered(&format!("after={cid}")).expect(200), json!([]));
    filtered("entity_type=issues").error(400, "bad_request");
    filtered("entity_type=widgets&entity_id=x").error(400, "bad_request");
    filtered("limit=abc").error(400, "bad_request");

    // A reader may look but not restore.
    let reader = s.mint(&team.tenant, "read", &[], None);
    s.get(&format!("/v1/projects/{p}/conflicts"), &reader.token)
        .expect(200);
    let restore = format!("/v1/projects/{p}/conflicts/{cid}/restore");
    s.post(&restore, &reader.token, &json!({}))
        .error(403, "insufficient_scope");
    assert_eq!(s.event_count(&team.tenant, p), 3);
    s.post(
        &format!("/v1/projects/{p}/conflicts/999/restore"),
        t,
        &json!({}),
    )
    .error(404, "not_found");
    s.post(
        &format!("/v1/projects/{p}/conflicts/one/restore"),
        t,
        &json!({}),
    )
    .error(400, "bad_request");

    let restored = s.post(&restore, t, &json!({})).expect(200);
    assert_eq!(
        restored,
        json!({"conflict_id": cid, "server_seq": 4, "action_type": "update",
               "entity_type": "issues", "entity_id": "td-1"})
    );
    // The restore is an event every client pulls.
    let page = s.pull(p, t, "after_server_seq=3").expect(200);
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["server_seq"], 4);
    assert_eq!(
        (
            events[0]["entity_type"].as_str(),
            events[0]["entity_id"].as_str()
        ),
        (Some("issues"), Some("td-1"))
    );
    assert_eq!(events[0]["payload"]["new_data"]["title"], "alice's");
    let status = s.status(p, t);
    assert_eq!((status.event_count, status.last_server_seq), (4, 4));
    let after = s.get(&format!("/v1/projects/{p}/conflicts"), t).expect(200);
    assert_eq!(after[0]["restored_by_seq"], 4);
}

#[test]
fn history_lists_an_entitys_events_in_order_and_its_state_at_any_seq() {
    let s = TestServer::start();
    let team = s.team("acme");
    let (p, t) = (team.project.as_str(), team.admin.token.as_str());
    let v1 = issue("td-1", "v1");
    let v2 = with(v1.clone(), "title", json!("v2"));
    s.push(
        p,
        t,
        &push(
            "dev-a",
            vec![
                create(1, "td-1", "v1"),
                create(2, "td-2", "other"),
                rename(3, &v1, "v2"),
                event(4, "soft_delete", "issues", "td-1", json!({}), v2),
            ],
        ),
    )
    .expect(200);
    let path = format!("/v1/projects/{p}/history/issues/td-1");
    let history = s.get(&path, t).expect(200);
    assert_eq!(
        (
            history["entity_type"].as_str(),
            history["entity_id"].as_str()
        ),
        (Some("issues"), Some("td-1"))
    );
    assert!(
        history.get("state_at").is_none(),
        "no ?at, no state_at: {history}"
    );
    let events = history["events"].as_array().unwrap();
    let seqs: Vec<i64> = events
        .iter()
        .map(|e| e["server_seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 3, 4]);
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action_type"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["create", "update", "soft_delete"]);
    assert_eq!(
        (
            events[1]["before"]["title"].as_str(),
            events[1]["after"]["title"].as_str()
        ),
        (Some("v1"), Some("v2"))
    );
    assert_eq!(events[0]["device_id"], "dev-a");
    // td's singular name works; the answer is canonical.
    assert_eq!(
        s.get(&format!("/v1/projects/{p}/history/issue/td-1"), t)
            .expect(200),
        history
    );

    let at = |seq: i64| s.get(&format!("{path}?at={seq}"), t).expect(200)["state_at"].clone();
    assert_eq!(at(0), Value::Null, "before its create it did not exist");
    assert_eq!(at(1)["title"], "v1");
    assert_eq!(at(2)["title"], "v1");
    assert_eq!(at(3)["title"], "v2");
    assert_eq!(at(3)["deleted_at"], Value::Null);
    assert_ne!(at(4)["deleted_at"], Value::Null);
    // A never-seen entity has an empty history.
    let none = s
        .get(&format!("/v1/projects/{p}/history/issues/td-404"), t)
        .expect(200);
    assert_eq!(none["events"], json!([]));
    s.get(&format!("/v1/projects/{p}/history/widgets/td-1"), t)
        .error(400, "bad_request");
    s.get(&format!("{path}?at=later"), t)
        .error(400, "bad_request");
}
