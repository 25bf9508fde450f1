//! A terminal a person would use, played by tmux: a command runs in a detached session of a
//! private tmux server; keys are sent with `send-keys`, the screen read with `capture-pane`.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Whether `program` runs (`program ARG`); when not, the test skips with a loud banner, or
/// fails under `TDSYNC_REQUIRE_SERVICES=1`.
pub fn installed(program: &str, arg: &str, why: &str) -> bool {
    let found = Command::new(program)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        let message = format!("{program} is not installed: {why} (infra/test.sh installs it)");
        assert!(
            std::env::var_os("TDSYNC_REQUIRE_SERVICES").is_none(),
            "{message}"
        );
        eprintln!("\n!!!!!!!!!! SKIPPED: {message} !!!!!!!!!!\n");
    }
    found
}

/// tmux is there (else the test skips, or fails when services are required).
pub fn tmux() -> bool {
    installed("tmux", "-V", "the deploy suite plays a terminal with it")
}

/// One command in a terminal of 200×60; the tmux server ends with it.
pub struct Screen {
    socket: String,
}

const MARK: &str = "[deploy exited";

impl Screen {
    /// Runs `command` (a shell line) in a new terminal; when it ends, `[deploy exited N]` is
    /// printed and the terminal stays for reading.
    pub fn run(command: &str) -> Screen {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let socket = format!(
            "tdsync-deploy-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        // The shell traps SIGINT (a handler, which the command does not inherit, unlike an
        // ignored signal), so a Ctrl-C ends the command and not the terminal.
        let line = format!("trap true INT; {command}; echo \"{MARK} $?]\"; exec sleep 3600");
        let status = Command::new("tmux")
            .args([
                "-u",
                "-L",
                &socket,
                "new-session",
                "-d",
                "-x",
                "200",
                "-y",
                "60",
            ])
            .args(["-e", "LANG=C.UTF-8", "sh", "-c", &line])
            .status()
            .expect("running tmux");
        assert!(status.success(), "tmux new-session failed");
        // Keep everything the command printed, not only what fits.
        let _ = Command::new("tmux")
            .args(["-L", &socket, "set-option", "-g", "history-limit", "10000"])
            .status();
        Screen { socket }
    }

    /// The whole screen and its scrollback, as text.
    pub fn text(&self) -> String {
        let output = Command::new("tmux")
            .args(["-L", &self.socket, "capture-pane", "-p", "-J", "-S", "-"])
            .output()
            .expect("tmux capture-pane");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Waits until the screen shows `wanted` (at most 60 s), then returns the screen.
    pub fn wait_for(&self, wanted: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = self.text();
            if text.contains(wanted) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "the screen never showed {wanted:?}; it shows:\n{text}"
            );
            // Polling the screen for the condition, under the deadline above.
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for the command to end; its exit status and the screen.
    pub fn wait_exit(&self) -> (i32, String) {
        let text = self.wait_for(MARK);
        let code = text
            .rsplit(MARK)
            .next()
            .and_then(|rest| rest.trim().split(']').next())
            .and_then(|n| n.trim().parse().ok())
            .expect("the exit status after the mark");
        (code, text)
    }

    /// Types `text` (literally), then Enter.
    pub fn answer(&self, text: &str) {
        if !text.is_empty() {
            self.send(&["-l", text]);
        }
        self.key("Enter");
    }

    /// Presses one key, by tmux's name (`Enter`, `Down`, `C-c`, `C-u`).
    pub fn key(&self, name: &str) {
        self.send(&[name]);
    }

    fn send(&self, args: &[&str]) {
        let status = Command::new("tmux")
            .args(["-L", &self.socket, "send-keys", "-t", "0"])
            .args(args)
            .status()
            .expect("tmux send-keys");
        assert!(status.success(), "tmux send-keys {args:?} failed");
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}
