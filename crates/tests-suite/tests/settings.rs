//! `kvmtest.toml`: discovery, path resolution, errors with file:line:column, and flags
//! overriding settings through the CLI entry point.

#![allow(clippy::unwrap_used)] // Tests: a panic with the error is the report.

mod common;

use std::path::PathBuf;

use clap::Parser;
use tests_suite::{cli_run, ExitStatus, RunArgs, Settings, SettingsError};

#[test]
fn unknown_keys_and_bad_values_name_file_and_line() {
    let path = PathBuf::from("/etc/kvmtest/kvmtest.toml");
    let text = "jobs = 2\n\n# results\nresuls_dir = \"r\"\n";
    let err = Settings::parse(&path, text).unwrap_err();
    let SettingsError::Invalid {
        line,
        column,
        ref message,
        ..
    } = err
    else {
        panic!("{err:?}");
    };
    assert_eq!((line, column), (4, 1));
    assert!(message.contains("unknown field `resuls_dir`"), "{message}");
    let shown = err.to_string();
    assert!(
        shown.starts_with("/etc/kvmtest/kvmtest.toml:4:1: unknown field `resuls_dir`"),
        "{shown}"
    );

    let err = Settings::parse(&path, "results_dir = \"x\"\njobs = 0\n").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("/etc/kvmtest/kvmtest.toml:2:8: "),
        "{err}"
    );
    let err = Settings::parse(&path, "jobs = \"two\"\n").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("/etc/kvmtest/kvmtest.toml:1:8: "),
        "{err}"
    );
    let err = Settings::parse(&path, "[jobs\n").unwrap_err();
    assert!(
        err.to_string().starts_with("/etc/kvmtest/kvmtest.toml:1:"),
        "{err}"
    );
}

#[test]
fn values_and_relative_paths() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("kvmtest.toml"),
        "results_dir = \"out\"\nqemu_binary = \"qemu-system-x86_64\"\nguest_cache = \"/var/cache/g\"\njobs = 3\nconfig_dirs = [\"cfgs\", \"/abs\"]\n",
    )
    .unwrap();
    let s = Settings::discover(dir.path()).unwrap();
    assert_eq!(
        s.source.as_deref(),
        Some(dir.path().join("kvmtest.toml").as_path())
    );
    assert_eq!(s.results_dir, dir.path().join("out"));
    assert_eq!(s.qemu_binary, Some(PathBuf::from("qemu-system-x86_64")));
    assert_eq!(s.guest_cache, Some(PathBuf::from("/var/cache/g")));
    assert_eq!(s.jobs, 3);
    assert_eq!(
        s.config_dirs,
        [dir.path().join("cfgs"), PathBuf::from("/abs")]
    );
    // Defaults when nothing is set.
    let d = Settings::parse(&dir.path().join("kvmtest.toml"), "").unwrap();
    assert_eq!((d.results_dir, d.jobs), (PathBuf::from("results"), 1));
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    run: RunArgs,
}

fn run_args(args: &[&str]) -> RunArgs {
    Cli::try_parse_from(std::iter::once("kvmtest-run").chain(args.iter().copied()))
        .unwrap()
        .run
}

#[test]
fn flags_override_settings_and_config_dirs_find_the_cfg() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("cfgs")).unwrap();
    std::fs::write(
        d.join("cfgs/suite.cfg"),
        "type = noop\nvariants:\n    - one:\n    - two:\n",
    )
    .unwrap();
    let settings = d.join("settings.toml");
    std::fs::write(
        &settings,
        "results_dir = \"from-settings\"\nconfig_dirs = [\"cfgs\"]\njobs = 2\n",
    )
    .unwrap();
    let s = settings.to_str().unwrap();

    // results_dir from the settings file; the cfg is found in config_dirs.
    let status = cli_run(&run_args(&[
        "suite.cfg",
        "--settings",
        s,
        "--job-id",
        "a",
        "--progress",
        "quiet",
    ]));
    assert_eq!(status, ExitStatus::Success);
    let report = tests_suite::RunReport::read(&d.join("from-settings/a")).unwrap();
    assert_eq!((report.tests.len(), report.jobs), (2, 2));

    // Flags win: --results-dir and --jobs; statements and --only filter.
    let out = d.join("from-flag");
    let status = cli_run(&run_args(&[
        "suite.cfg",
        "only two",
        "--settings",
        s,
        "--results-dir",
        out.to_str().unwrap(),
        "--jobs",
        "1",
        "--job-id",
        "b",
        "--progress",
        "quiet",
    ]));
    assert_eq!(status, ExitStatus::Success);
    let report = tests_suite::RunReport::read(&out.join("b")).unwrap();
    assert_eq!(report.jobs, 1);
    assert_eq!(report.tests.len(), 1);
    assert_eq!(report.tests[0].name, "two");

    // A bad settings file or config is a usage error (2), nothing runs.
    std::fs::write(&settings, "jobz = 1\n").unwrap();
    assert_eq!(
        cli_run(&run_args(&["suite.cfg", "--settings", s])),
        ExitStatus::Usage
    );
    std::fs::write(&settings, "config_dirs = [\"cfgs\"]\n").unwrap();
    assert_eq!(
        cli_run(&run_args(&["suite.cfg", "only nosuch(", "--settings", s])),
        ExitStatus::Usage
    );
    assert_eq!(ExitStatus::Usage.code(), 2);
    // The same job id twice is refused.
    assert_eq!(
        cli_run(&run_args(&[
            "suite.cfg",
            "--settings",
            s,
            "--results-dir",
            out.to_str().unwrap(),
            "--job-id",
            "b"
        ])),
        ExitStatus::Usage
    );
}
