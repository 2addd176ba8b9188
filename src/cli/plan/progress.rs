//! Progress on long runs of `plan` and `apply`, on standard error.

use std::io::{IsTerminal, Write};

use super::ResourceId;

/// Progress on long runs: a bar on a terminal, plain lines otherwise, nothing when quiet.
pub struct Progress {
    total: usize,
    done: usize,
    terminal: bool,
    quiet: bool,
}

impl Progress {
    /// Progress over `total` resources, on standard error.
    pub fn new(total: usize, quiet: bool) -> Self {
        Self { total, done: 0, terminal: std::io::stderr().is_terminal(), quiet }
    }

    /// One more resource done: `what`.
    pub(super) fn step(&mut self, what: &ResourceId) {
        self.done += 1;
        if self.quiet {
            return;
        }
        let mut err = std::io::stderr().lock();
        if self.terminal {
            let width = 24;
            let filled = (self.done * width).checked_div(self.total).unwrap_or(width);
            let bar = format!("{}{}", "#".repeat(filled), "-".repeat(width - filled.min(width)));
            let _ = write!(err, "\r\x1b[2K[{bar}] {}/{} {what}", self.done, self.total);
            if self.done == self.total {
                let _ = writeln!(err);
            }
        } else {
            let _ = writeln!(err, "[{}/{}] {what}", self.done, self.total);
        }
    }
}
