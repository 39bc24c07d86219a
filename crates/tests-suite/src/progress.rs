//! The terminal progress display: an `indicatif` bar with running verdict counts when stdout is
//! a terminal, one plain line per finished test otherwise (CI logs, pipes).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::results::TestRecord;
use crate::verdict::Counts;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ProgressMode {
    /// A bar on a terminal, plain lines otherwise.
    #[default]
    Auto,
    /// Plain lines always.
    Plain,
    /// Nothing.
    Quiet,
}

/// The progress display of one run.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    plain: bool,
    total: usize,
    done: usize,
}

impl Progress {
    /// Start a display for `total` tests.
    pub fn new(mode: ProgressMode, total: usize) -> Self {
        let tty = std::io::stdout().is_terminal();
        match (mode, tty) {
            (ProgressMode::Auto, true) => {
                let bar =
                    ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stdout());
                if let Ok(style) =
                    ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed_precise} {msg}")
                {
                    bar.set_style(style);
                }
                Progress {
                    bar: Some(bar),
                    plain: false,
                    total,
                    done: 0,
                }
            }
            (ProgressMode::Quiet, _) => Progress {
                bar: None,
                plain: false,
                total,
                done: 0,
            },
            _ => Progress {
                bar: None,
                plain: true,
                total,
                done: 0,
            },
        }
    }

    /// A test finished with `record`; `counts` are the running totals.
    pub fn finished(&mut self, record: &TestRecord, counts: &Counts) {
        self.done += 1;
        let mut line = format!(
            "[{}/{}] {:<6} {} ({:.1}s)",
            self.done, self.total, record.verdict, record.name, record.duration_s
        );
        if let Some(m) = &record.message {
            let first = m.lines().next().unwrap_or_default();
            line.push_str(&format!(": {first}"));
        }
        if !record.retried.is_empty() {
            let n = record.retried.len() + 1;
            if record.flaky() {
                line.push_str(&format!(" — FLAKY, passed on attempt {n}"));
            } else {
                line.push_str(&format!(" — after {n} attempts"));
            }
            for (i, a) in record.retried.iter().enumerate() {
                let first = a.message.as_deref().unwrap_or_default();
                let first = first.lines().next().unwrap_or_default();
                line.push_str(&format!("\n    attempt {}: {} {first}", i + 1, a.verdict));
            }
        }
        if let Some(bar) = &self.bar {
            bar.println(line);
            bar.set_message(counts.to_string());
            bar.inc(1);
        } else if self.plain {
            println!("{line}  [{counts}]");
        }
    }

    /// The run ended.
    pub fn finish(&self, counts: &Counts, interrupted: bool) {
        let tail = if interrupted { " (interrupted)" } else { "" };
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if self.bar.is_some() || self.plain {
            println!("{} tests: {counts}{tail}", counts.total());
        }
    }
}
