//! The page itself: one static HTML document with its style and a few lines of script inline
//! (no external assets, no server: it works from `file://`), built from the report and the
//! tests' gathered files.

use std::fmt::Write;

use super::{Artifact, ArtifactKind, TestFiles};
use crate::results::RunReport;
use crate::time::parse_rfc3339;
use crate::verdict::VerdictKind;

/// `s` with `&`, `<`, `>`, `"` and `'` escaped, for text and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A path relative to the page, as an `href`: each segment percent-encoded where needed.
fn href(rel: &str) -> String {
    let mut out = String::new();
    for b in rel.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' | b'~' => {
                out.push(char::from(b));
            }
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// The CSS class of a verdict.
pub fn verdict_class(v: VerdictKind) -> &'static str {
    match v {
        VerdictKind::Pass => "pass",
        VerdictKind::Fail => "fail",
        VerdictKind::Error => "error",
        VerdictKind::Skip => "skip",
        VerdictKind::Cancel => "cancel",
    }
}

const STYLE: &str = r#"
:root { font-family: system-ui, sans-serif; color: #1d1d1f; background: #fafafa; }
body { margin: 1.5rem auto; max-width: 80rem; padding: 0 1rem; }
h1 { font-size: 1.5rem; margin-bottom: .25rem; }
h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
.summary { display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; margin: .5rem 0; }
.summary div { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: .4rem .8rem; }
.summary b { display: block; font-size: 1.3rem; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { border-bottom: 1px solid #e5e5e5; padding: .3rem .5rem; text-align: left; vertical-align: top; }
th { cursor: pointer; user-select: none; background: #f0f0f0; position: sticky; top: 0; }
th[aria-sort="ascending"]::after { content: " ▲"; }
th[aria-sort="descending"]::after { content: " ▼"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.badge { border-radius: 4px; padding: 0 .4rem; font-weight: 600; font-size: .85rem; }
.pass { background: #d9f2dd; color: #13541f; } .fail { background: #fbd9d9; color: #7a1010; }
.error { background: #fde7c8; color: #7a4100; } .skip { background: #e7e7e7; color: #444; }
.cancel { background: #e4dcf5; color: #3b2670; } .flaky { background: #fff3b0; color: #5c4a00; }
rect.pass { fill: #5cb85c; } rect.fail { fill: #d9534f; } rect.error { fill: #f0ad4e; }
rect.skip { fill: #bbb; } rect.cancel { fill: #8e7cc3; }
svg.timeline { width: 100%; height: auto; background: #fff; border: 1px solid #ddd; }
svg.timeline text { font-size: 11px; fill: #555; }
details.test { background: #fff; border: 1px solid #ddd; border-radius: 6px; margin: .5rem 0; padding: .3rem .7rem; }
details.test > summary { cursor: pointer; font-weight: 600; }
details.file > summary { cursor: pointer; font-family: ui-monospace, monospace; font-size: .9rem; }
pre { background: #f6f8fa; border: 1px solid #e5e5e5; padding: .5rem; overflow: auto; max-height: 30rem; font-size: .8rem; white-space: pre-wrap; word-break: break-all; }
.message { white-space: pre-wrap; }
img.screendump { max-width: 100%; border: 1px solid #999; image-rendering: pixelated; }
.note { color: #666; font-size: .85rem; }
"#;

/// Sorts the tests table by the clicked column (numbers by `data-value`), toggling the order;
/// marks each image `data-loaded="yes"` or `"no"`, and reports one that did not load on the
/// console (a screendump moved away from its page shows, rather than leaving an empty frame).
const SCRIPT: &str = r#"
document.querySelectorAll("img").forEach(function (img) {
  function check() {
    var ok = img.naturalWidth > 0;
    img.dataset.loaded = ok ? "yes" : "no";
    if (!ok) { console.error("image not loaded: " + img.getAttribute("src")); }
  }
  if (img.complete) { check(); } else {
    img.addEventListener("load", check);
    img.addEventListener("error", check);
  }
});
document.querySelectorAll("table.sortable th").forEach(function (th, col) {
  th.addEventListener("click", function () {
    var table = th.closest("table"), body = table.tBodies[0];
    var asc = th.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[col], y = b.cells[col];
      var vx = x.dataset.value !== undefined ? parseFloat(x.dataset.value) : x.textContent;
      var vy = y.dataset.value !== undefined ? parseFloat(y.dataset.value) : y.textContent;
      var c = typeof vx === "number" ? vx - vy : vx.localeCompare(vy);
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"#;

/// The whole page.
pub fn page(report: &RunReport, files: &[TestFiles], timeline: Option<&str>) -> String {
    let mut o = String::with_capacity(64 * 1024);
    let title = format!("kvmtest {}", report.job_id);
    let _ = writeln!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body>",
        escape(&title)
    );
    let _ = writeln!(o, "<h1>{}</h1>", escape(&title));
    summary(&mut o, report);
    if let Some(svg) = timeline {
        let _ = writeln!(o, "<h2>Timeline</h2>\n{svg}");
    }
    table(&mut o, report);
    o.push_str("<h2>Tests</h2>\n");
    for (t, f) in report.tests.iter().zip(files) {
        test_section(&mut o, t, f);
    }
    let _ = writeln!(o, "<script>{SCRIPT}</script>\n</body></html>");
    o
}

fn summary(o: &mut String, r: &RunReport) {
    let c = &r.counts;
    let wall = match (parse_rfc3339(&r.started), parse_rfc3339(&r.finished)) {
        #[allow(clippy::cast_precision_loss)]
        (Some(a), Some(b)) if b >= a => crate::time::clock((b - a) as f64),
        _ => "?".to_owned(),
    };
    o.push_str("<div class=\"summary\">");
    for (label, n, class) in [
        ("passed", c.pass, "pass"),
        ("failed", c.fail, "fail"),
        ("errored", c.error, "error"),
        ("skipped", c.skip, "skip"),
        ("cancelled", c.cancel, "cancel"),
        ("flaky", c.flaky, "flaky"),
    ] {
        let _ = write!(
            o,
            "<div class=\"{class}\" id=\"count-{label}\"><b>{n}</b>{label}</div>"
        );
    }
    let _ = write!(o, "<div><b>{wall}</b>wall time</div></div>\n<p>");
    let _ = write!(
        o,
        "Started {} · finished {}{} · {} of {} variants",
        escape(&r.started),
        escape(&r.finished),
        if r.interrupted { " (interrupted)" } else { "" },
        r.variants_selected,
        r.variants_total
    );
    if let Some(s) = &r.shard {
        let _ = write!(o, " · shard {}", escape(s));
        if let Some(src) = &r.shard_source {
            let _ = write!(o, " from {}", escape(src));
        }
    }
    if !r.hosts.is_empty() {
        let _ = write!(o, " · host {}", escape(&r.hosts.join(", ")));
    }
    o.push_str("</p>");
    if !r.qemu.is_empty() {
        o.push_str("<p>QEMU: ");
        let q: Vec<String> = r.qemu.iter().map(|q| escape(q)).collect();
        o.push_str(&q.join("; "));
        o.push_str("</p>");
    }
    if !r.merged_from.is_empty() {
        let _ = write!(o, "<p>Merged from {}", escape(&r.merged_from.join(", ")));
        if !r.missing_shards.is_empty() {
            let _ = write!(
                o,
                "; <b>missing shards: {}</b>",
                escape(&r.missing_shards.join(", "))
            );
        }
        o.push_str("</p>");
    }
    o.push('\n');
}

fn table(o: &mut String, r: &RunReport) {
    o.push_str(
        "<h2>Results</h2>\n<table class=\"sortable\" id=\"tests\"><thead><tr>\
         <th>#</th><th>Test</th><th>Type</th><th>Status</th><th>Duration</th><th>Reason</th>\
         </tr></thead><tbody>\n",
    );
    for t in &r.tests {
        let status = if t.flaky() {
            "<span class=\"badge pass\">PASS</span> <span class=\"badge flaky\">FLAKY</span>"
                .to_owned()
        } else {
            format!(
                "<span class=\"badge {}\">{}</span>",
                verdict_class(t.verdict),
                t.verdict.label()
            )
        };
        let _ = writeln!(
            o,
            "<tr class=\"{class}\"><td class=\"num\" data-value=\"{i}\">{i}</td>\
             <td><a href=\"#t-{i}\">{name}</a></td><td>{ty}</td><td>{status}</td>\
             <td class=\"num\" data-value=\"{d:.3}\">{d:.1} s</td><td class=\"message\">{msg}</td></tr>",
            class = verdict_class(t.verdict),
            i = t.index,
            name = escape(&t.name),
            ty = escape(t.test_type.as_deref().unwrap_or("")),
            d = t.duration_s,
            msg = escape(t.message.as_deref().unwrap_or("")),
        );
    }
    o.push_str("</tbody></table>\n");
}

fn test_section(o: &mut String, t: &crate::results::TestRecord, f: &TestFiles) {
    let failed = matches!(
        t.verdict,
        VerdictKind::Fail | VerdictKind::Error | VerdictKind::Cancel
    );
    let open = if failed || t.flaky() { " open" } else { "" };
    let _ = writeln!(
        o,
        "<details class=\"test\" id=\"t-{}\"{open}><summary>{} <span class=\"badge {}\">{}</span> \
         <span class=\"note\">{:.1} s · {}</span></summary>",
        t.index,
        escape(&t.name),
        verdict_class(t.verdict),
        t.verdict.label(),
        t.duration_s,
        escape(t.worker.as_deref().unwrap_or("")),
    );
    if let Some(m) = &t.message {
        let _ = writeln!(o, "<p class=\"message\">{}</p>", escape(m));
    }
    for a in &t.retried {
        let _ = writeln!(
            o,
            "<p class=\"message\">Earlier attempt ({}, {:.1} s, <a href=\"{}\">{}</a>): {}</p>",
            a.verdict.label(),
            a.duration_s,
            href(&a.dir),
            escape(&a.dir),
            escape(a.message.as_deref().unwrap_or(""))
        );
    }
    if !t.dir.is_empty() {
        let _ = writeln!(
            o,
            "<p class=\"note\">Directory: <a href=\"{}/\">{}</a></p>",
            href(&t.dir),
            escape(&t.dir)
        );
    }
    for a in &f.artifacts {
        artifact(o, a);
    }
    if !f.others.is_empty() {
        o.push_str("<p class=\"note\">Other files: ");
        let links: Vec<String> = f
            .others
            .iter()
            .map(|p| format!("<a href=\"{}\">{}</a>", href(p), escape(p)))
            .collect();
        o.push_str(&links.join(" · "));
        o.push_str("</p>\n");
    }
    o.push_str("</details>\n");
}

fn artifact(o: &mut String, a: &Artifact) {
    match &a.kind {
        ArtifactKind::Image => {
            let _ = writeln!(
                o,
                "<figure><img class=\"screendump\" src=\"{src}\" alt=\"screendump {name}\">\
                 <figcaption class=\"note\">{name}</figcaption></figure>",
                src = href(&a.rel),
                name = escape(&a.rel),
            );
        }
        ArtifactKind::Text { body, shown, total } => {
            let open = if a.open { " open" } else { "" };
            let cut = if shown < total {
                format!(" — the last {} of {}", size(*shown), size(*total))
            } else {
                format!(" — {}", size(*total))
            };
            let _ = writeln!(
                o,
                "<details class=\"file\"{open}><summary>{label}<span class=\"note\">{cut}</span> \
                 <a href=\"{href}\">open</a></summary><pre>{body}</pre></details>",
                label = escape(&a.label),
                href = href(&a.rel),
                body = escape(body),
            );
        }
    }
}

fn size(n: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    if n >= 1 << 20 {
        format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20))
    } else if n >= 1 << 10 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_links_are_escaped() {
        assert_eq!(
            escape("<b a='1'>&\"x\"</b>"),
            "&lt;b a=&#39;1&#39;&gt;&amp;&quot;x&quot;&lt;/b&gt;"
        );
        assert_eq!(href("tests/00001-a b#c"), "tests/00001-a%20b%23c");
        assert_eq!(size(10), "10 bytes");
        assert_eq!(size(2048), "2.0 KiB");
    }
}
