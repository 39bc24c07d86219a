//! The terminal progress display: an `indicatif` bar with running verdict counts when stdout is
//! a terminal, one plain line per finished test otherwise (CI logs, pipes).
//!
//! Long tasks inside a test (hashing a large ISO) report `kvmtest::progress` events
//! (`task`, `done`, `total`); [`trace::init`](crate::trace::init)'s layer hands them to
//! [`task_progress`], which shows each as a bar of its own under the run's while it lasts (a
//! line at every quarter in plain mode).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

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
                let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
                let bar = multi.add(ProgressBar::new(total as u64));
                if let Ok(style) =
                    ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed_precise} {msg}")
                {
                    bar.set_style(style);
                }
                set_tasks(Some(Tasks::Bars {
                    multi,
                    bars: HashMap::new(),
                }));
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
            _ => {
                set_tasks(Some(Tasks::Plain {
                    quarters: HashMap::new(),
                }));
                Progress {
                    bar: None,
                    plain: true,
                    total,
                    done: 0,
                }
            }
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
        set_tasks(None);
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        if self.bar.is_some() || self.plain {
            println!("{} tests: {counts}{tail}", counts.total());
        }
    }
}

/// How the running [`Progress`] shows tasks: bars, or plain lines.
enum Tasks {
    Bars {
        multi: MultiProgress,
        bars: HashMap<String, ProgressBar>,
    },
    /// The last quarter printed per task.
    Plain { quarters: HashMap<String, u64> },
}

/// The task display of the run in progress (one per process: the terminal is one).
static TASKS: Mutex<Option<Tasks>> = Mutex::new(None);

fn set_tasks(tasks: Option<Tasks>) {
    let mut slot = TASKS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(Tasks::Bars { bars, .. }) = slot.as_mut() {
        for bar in bars.values() {
            bar.finish_and_clear();
        }
    }
    *slot = tasks;
}

/// Task `task` has done `done` of `total` bytes: shown while a run's display is up (a bar per
/// task on a terminal, a line at 0, 25, 50, 75 and 100 % otherwise); `done == total` ends it.
pub fn task_progress(task: &str, done: u64, total: u64) {
    let mut slot = TASKS.lock().unwrap_or_else(|e| e.into_inner());
    match slot.as_mut() {
        None => {}
        Some(Tasks::Bars { multi, bars }) => {
            if done >= total {
                if let Some(bar) = bars.remove(task) {
                    bar.finish_and_clear();
                    multi.remove(&bar);
                }
                return;
            }
            let bar = bars.entry(task.to_owned()).or_insert_with(|| {
                let bar = multi.add(ProgressBar::new(total));
                if let Ok(style) = ProgressStyle::with_template(
                    "  {bar:30} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
                ) {
                    bar.set_style(style);
                }
                bar.set_message(task.to_owned());
                bar
            });
            bar.set_position(done);
        }
        Some(Tasks::Plain { quarters }) => {
            if let Some(line) = plain_step(quarters, task, done, total) {
                println!("{line}");
            }
        }
    }
}

/// The plain line for a task's progress, when it reached a new quarter.
fn plain_step(
    quarters: &mut HashMap<String, u64>,
    task: &str,
    done: u64,
    total: u64,
) -> Option<String> {
    let quarter = done
        .min(total)
        .saturating_mul(4)
        .checked_div(total)
        .unwrap_or(4);
    if quarters.get(task).is_some_and(|&q| quarter <= q) {
        return None;
    }
    if quarter >= 4 {
        quarters.remove(task);
    } else {
        quarters.insert(task.to_owned(), quarter);
    }
    Some(format!(
        "  {task}: {} % ({} of {} MiB)",
        quarter * 25,
        done >> 20,
        total >> 20
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_mode_prints_a_task_at_each_new_quarter() {
        let mut q = HashMap::new();
        let total = 400 << 20;
        let lines: Vec<String> = [0, 20, 99, 100, 150, 260, 399, 400]
            .iter()
            .filter_map(|mib| plain_step(&mut q, "vm1: md5sum of a.iso", mib << 20, total))
            .collect();
        assert_eq!(
            lines,
            [
                "  vm1: md5sum of a.iso: 0 % (0 of 400 MiB)",
                "  vm1: md5sum of a.iso: 25 % (100 of 400 MiB)",
                "  vm1: md5sum of a.iso: 50 % (260 of 400 MiB)",
                "  vm1: md5sum of a.iso: 75 % (399 of 400 MiB)",
                "  vm1: md5sum of a.iso: 100 % (400 of 400 MiB)",
            ]
        );
        assert!(q.is_empty(), "a finished task is forgotten: {q:?}");
    }
}
