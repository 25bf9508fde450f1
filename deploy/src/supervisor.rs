//! Starting and stopping the server: through systemd, or (no systemd) the run script started in
//! a process group of its own, which records its pid itself — so a deploy interrupted right after
//! starting it still finds it.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process, test_kill_process};

use crate::config::Service;
use crate::layout::Layout;

#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    #[error("cannot start {what}: {reason}")]
    Start { what: String, reason: String },
    #[error("the server (pid {pid}) did not stop within {seconds} s, even after SIGKILL")]
    Stuck { pid: i32, seconds: u64 },
    #[error("systemctl {args}: {reason}")]
    Systemctl { args: String, reason: String },
}

/// The pid in `pid_file`, if that process is alive and its command line names `name` (a stale
/// file whose pid was reused by another program does not count).
pub fn live_pid_of(pid_file: &Path, name: &str) -> Option<Pid> {
    let raw = std::fs::read_to_string(pid_file).ok()?;
    let pid = Pid::from_raw(raw.trim().parse().ok()?)?;
    test_kill_process(pid).ok()?;
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", pid.as_raw_nonzero())).ok()?;
    String::from_utf8_lossy(&cmdline)
        .contains(name)
        .then_some(pid)
}

fn live_pid(pid_file: &Path) -> Option<Pid> {
    live_pid_of(pid_file, "tdsync")
}

/// Stops the process recorded in `pid_file`: SIGTERM (a server drains and closes its files),
/// SIGKILL after 20 s. Whether there was one.
pub fn stop_pid(pid_file: &Path, name: &str) -> Result<bool, SupervisorError> {
    let Some(pid) = live_pid_of(pid_file, name) else {
        return Ok(false);
    };
    let _ = kill_process(pid, Signal::TERM);
    let gone = |within: Duration| {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if live_pid_of(pid_file, name) != Some(pid) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    };
    if !gone(Duration::from_secs(20)) {
        let _ = kill_process(pid, Signal::KILL);
        if !gone(Duration::from_secs(5)) {
            return Err(SupervisorError::Stuck {
                pid: pid.as_raw_nonzero().get(),
                seconds: 25,
            });
        }
    }
    let _ = std::fs::remove_file(pid_file);
    Ok(true)
}

/// Starts `command` in a process group of its own (a Ctrl-C at the deploy's prompt does not
/// reach it), its output appended to `log`.
fn spawn_detached(command: &mut Command, log: &Path) -> Result<Child, SupervisorError> {
    let what = command.get_program().to_string_lossy().into_owned();
    let start_error = |reason: String| SupervisorError::Start {
        what: what.clone(),
        reason,
    };
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| start_error(format!("{}: {e}", log.display())))?;
    let err = out.try_clone().map_err(|e| start_error(e.to_string()))?;
    command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| start_error(e.to_string()))
}

/// [`spawn_detached`], its pid then written to `pid_file`.
pub fn spawn_recorded(
    command: &mut Command,
    log: &Path,
    pid_file: &Path,
) -> Result<(), SupervisorError> {
    let child = spawn_detached(command, log)?;
    crate::files::write_atomic(pid_file, &child.id().to_string(), 0o644).map_err(|e| {
        SupervisorError::Start {
            what: command.get_program().to_string_lossy().into_owned(),
            reason: e.to_string(),
        }
    })
}

fn systemctl(args: &[&str]) -> Result<String, SupervisorError> {
    let output =
        Command::new("systemctl")
            .args(args)
            .output()
            .map_err(|e| SupervisorError::Systemctl {
                args: args.join(" "),
                reason: e.to_string(),
            })?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    } else {
        Err(SupervisorError::Systemctl {
            args: args.join(" "),
            reason: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        })
    }
}

/// How the server is running, if it is: `pid N` or `systemd`.
pub fn running(layout: &Layout, service: Service) -> Option<String> {
    match service {
        Service::Systemd => systemctl(&["is-active", "tdsync"])
            .ok()
            .filter(|s| s == "active")
            .map(|_| "under systemd".to_string()),
        Service::Script => {
            live_pid(&layout.pid_file()).map(|pid| format!("pid {}", pid.as_raw_nonzero()))
        }
    }
}

/// Whether the server can still come up: under systemd it may restart; a script server is
/// gone once its pid is.
pub fn alive(layout: &Layout, service: Service) -> bool {
    match service {
        Service::Systemd => systemctl(&["is-failed", "tdsync"]).is_err(),
        Service::Script => live_pid(&layout.pid_file()).is_some(),
    }
}

pub fn start(layout: &Layout, service: Service) -> Result<(), SupervisorError> {
    match service {
        Service::Systemd => systemctl(&["restart", "tdsync"]).map(drop),
        Service::Script => {
            let _ = std::fs::remove_file(layout.pid_file());
            spawn_detached(&mut Command::new(layout.run_script()), &layout.log_file())?;
            // The script records its own pid before it execs the server (so an interrupted
            // deploy still finds it); wait for that so `running` sees it.
            let deadline = Instant::now() + Duration::from_secs(5);
            while live_pid(&layout.pid_file()).is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            Ok(())
        }
    }
}

pub fn stop(layout: &Layout, service: Service) -> Result<bool, SupervisorError> {
    match service {
        Service::Systemd => {
            let was = running(layout, service).is_some();
            systemctl(&["stop", "tdsync"])?;
            Ok(was)
        }
        Service::Script => stop_pid(&layout.pid_file(), "tdsync"),
    }
}
