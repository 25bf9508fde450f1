//! A run as data: the clients, and the list of actions they take. Scenarios produce plans from
//! a seed; the runner executes them; shrinking removes actions from them. Write targets are
//! picks resolved against the client's state when the action runs, so a plan stays valid when
//! actions are removed from it.

use serde::{Deserialize, Serialize};

/// One simulated td client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientSpec {
    /// td schema of the client's database: 38 (current) or an older one from the real-td
    /// fixtures (27, 29, 31, 32).
    pub schema: i64,
    /// Shift of every timestamp this client writes, in seconds (clock skew), until an
    /// [`Action::SetClockSkew`] changes it.
    pub clock_skew_secs: i64,
    /// Pull without its own events, as td's autosync does (otherwise as `td sync` does).
    pub exclude_own: bool,
    /// Test-only: this replica applies pulled updates with a deliberately wrong rule (it
    /// ignores `previous_data`), so tests can show that the oracle catches a broken apply.
    /// Honoured only by a harness built with its `fault-injection` feature; a plan asking for
    /// it elsewhere is refused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub wrong_apply_rule: bool,
}

impl Default for ClientSpec {
    fn default() -> ClientSpec {
        ClientSpec {
            schema: tdsync_projection::schema::TD_SCHEMA_VERSION,
            clock_skew_secs: 0,
            exclude_own: false,
            wrong_apply_rule: false,
        }
    }
}

/// Which row an action is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Pick {
    /// Index into the candidates the action finds when it runs (modulo their number).
    Index(u32),
    /// The row created earlier in the run under this name, on whichever client, as td's own
    /// test scripts keep `ID=$(td create …)` and hand it to another actor. Unknown names are
    /// refused like a missing id.
    Named(String),
}

impl From<u32> for Pick {
    fn from(i: u32) -> Pick {
        Pick::Index(i)
    }
}

impl Pick {
    pub fn named(name: impl Into<String>) -> Pick {
        Pick::Named(name.into())
    }
}

/// A raw action_log row of the kind td's own bugs write: every replica must quarantine (or
/// ignore) it the same way, and the stream must go on past it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PoisonKind {
    /// A `delete` (a soft delete on the wire) of a comment: comments have no `deleted_at`.
    SoftDeleteComment,
    /// A review row for an issue no replica has (violates issue_reviews' foreign key).
    ReviewForMissingIssue,
    /// An issue create whose payload has no column td knows.
    NoKnownFields,
    /// An update of a comment id that does not exist (td's apply does nothing).
    UpdateMissingComment,
}

impl PoisonKind {
    pub const ALL: [PoisonKind; 4] = [
        PoisonKind::SoftDeleteComment,
        PoisonKind::ReviewForMissingIssue,
        PoisonKind::NoKnownFields,
        PoisonKind::UpdateMissingComment,
    ];
}

