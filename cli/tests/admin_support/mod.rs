//! What the admin command-line tests share: a control plane per test on either backend (SQLite
//! in a temp data dir; Postgres in a per-test database), the real `tdsync` binary run against
//! it with the environment's tdsync settings removed, and `both_backends!`, which runs each test
//! on both.

use std::process::{Command, Output};

use serde_json::Value;
use tdsync_acl::testing::PostgresTestDb;

/// Where one test's control plane is, and what keeps it alive.
pub struct Plane {
    /// The global options that select it (`--data-dir …` or `--control-plane …`).
    pub global: Vec<String>,
    pub cwd: tempfile::TempDir,
    _db: Option<PostgresTestDb>,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn fails_with(self, needle: &str) -> Run {
        assert_ne!(self.code, 0, "expected failure; stdout: {}", self.stdout);
        assert!(
            self.stderr.contains(needle),
            "stderr does not mention {needle:?}: {}",
            self.stderr
        );
        self
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }

    pub fn line(&self) -> String {
        self.stdout.trim().to_string()
    }
}

impl Plane {
    pub async fn open(postgres: bool, test: &str) -> Option<Plane> {
        let cwd = tempfile::tempdir().unwrap();
        if postgres {
            let db = PostgresTestDb::create(test).await?;
            let global = vec!["--control-plane".into(), db.url().to_string()];
            Some(Plane {
                global,
                cwd,
                _db: Some(db),
            })
        } else {
            let dir = cwd.path().join("data").display().to_string();
            Some(Plane {
                global: vec!["--data-dir".into(), dir],
                cwd,
                _db: None,
            })
        }
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tdsync"));
        cmd.current_dir(self.cwd.path())
            .env_remove("TDSYNC_DATA_DIR")
            .env_remove("TDSYNC_CONTROL_PLANE")
            .env_remove("TDSYNC_PUBLIC_URL");
        cmd
    }

    /// `tdsync <global options> <args>`.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[])
    }

    pub fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = self.command();
        cmd.args(&self.global).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        finish(cmd.output().unwrap())
    }
}

pub fn finish(out: Output) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// One `#[tokio::test]` per backend for each named `async fn(Plane)`.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(super::Plane::open(false, stringify!($name)).await.unwrap()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    if let Some(p) = super::Plane::open(true, stringify!($name)).await {
                        super::$name(p).await;
                    }
                }
            )*
        }
    };
}
