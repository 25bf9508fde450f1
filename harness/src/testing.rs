//! Test support (feature `test-support`): the one way tests find the real td binary.
//!
//! Three suites run the real td v0.62.0: the interop suite (`cli/tests/interop.rs`), the
//! client adapter's golden tests (`client/tests/td_golden.rs`) and the simulated td against the
//! real one (`harness/tests/td_writer_vs_td.rs`). They all ask [`td_binary`], which follows the
//! rule every service-dependent test follows (`tdsync_acl::testing`):
//!
//! - `TD_BIN` set: that file (a panic if it is not one);
//! - else the copy `infra/test.sh` builds into `target/tools/td-v0.62.0/td` (or under
//!   `CARGO_TARGET_DIR`), if it is there;
//! - else, with `TDSYNC_REQUIRE_SERVICES=1` (what `infra/test.sh` exports), a panic saying how to
//!   get td; without it, a loud banner on stderr and the test skips.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

/// The td release tdsync is written against (and the one `build-td.sh` builds).
pub const TD_VERSION: &str = "v0.62.0";
/// A td binary to test with.
pub const TD_BIN_VAR: &str = "TD_BIN";
/// When "1", a test whose service or tool is missing fails instead of skipping.
pub const REQUIRE_SERVICES_VAR: &str = "TDSYNC_REQUIRE_SERVICES";

/// How to get td, for the skip banner and the panic.
pub const HOW_TO_GET_TD: &str = "\
td is built from its vendored source (../shared/third_party/td-v0.62.0, MIT) with Go:
  ./infra/test.sh                                     builds it into target/tools/td-v0.62.0/ and runs every test
  ../shared/third_party/build-td.sh DIR               builds DIR/td and DIR/td-sync; then run the tests with TD_BIN=DIR/td";

/// Where `infra/test.sh` keeps td between runs: `<target dir>/tools/td-v0.62.0/td`.
pub fn cached_td_paths() -> Vec<PathBuf> {
    let mut targets = Vec::new();
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        targets.push(PathBuf::from(dir));
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the harness crate is in the workspace");
    targets.push(workspace.join("target"));
    targets
        .into_iter()
        .map(|t| t.join("tools").join(format!("td-{TD_VERSION}")).join("td"))
        .collect()
}

/// The real td binary for `test`, or `None` when the test should skip (after a banner on
/// stderr). Panics when `TD_BIN` names no file, or when td is missing and
/// `TDSYNC_REQUIRE_SERVICES=1`.
pub fn td_binary(test: &str) -> Option<PathBuf> {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        let found = find();
        if let Some(td) = &found {
            say(&format!(
                "td for the tests: {} ({})",
                td.display(),
                version_of(td)
            ));
        }
        found
    });
    if let Some(td) = found {
        return Some(td.clone());
    }
    let missing = format!(
        "no td {TD_VERSION} binary: {TD_BIN_VAR} is not set and none of {} exists.\n{HOW_TO_GET_TD}",
        cached_td_paths()
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if std::env::var(REQUIRE_SERVICES_VAR).is_ok_and(|v| v == "1") {
        panic!("{test}: {missing}\n({REQUIRE_SERVICES_VAR}=1: tests that need td must run)");
    }
    let bar = "!".repeat(100);
    say(&format!(
        "\n{bar}\nSKIPPED {test}: it needs the real td and found {missing}\n{bar}\n"
    ));
    None
}

fn find() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os(TD_BIN_VAR).filter(|b| !b.is_empty()) {
        let path = PathBuf::from(bin);
        assert!(
            path.is_file(),
            "{TD_BIN_VAR}={} is not a file.\n{HOW_TO_GET_TD}",
            path.display()
        );
        return Some(path);
    }
    cached_td_paths().into_iter().find(|p| p.is_file())
}

/// `td version`'s first line.
fn version_of(td: &Path) -> String {
    match Command::new(td).arg("version").output() {
        Ok(out) => String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string(),
        Err(e) => format!("`td version` failed: {e}"),
    }
}

/// Straight to stderr, not `eprintln!`: the test harness captures that and shows it only for
/// failures, and a skip must be seen.
fn say(text: &str) {
    let _ = writeln!(std::io::stderr(), "{text}");
}