/// A td command a simulated client performs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum WriteOp {
    CreateIssue {
        title: String,
        description: String,
        labels: Vec<String>,
        priority: u8,
        /// Make it a child of an existing issue.
        parent: Option<Pick>,
        /// Remember the new issue under this name (see [`Pick::Named`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    SetTitle {
        issue: Pick,
        title: String,
    },
    SetDescription {
        issue: Pick,
        description: String,
    },
    SetPriority {
        issue: Pick,
        priority: u8,
    },
    SetLabels {
        issue: Pick,
        labels: Vec<String>,
    },
    SetPoints {
        issue: Pick,
        points: i64,
    },
    SetSprint {
        issue: Pick,
        sprint: String,
    },
    SetAcceptance {
        issue: Pick,
        acceptance: String,
    },
    Start {
        issue: Pick,
    },
    Review {
        issue: Pick,
    },
    Approve {
        issue: Pick,
    },
    Reject {
        issue: Pick,
    },
    Block {
        issue: Pick,
    },
    Unblock {
        issue: Pick,
    },
    Close {
        issue: Pick,
    },
    Reopen {
        issue: Pick,
    },
    Delete {
        issue: Pick,
    },
    /// Restores one of the deleted issues.
    Restore {
        issue: Pick,
    },
    Log {
        issue: Pick,
        message: String,
    },
    Comment {
        issue: Pick,
        text: String,
    },
    Handoff {
        issue: Pick,
        done: String,
        remaining: String,
    },
    CreateBoard {
        name: String,
    },
    Position {
        board: Pick,
        issue: Pick,
        position: i64,
    },
    Unposition {
        board: Pick,
        issue: Pick,
    },
    DeleteBoard {
        board: Pick,
    },
    Depend {
        issue: Pick,
        on: Pick,
    },
    Undepend {
        dependency: Pick,
    },
    LinkFile {
        issue: Pick,
        path: String,
    },
    UnlinkFile {
        link: Pick,
    },
    StartWorkSession {
        name: String,
    },
    EndWorkSession,
    Tag {
        issue: Pick,
    },
    Untag {
        issue: Pick,
    },
    CreateNote {
        title: String,
        content: String,
        /// Remember the new note under this name (see [`Pick::Named`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    EditNote {
        note: Pick,
        content: String,
    },
    DeleteNote {
        note: Pick,
    },
    Undo,
    /// Appends a raw action_log row with no row change (what td's own bugs log).
    Poison {
        kind: PoisonKind,
    },
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    Write {
        client: usize,
        op: WriteOp,
    },
    Push {
        client: usize,
    },
    Pull {
        client: usize,
    },
    /// Push then pull, as `td sync` does.
    Sync {
        client: usize,
    },
    /// Cut a client off the network, or reconnect it.
    Offline {
        client: usize,
        offline: bool,
    },
    /// The client's next push reaches the server, which commits it, but the reply is lost.
    LoseNextReply {
        client: usize,
    },
    /// Stop the server (every in-memory state dropped, shards closed) and start it again.
    RestartServer,
    /// Stop the server; calls fail as to an unreachable host until `ServerUp`.
    ServerDown,
    /// Start a stopped server on the same data directory (nothing if it is up).
    ServerUp,
    /// From now on the client's clock runs this many seconds off (replaces its skew).
    SetClockSkew {
        client: usize,
        secs: i64,
    },
    /// Pull at most this many pages, then the client process dies; its database is reopened
    /// from disk.
    CrashDuringPull {
        client: usize,
        pages: u32,
    },
    /// Several `td sync`s at once on the same database (two unless said otherwise).
    ConcurrentSync {
        client: usize,
        #[serde(default = "two")]
        syncs: u32,
    },
    /// These clients all sync at the same moment, each on its own thread (a thundering herd).
    SyncTogether {
        clients: Vec<usize>,
    },
    /// The client's database gains a long history at once (an old project being onboarded):
    /// this many td-shaped issue events (one create per five) in its action log.
    ImportHistory {
        client: usize,
        events: u32,
    },
}

impl Action {
    /// The client an action belongs to, if any.
    pub fn client(&self) -> Option<usize> {
        match self {
            Action::Write { client, .. }
            | Action::Push { client }
            | Action::Pull { client }
            | Action::Sync { client }
            | Action::Offline { client, .. }
            | Action::LoseNextReply { client }
            | Action::CrashDuringPull { client, .. }
            | Action::ConcurrentSync { client, .. }
            | Action::SetClockSkew { client, .. }
            | Action::ImportHistory { client, .. } => Some(*client),
            Action::RestartServer
            | Action::ServerDown
            | Action::ServerUp
            | Action::SyncTogether { .. } => None,
        }
    }

    /// A short label for timelines and traces.
    pub fn label(&self) -> String {
        match self {
            Action::Write { op, .. } => {
                let v = serde_json::to_value(op).unwrap_or_default();
                format!("write:{}", v["op"].as_str().unwrap_or("?"))
            }
            Action::Push { .. } => "push".into(),
            Action::Pull { .. } => "pull".into(),
            Action::Sync { .. } => "sync".into(),
            Action::Offline { offline: true, .. } => "partition".into(),
            Action::Offline { offline: false, .. } => "reconnect".into(),
            Action::LoseNextReply { .. } => "lose-next-reply".into(),
            Action::RestartServer => "restart-server".into(),
            Action::ServerDown => "server-down".into(),
            Action::ServerUp => "server-up".into(),
            Action::SetClockSkew { secs, .. } => format!("clock-skew:{secs:+}s"),
            Action::SyncTogether { clients } => format!("sync-together:{}", clients.len()),
            Action::CrashDuringPull { pages, .. } => format!("crash-after-{pages}-pages"),
            Action::ConcurrentSync { syncs, .. } => format!("concurrent-sync:{syncs}"),
            Action::ImportHistory { events, .. } => format!("import-{events}-events"),
        }
    }
}

fn two() -> u32 {
    2
}

/// A whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub scenario: String,
    pub seed: u64,
    pub clients: Vec<ClientSpec>,
    /// Network faults applied to every client's transport.
    pub network: NetworkFaults,
    /// Names of the faults in force (see `faults`).
    pub faults: Vec<String>,
    pub actions: Vec<Action>,
}

/// Probabilistic network faults per call (see the in-process transport).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkFaults {
    pub latency_ms: u64,
    pub jitter_ms: u64,
    pub lose_request: f64,
    pub lose_reply: f64,
    pub duplicate: f64,
    pub server_error: f64,
}
