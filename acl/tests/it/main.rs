//! The ACL test suite, one binary: every test that touches a store runs against both backends
//! (embedded SQLite and Postgres) through the `both_backends!` macro.

mod support;

mod at_rest;
mod conformance;
mod decision_table;
mod mint_property;
mod people;
mod verify;
