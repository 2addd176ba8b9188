//! Progress on long runs of `plan` and `apply`, on standard error: a bar on a terminal (drawn by
//! indicatif), plain lines otherwise (a CI log keeps them), nothing when quiet.

use std::io::{IsTerminal, Write};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::ResourceId;

/// The bar: `[####----] 3/8 ProjectBinding team/payments`.
const TEMPLATE: &str = "[{bar:24}] {pos}/{len} {msg}";

/// Progress on long runs: a bar on a terminal, plain lines otherwise, nothing when quiet.
pub struct Progress {
    total: usize,
    done: usize,
    display: Display,
}

enum Display {
    Quiet,
    Bar(ProgressBar),
    Lines,
}

impl Progress {
    /// Progress over `total` resources, on standard error.
    pub fn new(total: usize, quiet: bool) -> Self {
        let display = if quiet || total == 0 {
            Display::Quiet
        } else if std::io::stderr().is_terminal() {
            Display::Bar(bar(total))
        } else {
            Display::Lines
        };
        Self { total, done: 0, display }
    }

    /// One more resource done: `what`.
    pub(super) fn step(&mut self, what: &ResourceId) {
        self.done += 1;
        match &self.display {
            Display::Quiet => {}
            Display::Bar(bar) => {
                bar.set_message(what.to_string());
                bar.inc(1);
                if self.done >= self.total {
                    // The last state stays on screen, as the output that follows starts below it.
                    bar.finish();
                }
            }
            Display::Lines => {
                let _ = writeln!(std::io::stderr().lock(), "[{}/{}] {what}", self.done, self.total);
            }
        }
    }
}

fn bar(total: usize) -> ProgressBar {
    let style = ProgressStyle::with_template(TEMPLATE)
        .map(|style| style.progress_chars("#-"))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    let length = u64::try_from(total).unwrap_or(u64::MAX);
    ProgressBar::with_draw_target(Some(length), ProgressDrawTarget::stderr()).with_style(style)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_is_valid() {
        assert!(ProgressStyle::with_template(TEMPLATE).is_ok());
    }

    #[test]
    fn the_bar_counts_every_resource() {
        let bar = bar(3).with_finish(indicatif::ProgressFinish::AndClear);
        bar.set_draw_target(ProgressDrawTarget::hidden());
        let mut progress = Progress { total: 3, done: 0, display: Display::Bar(bar.clone()) };
        let id = ResourceId { kind: "ProjectBinding", namespace: Some("team".into()), name: "payments".into() };
        for _ in 0..3 {
            progress.step(&id);
        }
        assert_eq!(bar.position(), 3);
        assert_eq!(bar.message(), "ProjectBinding team/payments");
        assert!(bar.is_finished());
    }
}
