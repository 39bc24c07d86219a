//! The HTML report as a person sees it: a run on the real test guest with a passing, a skipped
//! and a failing test, its `index.html` opened in headless Chromium (Debian's `chromium`,
//! installed by `cargo xtask deps`; without it this test fails, naming that command). The page
//! must render with no console message (the page logs an image that did not load), list every
//! test, and show the failing test's screendump (loaded) and serial console (the failing test
//! boots its own VM: the passing one's is killed, so the boot is in the failing test's log). A screenshot of
//! the page is kept as `<target dir>/report-check/index.png` (a CI artifact). With tracing on
//! (as in the CLI), the failed test's `debug.log` has its span's events, QMP commands included.

#![allow(clippy::unwrap_used)] // Tests: a panic with the error is the report.
#![allow(clippy::disallowed_methods)] // tests start their own peers (Chromium)

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{guest_dir, suite_base};
use tests_suite::{run, VerdictKind, VmLayerFactory};

/// Chromium on PATH, or a failure naming how to install it.
fn chromium() -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("chromium"))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| {
            panic!("chromium is not installed: `cargo xtask deps` installs Debian's `chromium`")
        })
}

/// Runs headless Chromium on `page` with `args`; returns (stdout, stderr). Killed after 120 s.
fn headless(page: &Path, profile: &Path, args: &[&str]) -> (String, String) {
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish in 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "chromium: {}", out.status);
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_report_renders_in_chromium_with_every_test_and_the_failures_screendump() {
    // As the CLI does: tracing on, so each test gets its debug.log.
    tests_suite::trace::init(0, tests_suite::trace::LogFormat::Text);
    let results = tempfile::tempdir().unwrap();
    let config = common::config(&format!(
        "include {}\nvariants:\n    - passes:\n        type = boot\n        boot_command = uname -r\n        \
         boot_expect = ^\\d+\\.\\d+\n        kill_vm = yes\n    - skipped:\n        type = noop\n        noop_verdict = skip\n        start_vm = no\n    \
         - fails:\n        type = boot\n        boot_command = uname -r\n        boot_expect = ^never$\n",
        suite_base().display()
    ));
    let mut o = common::options(results.path());
    o.env_factory = Arc::new(VmLayerFactory::with_guest_dir(guest_dir()));
    let summary = run(&config, &o).unwrap();
    let verdicts: Vec<_> = summary.report.tests.iter().map(|t| t.verdict).collect();
    assert_eq!(
        verdicts,
        [VerdictKind::Pass, VerdictKind::Skip, VerdictKind::Fail],
        "{:?}",
        summary.report.tests
    );
    let failed = &summary.report.tests[2];
    let shot = summary.job_dir.join(&failed.dir).join("screendump-vm1.png");
    assert!(
        shot.is_file(),
        "no screendump of the failed test: {}",
        shot.display()
    );
    // debug.log: the test span's events, QMP commands in their `qmp` spans among them.
    let debug = common::read(&summary.job_dir.join(&failed.dir).join("debug.log"));
    assert!(debug.contains("qmp{cmd=screendump}"), "{debug}");
    assert!(debug.contains("kvmtest::session: $ uname -r"), "{debug}");
    let page = summary.job_dir.join("index.html");
    assert!(page.is_file());

    let profile = tempfile::tempdir().unwrap();
    let (dom, log) = headless(&page, profile.path(), &["--dump-dom"]);
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:#?}");
    // The table: a row per test, each linking to its section.
    let body = dom
        .split("<tbody>")
        .nth(1)
        .and_then(|b| b.split("</tbody>").next())
        .unwrap_or_else(|| panic!("no table body in {dom}"));
    assert_eq!(body.matches("<tr").count(), 3, "{body}");
    for t in &summary.report.tests {
        assert!(
            body.contains(&format!("href=\"#t-{}\"", t.index)) && body.contains(&t.name),
            "{} missing in the table",
            t.name
        );
    }
    // The failing test's section: its screendump, loaded, and its serial console.
    let section = dom
        .split(&format!("id=\"t-{}\"", failed.index))
        .nth(1)
        .and_then(|s| s.split("</details>\n<details class=\"test\"").next())
        .unwrap();
    let img = section
        .split("<img")
        .nth(1)
        .and_then(|s| s.split('>').next())
        .unwrap_or_else(|| panic!("no screendump in the failed test's section: {section}"));
    assert!(img.contains("screendump-vm1.png"), "{img}");
    assert!(
        img.contains("data-loaded=\"yes\""),
        "the screendump did not load: {img}"
    );
    assert!(section.contains("serial.log"), "no serial log in {section}");
    assert!(section.contains("debug.log"), "no debug.log in {section}");
    assert!(
        section.contains("KVMTEST-GUEST-READY"),
        "serial log not embedded: {section}"
    );

    // A screenshot for people (and CI artifacts).
    let keep = vm::fixtures::target_dir().join("report-check");
    std::fs::create_dir_all(&keep).unwrap();
    let png = keep.join("index.png");
    let _ = std::fs::remove_file(&png);
    headless(
        &page,
        profile.path(),
        &[
            "--hide-scrollbars",
            "--window-size=1300,1800",
            &format!("--screenshot={}", png.display()),
        ],
    );
    let size = std::fs::metadata(&png).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 10_000,
        "screenshot {} is {size} bytes",
        png.display()
    );
    eprintln!("report screenshot: {}", png.display());
}
