//! What a deploy learned and records for the next run (`deploy-state.toml`, 0600): never an
//! answer and never a secret — the admin token's id, not the token.

use serde::{Deserialize, Serialize};

use crate::files::{self, FileError};
use crate::layout::Layout;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// The first tenant's id, once created.
    pub tenant_id: Option<String>,
    /// The admin token minted for it (its id).
    pub admin_token_id: Option<String>,
    /// A digest of the backup target and credentials a first backup was written to.
    pub backup_checked: Option<String>,
}

impl State {
    pub fn load(layout: &Layout) -> Result<State, String> {
        let path = layout.state();
        match files::read_optional(&path).map_err(|e| e.to_string())? {
            None => Ok(State::default()),
            Some(text) => {
                toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.message()))
            }
        }
    }

    pub fn save(&self, layout: &Layout) -> Result<(), FileError> {
        let text = toml::to_string(self).expect("the state is TOML");
        files::write_atomic(
            &layout.state(),
            &format!("# tdsync deploy: what it did (not answers, no secrets).\n{text}"),
            0o600,
        )
    }
}
