//! Progress of long commands (fsck, migrate, backup, restore, reclaim run,
//! retention run), one rule for all: drawn on stderr when it is a terminal,
//! nothing at all otherwise, so scripts and CI logs see only the commands'
//! own lines on stdout.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::progress::Progress;

pub struct Bar(ProgressBar);

impl Bar {
    /// A bar for work counted in phases of known length ([`Progress`]).
    pub fn counting() -> Self {
        let bar = Self::on_terminal(ProgressBar::new(0));
        bar.0.set_style(
            ProgressStyle::with_template("{msg:>16} [{bar:40}] {pos}/{len} ({eta} left)")
                .expect("a valid template"),
        );
        bar
    }

    /// A spinner with a line of text, for work of unknown length.
    pub fn spinner() -> Self {
        let bar = Self::on_terminal(ProgressBar::new_spinner());
        bar.0
            .set_style(ProgressStyle::with_template("{spinner} {msg}").expect("a valid template"));
        bar
    }

    fn on_terminal(bar: ProgressBar) -> Self {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        bar.set_draw_target(target);
        Self(bar)
    }

    /// Replaces the spinner's line.
    pub fn say(&self, line: String) {
        self.0.set_message(line);
        self.0.tick();
    }

    /// Takes the bar off the terminal (before the command's own output).
    pub fn clear(&self) {
        self.0.finish_and_clear();
    }
}

impl Progress for Bar {
    fn phase(&self, name: &str, total: u64) {
        // The name first: a redraw in between shows the new phase's name
        // on the old one's count, never the old name on the new count.
        self.0.set_message(name.to_owned());
        self.0.reset();
        self.0.set_length(total);
        self.0.set_position(0);
    }

    fn advance(&self, n: u64) {
        self.0.inc(n);
    }

    /// The summary goes to stdout, terminal or not.
    fn finish(&self, summary: &str) {
        self.0.suspend(|| println!("{summary}"));
    }
}
