//! Dependency cycles of three or more issues: the one case td's cycle rule cannot settle alike
//! on every replica.
//!
//! td's rule (`checkAndResolveCyclicDependency`, [`Applier`]'s `cycle_loses`) weighs an incoming
//! `issue → depends_on` edge that closes a cycle against its *reverse* edge only. For a pair
//! (a→b against b→a) every replica makes the same choice whatever the order. When the path back
//! is longer, the reverse edge does not exist, and which edge survives depends on which edge a
//! replica saw last: the writer of a cycle-closing edge applied it locally before pulling the
//! other edges of the cycle, so it judges them, not its own edge, and keeps a different set.
//!
//! This module finds such a cycle before an edge is applied, so that the server can log a repair
//! (see `tenants`' push): the closing edge removed, and the edges of the paths it closed written
//! again, which every replica then applies in the same order.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use rusqlite::Connection;
use serde_json::Value;
use tdsync_protocol::{ActionType, EntityType, Envelope};

use crate::{
    apply::{Applier, Event},
    failure::ApplyError,
    value::{Row, read_row},
};

/// A dependency create that closes a cycle of three or more issues.
#[derive(Debug, Clone)]
pub struct LongCycle {
    /// The closing edge's row image (the event's `new_data`).
    pub closing: serde_json::Map<String, Value>,
    /// The `depends_on` rows on every path from the closing edge's `depends_on_id` back to its
    /// `issue_id`, as stored before the closing edge is applied, in id order.
    pub path_edges: Vec<Row>,
}

