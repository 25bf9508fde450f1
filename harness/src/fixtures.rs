//! Client databases at a given td schema: a fresh schema-38 database, or an older schema taken
//! from the real td databases in `../shared/fixtures/real-td` with every row removed (td's
//! tables as that td version had them, nothing in them).

use std::path::{Path, PathBuf};

use tdsync_client::tddb::TdDatabase;

/// The fixture that carries each older td schema.
const OLDER_SCHEMAS: &[(i64, &str)] = &[
    (27, "nightshift-v27.db"),
    (29, "llmfit-v29.db"),
    (31, "sindri-series/1-e89f9e9.db"),
    (32, "cycling-training-app-v32.db"),
];

/// The real-td fixtures directory: `TDSYNC_FIXTURES`, else `../shared/fixtures/real-td` from the
/// workspace root (where every checkout of this project has it).
pub fn default_dir() -> PathBuf {
    std::env::var_os("TDSYNC_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/real-td")
        })
}

/// The td schemas a simulated client can have.
pub fn supported_schemas() -> Vec<i64> {
    let mut out: Vec<i64> = OLDER_SCHEMAS.iter().map(|(v, _)| *v).collect();
    out.push(tdsync_projection::schema::TD_SCHEMA_VERSION);
    out
}

/// Creates an empty td database with schema `schema` at `path`.
pub fn empty_td_database(schema: i64, path: &Path, fixtures: &Path) -> Result<(), String> {
    if schema == tdsync_projection::schema::TD_SCHEMA_VERSION {
        return TdDatabase::create(path)
            .map(drop)
            .map_err(|e| e.to_string());
    }
    let Some((_, file)) = OLDER_SCHEMAS.iter().find(|(v, _)| *v == schema) else {
        return Err(format!(
            "no td database with schema {schema} to start from (have {:?})",
            supported_schemas()
        ));
    };
    let source = fixtures.join(file);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::copy(&source, path).map_err(|e| format!("copying {}: {e}", source.display()))?;
    let mut perms = std::fs::metadata(path)
        .map_err(|e| e.to_string())?
        .permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(path, perms).map_err(|e| e.to_string())?;
    empty_rows(path).map_err(|e| format!("emptying {}: {e}", path.display()))
}

fn empty_rows(path: &Path) -> rusqlite::Result<()> {
    let conn = rusqlite::Connection::open(path)?;
    let tables: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' \
             AND name NOT IN ('schema_info', 'sqlite_sequence') AND name NOT LIKE 'sqlite_%'",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    conn.execute_batch("PRAGMA foreign_keys = OFF; BEGIN")?;
    for t in &tables {
        // Names come from sqlite_master itself.
        let keep = if t == "boards" {
            " WHERE id != 'bd-all-issues'"
        } else {
            ""
        };
        conn.execute(&format!("DELETE FROM \"{t}\"{keep}"), [])?;
    }
    conn.execute_batch("COMMIT; VACUUM")
}
