//! Clients at td schemas 27, 29, 31, 32 and 38 in one project: payloads carry columns (and
//! whole tables) the receiver lacks, in both directions. Receivers apply what their schema has;
//! the server keeps every event byte for byte, so nothing any client sent is lost.

use super::{Builder, Scenario};
use crate::plan::ClientSpec;

/// The td schemas the real-td fixtures provide, oldest first, then the current one.
pub const SCHEMAS: [i64; 5] = [27, 29, 31, 32, tdsync_projection::schema::TD_SCHEMA_VERSION];

pub const SCHEMA_MISMATCH: Scenario = Scenario {
    name: "schema-mismatch",
    about: "clients at td schemas 27, 29, 31, 32 and 38 write and exchange events carrying columns the receiver lacks, both ways; nothing sent is lost from the server log",
    in_all: true,
    build: |b: &mut Builder| {
        let specs: Vec<ClientSpec> = SCHEMAS
            .iter()
            .map(|&schema| ClientSpec {
                schema,
                ..ClientSpec::default()
            })
            .collect();
        let n = b.client_specs(&specs, specs.len());
        let actions = b.budget(80);
        // Every client creates first, so everyone's payload shapes are in play from the start.
        for c in 0..n {
            b.create_issue(c);
            b.create_issue(c);
        }
        b.converge();
        let everyone = b.everyone();
        b.random_actions(&everyone, actions);
        b.converge();
    },
};
