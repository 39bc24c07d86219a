//! The report's timeline: one lane per worker, one bar per test (and per failed attempt of a
//! retried test), as an inline SVG, so a reader sees where the wall time went.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::html::{escape, verdict_class};
use crate::results::RunReport;
use crate::time::{clock, parse_rfc3339};
use crate::verdict::VerdictKind;

/// Pixels: the drawing's width, a lane's height, the lane labels' width.
const WIDTH: f64 = 1000.0;
const LANE: f64 = 22.0;
const LABEL: f64 = 150.0;

/// The timeline of `report`'s tests; `None` when no test has a start time and a worker.
pub fn svg(report: &RunReport) -> Option<String> {
    struct Bar<'a> {
        start: f64,
        len: f64,
        index: usize,
        name: &'a str,
        verdict: VerdictKind,
    }
    let mut lanes: BTreeMap<&str, Vec<Bar<'_>>> = BTreeMap::new();
    for t in &report.tests {
        let (Some(worker), Some(start)) = (t.worker.as_deref(), parse_rfc3339(&t.started)) else {
            continue;
        };
        #[allow(clippy::cast_precision_loss)] // seconds since the epoch fit an f64's mantissa
        let start = start as f64;
        lanes.entry(worker).or_default().push(Bar {
            start,
            len: t.duration_s.max(0.0),
            index: t.index,
            name: &t.name,
            verdict: t.verdict,
        });
    }
    let bars = lanes.values().flatten();
    let t0 = bars.clone().map(|b| b.start).fold(f64::INFINITY, f64::min);
    let t1 = bars
        .map(|b| b.start + b.len)
        .fold(f64::NEG_INFINITY, f64::max);
    if !t0.is_finite() || !t1.is_finite() {
        return None;
    }
    let span = (t1 - t0).max(1.0);
    let scale = (WIDTH - LABEL) / span;
    #[allow(clippy::cast_precision_loss)] // a handful of lanes
    let height = LANE * (lanes.len() as f64 + 1.0);
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="timeline" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="tests per worker over time">"#
    );
    for (row, (worker, bars)) in lanes.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)]
        let y = LANE * row as f64;
        let _ = write!(
            out,
            r#"<text x="4" y="{:.1}" class="lane">{}</text>"#,
            y + LANE * 0.7,
            escape(worker)
        );
        for b in bars {
            let x = LABEL + (b.start - t0) * scale;
            let w = (b.len * scale).max(1.0);
            let _ = write!(
                out,
                r##"<a href="#t-{index}"><rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" class="{class}"><title>{name} — {verdict} in {len:.1} s</title></rect></a>"##,
                index = b.index,
                y = y + 2.0,
                h = LANE - 4.0,
                class = verdict_class(b.verdict),
                name = escape(b.name),
                verdict = b.verdict,
                len = b.len,
            );
        }
    }
    // The time axis: a tick at each tenth of the span.
    #[allow(clippy::cast_precision_loss)]
    let axis = LANE * lanes.len() as f64 + 14.0;
    for i in 0..=10 {
        let secs = span * f64::from(i) / 10.0;
        let x = LABEL + secs * scale;
        let _ = write!(
            out,
            r#"<text x="{x:.1}" y="{axis:.1}" class="tick">{}</text>"#,
            clock(secs)
        );
    }
    out.push_str("</svg>");
    Some(out)
}
