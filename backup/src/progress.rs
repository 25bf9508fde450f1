//! Progress bars for long commands: drawn on stderr when it is a terminal and the output is
//! for people; hidden otherwise (`--json`, pipes, tests).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Debug, Clone, Copy)]
pub struct Progress {
    visible: bool,
}

impl Progress {
    /// Visible when stderr is a terminal, unless `quiet`.
    pub fn for_terminal(quiet: bool) -> Progress {
        Progress {
            visible: !quiet && std::io::stderr().is_terminal(),
        }
    }

    pub fn hidden() -> Progress {
        Progress { visible: false }
    }

    pub fn bar(&self, len: u64, what: &'static str) -> ProgressBar {
        if !self.visible {
            return ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::hidden());
        }
        let bar = ProgressBar::new(len);
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{{spinner}} {what} [{{bar:30}}] {{pos}}/{{len}} {{msg}}"
            ))
            .expect("a valid template"),
        );
        bar
    }
}
