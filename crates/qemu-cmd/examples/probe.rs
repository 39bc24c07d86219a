//! Prints the capabilities of a QEMU binary as JSON (the format of `fixtures/qemu-caps/`).
//!
//! `cargo run -p kvmtest-qemu-cmd --example probe -- [BINARY] [--raw DIR] [--note TEXT]`:
//! probes BINARY (default [`default_binary`]: `$KVMTEST_QEMU`, else `qemu-system-x86_64`; no
//! cache); `--raw DIR` also saves each probe's raw output there, so the parser can be tested
//! against it.
#![allow(clippy::disallowed_methods)] // tests and examples start their own peers

use std::path::PathBuf;

use qemu_cmd::probe::default_binary;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut binary = default_binary();
    let mut raw: Option<PathBuf> = None;
    let mut note: Option<String> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--raw" => raw = args.next().map(PathBuf::from),
            "--note" => note = args.next(),
            _ => binary = PathBuf::from(a),
        }
    }
    let mut caps = qemu_cmd::probe::probe(&binary)?;
    if let Some(n) = note {
        caps.note = n;
    }
    if let Some(dir) = raw {
        std::fs::create_dir_all(&dir)?;
        for (file, args) in RAW {
            let out = std::process::Command::new(&binary)
                .args(*args)
                .env("LC_ALL", "C")
                .stdin(std::process::Stdio::null())
                .output()?;
            std::fs::write(dir.join(file), out.stdout)?;
        }
    }
    print!("{}", caps.to_json());
    Ok(())
}

/// The raw outputs saved with `--raw`: file name and arguments.
const RAW: &[(&str, &[&str])] = &[
    ("version.txt", &["-version"]),
    ("help.txt", &["-help"]),
    ("device-help.txt", &["-device", "help"]),
    ("machine-help.txt", &["-machine", "help"]),
    ("machine-pc-help.txt", &["-machine", "pc,help"]),
    ("cpu-help.txt", &["-cpu", "help"]),
    ("netdev-help.txt", &["-netdev", "help"]),
    ("accel-help.txt", &["-accel", "help"]),
    ("spice-help.txt", &["-spice", "help"]),
];