impl Applier {
    /// Whether `ev`, a dependency create about to be applied to `conn`, closes a cycle that is
    /// longer than a pair: a `depends_on` path from its `depends_on_id` back to its `issue_id`
    /// other than the single reverse edge. The walk follows `depends_on` edges only, as td's.
    /// None for every other event and for edges that close no cycle or only a pair.
    pub fn long_cycle(
        &self,
        conn: &Connection,
        ev: &Event<'_>,
    ) -> Result<Option<LongCycle>, ApplyError> {
        if EntityType::parse(ev.entity_type) != Some(EntityType::IssueDependencies)
            || ActionType::parse_canonical(ev.action_type) != Some(ActionType::Create)
        {
            return Ok(None);
        }
        let Some(table) = self.schema().table(EntityType::IssueDependencies) else {
            return Ok(None);
        };
        let Ok(env) = Envelope::parse(EntityType::IssueDependencies, ev.payload) else {
            return Ok(None);
        };
        let field = |k: &str| env.new_data.get(k).and_then(Value::as_str).unwrap_or("");
        let (issue, depends_on) = (field("issue_id").to_string(), field("depends_on_id"));
        if issue.is_empty() || depends_on.is_empty() || issue == depends_on {
            return Ok(None);
        }
        let err = |e| ApplyError::sql(format!("cycle walk {}/{}", table.name(), ev.entity_id), e);
        // Forward from depends_on, never past issue: every edge on a path back to issue is
        // among the edges seen here (the closing edge itself leaves issue, so it is not).
        let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        let mut seen = HashSet::new();
        let mut stack = vec![depends_on.to_string()];
        {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT depends_on_id, id FROM issue_dependencies \
                     WHERE issue_id = ?1 AND relation_type = 'depends_on'",
                )
                .map_err(err)?;
            while let Some(node) = stack.pop() {
                if node == issue || !seen.insert(node.clone()) {
                    continue;
                }
                let next: Vec<(String, String)> = stmt
                    .query_map([&node], |r| Ok((r.get(0)?, r.get(1)?)))
                    .and_then(|rows| rows.collect())
                    .map_err(err)?;
                stack.extend(next.iter().map(|(to, _)| to.clone()));
                out.insert(node, next);
            }
        }
        // Backward from issue over those edges: the nodes that lead to it.
        let mut leads: BTreeSet<String> = BTreeSet::from([issue.clone()]);
        loop {
            let before = leads.len();
            for (from, edges) in &out {
                if edges.iter().any(|(to, _)| leads.contains(to)) {
                    leads.insert(from.clone());
                }
            }
            if leads.len() == before {
                break;
            }
        }
        if !leads.contains(depends_on) {
            return Ok(None);
        }
        let mut ids: Vec<&str> = out
            .iter()
            .filter(|(from, _)| leads.contains(*from))
            .flat_map(|(_, edges)| edges.iter())
            .filter(|(to, _)| leads.contains(to))
            .map(|(_, id)| id.as_str())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        // Only the reverse edge: a pair, which td's rule settles alike everywhere.
        let reverse_only = ids.len() == 1
            && out
                .get(depends_on)
                .is_some_and(|edges| edges.iter().any(|(to, id)| *to == issue && id == ids[0]));
        if ids.is_empty() || reverse_only {
            return Ok(None);
        }
        let mut path_edges = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(row) = read_row(conn, table, id).map_err(err)? {
                path_edges.push(row);
            }
        }
        Ok(Some(LongCycle {
            closing: env.new_data,
            path_edges,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::create_synced_tables;

    fn db(edges: &[(&str, &str, &str)]) -> (Connection, Applier) {
        let conn = Connection::open_in_memory().unwrap();
        create_synced_tables(&conn).unwrap();
        // Edges between issues that are not there: the walk reads only issue_dependencies.
        conn.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
        for (from, to, relation) in edges {
            conn.execute(
                "INSERT INTO issue_dependencies (id, issue_id, depends_on_id, relation_type) \
                 VALUES (?1, ?2, ?3, ?4)",
                [&format!("dep_{from}{to}"), *from, *to, *relation],
            )
            .unwrap();
        }
        let applier = Applier::new(&conn).unwrap();
        (conn, applier)
    }

    /// The path edges (as `fromto`) found for a create of `from → to`.
    fn closes(edges: &[(&str, &str, &str)], from: &str, to: &str) -> Option<Vec<String>> {
        let (conn, applier) = db(edges);
        let payload = format!(
            r#"{{"new_data":{{"id":"dep_{from}{to}","issue_id":"{from}","depends_on_id":"{to}","relation_type":"depends_on"}},"previous_data":{{}},"schema_version":1}}"#
        );
        let id = format!("dep_{from}{to}");
        let ev = Event {
            server_seq: 1,
            device_id: "d",
            action_type: "create",
            entity_type: "issue_dependencies",
            entity_id: &id,
            payload: &payload,
            client_timestamp: "2026-03-01T10:00:00Z",
        };
        let cycle = applier.long_cycle(&conn, &ev).unwrap()?;
        assert_eq!(cycle.closing["issue_id"], from);
        Some(
            cycle
                .path_edges
                .iter()
                .map(|r| match (r.get("issue_id"), r.get("depends_on_id")) {
                    (
                        Some(rusqlite::types::Value::Text(a)),
                        Some(rusqlite::types::Value::Text(b)),
                    ) => format!("{a}{b}"),
                    other => panic!("{other:?}"),
                })
                .collect(),
        )
    }

    const D: &str = "depends_on";

    #[test]
    fn no_cycle_and_pairs_are_left_to_tds_rule() {
        assert_eq!(closes(&[("a", "b", D)], "c", "a"), None);
        assert_eq!(closes(&[("a", "b", D)], "b", "a"), None);
        assert_eq!(closes(&[], "a", "a"), None);
        // Only depends_on edges make a path, as in td's walk.
        assert_eq!(
            closes(&[("a", "b", "related"), ("b", "c", D)], "c", "a"),
            None
        );
    }

    #[test]
    fn a_longer_cycle_names_every_edge_of_the_paths_it_closes() {
        assert_eq!(
            closes(&[("a", "b", D), ("b", "c", D)], "c", "a"),
            Some(vec!["ab".into(), "bc".into()])
        );
        // Two paths back, plus the reverse edge itself; edges off the paths are left out.
        let edges = [
            ("a", "b", D),
            ("b", "d", D),
            ("a", "c", D),
            ("c", "d", D),
            ("a", "d", D),
            ("b", "x", D),
            ("y", "a", D),
            ("d", "z", D),
        ];
        assert_eq!(
            closes(&edges, "d", "a"),
            Some(vec![
                "ab".into(),
                "ac".into(),
                "ad".into(),
                "bd".into(),
                "cd".into()
            ])
        );
    }
}
