//! The client against the fake GitHub: every call goes over HTTP to `FakeGithub`, nothing is mocked.
//! One test binary (modules below) keeps link time down.

mod common;
mod device_flow;
mod errors;
mod repo_access;
mod repo_name;
mod web_flow;
