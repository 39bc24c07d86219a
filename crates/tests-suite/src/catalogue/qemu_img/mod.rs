//! `qemu_img`: tp-qemu's `qemu_img` test (`qemu/tests/qemu_img.py`) with its params — one
//! `subcommand` per variant: `check`, `create`, `convert`, `snapshot`, `info`, `rebase`,
//! `commit`, `amend` — on the real `qemu-img`.
//!
//! Every step runs as an argv (never a shell string), logged with its exit status, stdout and
//! stderr. The test's images live in its own directory, so parallel workers never share a file:
//!
//! * With `vms = ''` (tp-qemu's cfg) avocado-vt processes `images` itself; kvmtest's runner
//!   processes images per VM only, so this test does it: each image of `images` with
//!   `create_image` (missing file) or `force_create_image` is created in the test's directory
//!   (relative `image_name`s under it) with its `image_extra_params` as `-o`, and after the test
//!   `check_image` checks it and `remove_image` removes it. The main image is the first of them.
//! * The subcommands that boot (`convert`, `rebase`, `commit`: tp-qemu's `_boot`) start the
//!   main VM through the VM layer ([`boot`]) with its first image pointing at an image of the
//!   test's directory, and never from a saved state (`restore_from_snapshot = no` is forced:
//!   a state saved over another disk must not be restored over this one).
//!
//! `qemu_img_boot = no` (kvmtest's key) runs `convert` and `rebase` without their boots, for a
//! host without a guest; `commit` is nothing without its boots and refuses it.

mod boot;
mod keys;
mod offline;

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use keys::KEYS;
use regex::Regex;
use serde_json::Value;
use spec::{HostTools, Keys, ProblemKind};

use crate::command::{self, CmdOutput};
use crate::future::BoxFuture;
use crate::registry::{read_params, TestContext, TestSpec};
use crate::verdict::{TestError, TestResult};

/// `type = qemu_img`.
pub const SPEC: TestSpec = TestSpec {
    name: "qemu_img",
    about: "tp-qemu's qemu_img: one qemu-img subcommand per variant (check, create, convert, \
            snapshot, info, rebase, commit, amend), the booting ones on the main VM.",
    params: KEYS,
};

/// A byte count read as qemu-img and avocado-vt's `normalize_data_size` read sizes: an integer
/// with an optional binary suffix (`K`, `M`, `G`, `T`, optionally followed by `B`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

/// Why a size did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a size (an integer with an optional K, M, G or T suffix)")]
pub struct ByteSizeError(String);

impl FromStr for ByteSize {
    type Err = ByteSizeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ByteSizeError(s.to_string());
        let t = s.trim();
        let t = t.strip_suffix(['b', 'B']).unwrap_or(t);
        let (num, shift) = match t.chars().last() {
            Some('k' | 'K') => (&t[..t.len() - 1], 10),
            Some('m' | 'M') => (&t[..t.len() - 1], 20),
            Some('g' | 'G') => (&t[..t.len() - 1], 30),
            Some('t' | 'T') => (&t[..t.len() - 1], 40),
            _ => (t, 0),
        };
        let n: u64 = num.trim().parse().map_err(|_| err())?;
        n.checked_mul(1u64 << shift).map(ByteSize).ok_or_else(err)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// tp-qemu's subcommands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subcommand {
    Check,
    Create,
    Convert,
    Snapshot,
    Info,
    Rebase,
    Commit,
    Amend,
}

const SUBCOMMANDS: &[(&str, Subcommand)] = &[
    ("check", Subcommand::Check),
    ("create", Subcommand::Create),
    ("convert", Subcommand::Convert),
    ("snapshot", Subcommand::Snapshot),
    ("info", Subcommand::Info),
    ("rebase", Subcommand::Rebase),
    ("commit", Subcommand::Commit),
    ("amend", Subcommand::Amend),
];

/// `check_output`: which part of a command's result is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CheckOutput {
    ExitStatus,
    Stdout,
    Stderr,
}

/// `show_progress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Progress {
    /// Unset: neither `-p` nor a signal.
    Quiet,
    /// `on`: `-p`.
    Flag,
    /// `off`: SIGUSR1 to the running qemu-img.
    Signal,
}

/// An image file and its format.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ImageFile {
    path: PathBuf,
    format: String,
}

/// An image of `images` this test processes itself (no VMs).
#[derive(Debug, Clone)]
struct OwnImage {
    name: String,
    file: ImageFile,
    size: String,
    extra: Vec<String>,
    create: bool,
    force: bool,
    remove: bool,
    check: bool,
}

/// What every subcommand reads, checked before anything runs.
struct Tool {
    qemu_img: OsString,
    check_output: CheckOutput,
    pattern: Option<Regex>,
    progress: Progress,
    /// `qemu_img_options` with their values.
    options: Vec<(String, String)>,
    /// The images of `images`, when the variant has no VMs.
    own: Vec<OwnImage>,
    /// The main image's `image_size`.
    size: Option<ByteSize>,
}

/// A key a subcommand needs: its value, or a problem naming it (and the empty string).
fn need(k: &mut Keys<'_>, key: &str, sub: &str) -> String {
    match k.opt(key) {
        Some(v) => v,
        None => {
            k.problem(
                key,
                ProblemKind::Unsupported {
                    reason: format!("missing: subcommand = {sub} needs it"),
                },
            );
            String::new()
        }
    }
}

/// `name` under the test's directory (an absolute name stays), with `.ext` when given.
fn in_dir(ctx: &TestContext, name: &str, ext: Option<&str>) -> PathBuf {
    let file = match ext {
        Some(e) => format!("{name}.{e}"),
        None => name.to_string(),
    };
    ctx.dir.join(file)
}

/// Creates the directories of `path` (a relative `image_name` such as `images/sn1`).
fn parent_dirs(path: &Path) -> Result<(), TestError> {
    match path.parent() {
        Some(p) if !p.exists() => std::fs::create_dir_all(p)
            .map_err(|e| TestError::error(format!("creating {}: {e}", p.display()))),
        _ => Ok(()),
    }
}

fn remove(ctx: &TestContext, path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => ctx.log.info(format_args!("removed {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => ctx
            .log
            .warn(format_args!("removing {}: {e}", path.display())),
    }
}

impl Tool {
    fn read(ctx: &TestContext, k: &mut Keys<'_>) -> Self {
        let check_output = k.choice(
            "check_output",
            &[
                ("exit_status", CheckOutput::ExitStatus),
                ("stdout", CheckOutput::Stdout),
                ("stderr", CheckOutput::Stderr),
            ],
        );
        let pattern = k.regex("command_result_pattern", false);
        let check_output = check_output.unwrap_or(CheckOutput::ExitStatus);
        if check_output != CheckOutput::ExitStatus && k.opt("command_result_pattern").is_none() {
            k.problem(
                "command_result_pattern",
                ProblemKind::Unsupported {
                    reason: "missing: check_output = stdout/stderr needs it".into(),
                },
            );
        }
        let progress = k
            .choice(
                "show_progress",
                &[("on", Progress::Flag), ("off", Progress::Signal)],
            )
            .unwrap_or(Progress::Quiet);
        let mut options = Vec::new();
        for name in k.list("qemu_img_options") {
            match ctx.params.get(&name).filter(|v| !v.is_empty()) {
                Some(v) => options.push((name, v.to_string())),
                None => k.problem(
                    &name,
                    ProblemKind::Unsupported {
                        reason: "missing: qemu_img_options names it".into(),
                    },
                ),
            }
        }
        let no_vms = ctx.params.objects("vms").is_empty();
        let mut own = Vec::new();
        if no_vms {
            for name in ctx.params.objects("images") {
                let ip = ctx.params.object_params(name);
                let mut ik = Keys::new(&ip, format!("image {name}"), KEYS);
                if let Some(img) = OwnImage::read(ctx, name, &mut ik) {
                    own.push(img);
                }
                k.absorb(ik.take_problems());
            }
        }
        let size = match own.first() {
            Some(main) => main.size.parse::<ByteSize>().ok(),
            None => k.parse("image_size", |v| {
                v.parse::<ByteSize>().map_err(|e| e.to_string())
            }),
        };
        Tool {
            qemu_img: OsString::new(),
            check_output,
            pattern,
            progress,
            options,
            own,
            size,
        }
    }

    fn argv<I, S>(&self, args: I) -> Vec<OsString>
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        std::iter::once(self.qemu_img.clone())
            .chain(args.into_iter().map(Into::into))
            .collect()
    }

    /// `-o name=value,…` of `qemu_img_options`, when it names any.
    fn option_args(&self) -> Vec<OsString> {
        if self.options.is_empty() {
            return Vec::new();
        }
        let joined: Vec<String> = self
            .options
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        vec!["-o".into(), joined.join(",").into()]
    }

    /// Runs `argv`, signalled with SIGUSR1 when `show_progress = off` and `progress` says the
    /// command reports progress.
    async fn run(
        &self,
        ctx: &TestContext,
        argv: Vec<OsString>,
        progress: bool,
    ) -> Result<CmdOutput, TestError> {
        if progress && self.progress == Progress::Signal {
            command::run_signalled(ctx, &argv, rustix::process::Signal::USR1).await
        } else {
            command::run(ctx, &argv).await
        }
    }

    /// A qemu-img command that must succeed; a non-zero exit is the product's failure.
    async fn must(&self, ctx: &TestContext, argv: Vec<OsString>) -> Result<CmdOutput, TestError> {
        let out = command::run(ctx, &argv).await?;
        if out.success() {
            Ok(out)
        } else {
            Err(TestError::fail(out.describe()))
        }
    }

    /// tp-qemu's `check_command_output`: `check_output` of `out` judged.
    fn judge(&self, out: &CmdOutput) -> TestResult {
        let (stream, text) = match self.check_output {
            CheckOutput::ExitStatus if out.success() => return Ok(()),
            CheckOutput::ExitStatus => return Err(TestError::fail(out.describe())),
            CheckOutput::Stdout => ("stdout", &out.stdout),
            CheckOutput::Stderr => ("stderr", &out.stderr),
        };
        let Some(pattern) = &self.pattern else {
            return Err(TestError::error("command_result_pattern is unset"));
        };
        if pattern.is_match(text) {
            Ok(())
        } else {
            Err(TestError::fail(format!(
                "`{}`: its {stream} does not match command_result_pattern {:?}; it printed {:?}",
                out.display,
                pattern.as_str(),
                text.trim()
            )))
        }
    }

    /// tp-qemu's `_check`: `qemu-img check` of `img`; a format that "does not support checks"
    /// counts as checked.
    async fn check(&self, ctx: &TestContext, img: &Path, format: Option<&str>) -> TestResult {
        let mut args: Vec<OsString> = vec!["check".into()];
        if let Some(f) = format {
            args.extend(["-f".into(), f.into()]);
        }
        args.push(img.into());
        let out = command::run(ctx, &self.argv(args)).await?;
        if out.success() {
            Ok(())
        } else if out.stderr.contains("does not support checks") {
            ctx.log.info(format_args!(
                "{}: its format does not support checks",
                img.display()
            ));
            Ok(())
        } else {
            Err(TestError::fail(format!(
                "checking {}: {}",
                img.display(),
                out.describe()
            )))
        }
    }

    /// `qemu-img info --output=json` of `img`.
    async fn info(&self, ctx: &TestContext, img: &ImageFile) -> Result<Value, TestError> {
        let out = self
            .must(
                ctx,
                self.argv([
                    OsString::from("info"),
                    "--output=json".into(),
                    "-f".into(),
                    img.format.clone().into(),
                    img.path.clone().into(),
                ]),
            )
            .await?;
        serde_json::from_str(&out.stdout)
            .map_err(|e| TestError::error(format!("`{}` printed invalid JSON: {e}", out.display)))
    }

    /// `qemu-img create -f FORMAT [-b BACKING -F FMT] [-o OPTS] PATH [SIZE]`, which must
    /// succeed.
    async fn create(
        &self,
        ctx: &TestContext,
        img: &ImageFile,
        backing: Option<&ImageFile>,
        opts: &[String],
        size: Option<&str>,
    ) -> TestResult {
        parent_dirs(&img.path)?;
        let mut args: Vec<OsString> = vec!["create".into(), "-f".into(), img.format.clone().into()];
        if let Some(b) = backing {
            args.extend([
                "-b".into(),
                b.path.clone().into(),
                "-F".into(),
                b.format.clone().into(),
            ]);
        }
        if !opts.is_empty() {
            args.extend(["-o".into(), opts.join(",").into()]);
        }
        args.push(img.path.clone().into());
        if let Some(s) = size {
            args.push(s.into());
        }
        self.must(ctx, self.argv(args)).await.map(|_| ())
    }

    /// `-p` when `show_progress = on`.
    fn progress_flag(&self) -> Option<OsString> {
        (self.progress == Progress::Flag).then(|| "-p".into())
    }

    /// tp-qemu's `_convert`: `qemu-img convert [-c] [-p] [-f FMT] -O FMT [-o …] SRC DST`,
    /// judged by `check_output`.
    async fn convert(
        &self,
        ctx: &TestContext,
        src: &Path,
        src_format: Option<&str>,
        dst: &ImageFile,
        compressed: bool,
    ) -> TestResult {
        let mut args: Vec<OsString> = vec!["convert".into()];
        if compressed {
            args.push("-c".into());
        }
        args.extend(self.progress_flag());
        if let Some(f) = src_format {
            args.extend(["-f".into(), f.into()]);
        }
        args.extend(["-O".into(), dst.format.clone().into()]);
        args.extend(self.option_args());
        args.push(src.into());
        args.push(dst.path.clone().into());
        let out = self.run(ctx, self.argv(args), true).await?;
        self.judge(&out)
    }

    /// The images of `images` this test creates (no VMs), before the subcommand.
    async fn prepare(&self, ctx: &TestContext) -> TestResult {
        for img in &self.own {
            if img.force || (img.create && !img.file.path.exists()) {
                ctx.log
                    .info(format_args!("creating image {} (no VMs)", img.name));
                self.create(ctx, &img.file, None, &img.extra, Some(&img.size))
                    .await?;
            }
        }
        Ok(())
    }

    /// After the subcommand: `check_image` (when it passed), then `remove_image`.
    async fn post(&self, ctx: &TestContext, passed: bool) -> TestResult {
        let mut result = Ok(());
        for img in &self.own {
            if passed && img.check && img.file.path.exists() {
                let r = self
                    .check(ctx, &img.file.path, Some(&img.file.format))
                    .await;
                if result.is_ok() {
                    result = r;
                }
            }
            if img.remove {
                remove(ctx, &img.file.path);
            }
        }
        result
    }

    /// The main image when the variant has no VMs: the first of `images`.
    fn own_main(&self) -> Result<ImageFile, TestError> {
        self.own
            .first()
            .map(|i| i.file.clone())
            .ok_or_else(|| TestError::error("images names no image: the test has no main image"))
    }
}

impl OwnImage {
    fn read(ctx: &TestContext, name: &str, k: &mut Keys<'_>) -> Option<OwnImage> {
        let image_name = k.opt("image_name");
        if image_name.is_none() {
            k.problem("image_name", ProblemKind::Missing);
        }
        let format = k.text("image_format");
        let size = k.text("image_size");
        let extra = k
            .text("image_extra_params")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        let img = OwnImage {
            name: name.to_string(),
            file: ImageFile {
                path: in_dir(ctx, &image_name?, Some(&format)),
                format,
            },
            size,
            extra,
            create: k.bool("create_image"),
            force: k.bool("force_create_image"),
            remove: k.bool("remove_image"),
            check: k.bool("check_image"),
        };
        Some(img)
    }
}

/// What one subcommand needs, read before anything runs.
enum Job {
    Check(offline::CheckKeys),
    Create(offline::CreateKeys),
    Info,
    Snapshot,
    Amend(offline::AmendKeys),
    Convert(boot::ConvertKeys),
    Rebase(boot::RebaseKeys),
    Commit(boot::CommitKeys),
}

/// The `qemu_img` test.
pub fn run(ctx: &TestContext) -> BoxFuture<'_, TestResult> {
    Box::pin(async move {
        let mut k = ctx.keys(&SPEC);
        let sub = k.choice("subcommand", SUBCOMMANDS);
        let mut tool = Tool::read(ctx, &mut k);
        let boots = boot::BootKeys::read(&mut k);
        let job = sub.map(|s| match s {
            Subcommand::Check => Job::Check(offline::CheckKeys::read(&mut k)),
            Subcommand::Create => Job::Create(offline::CreateKeys::read(&mut k)),
            Subcommand::Info => Job::Info,
            Subcommand::Snapshot => Job::Snapshot,
            Subcommand::Amend => Job::Amend(offline::AmendKeys::read(ctx, &mut k)),
            Subcommand::Convert => Job::Convert(boot::ConvertKeys::read(&mut k)),
            Subcommand::Rebase => Job::Rebase(boot::RebaseKeys::read(&mut k)),
            Subcommand::Commit => Job::Commit(boot::CommitKeys::read(&mut k, &boots)),
        });
        let (job, boots) = read_params(k, (job, boots))?;
        let job = SPEC.declared(job, "subcommand")?;
        tool.qemu_img = HostTools::read(&ctx.params)?.qemu_img.into();
        tool.prepare(ctx).await?;
        let result = match &job {
            Job::Check(c) => offline::check(ctx, &tool, c).await,
            Job::Create(c) => offline::create(ctx, &tool, c).await,
            Job::Info => offline::info(ctx, &tool).await,
            Job::Snapshot => offline::snapshot(ctx, &tool).await,
            Job::Amend(a) => offline::amend(ctx, &tool, a).await,
            Job::Convert(c) => boot::convert(ctx, &tool, &boots, c).await,
            Job::Rebase(r) => boot::rebase(ctx, &tool, &boots, r).await,
            Job::Commit(c) => boot::commit(ctx, &tool, &boots, c).await,
        };
        let post = tool.post(ctx, result.is_ok()).await;
        result.and(post)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!("64M".parse::<ByteSize>(), Ok(ByteSize(64 << 20)));
        assert_eq!("10G".parse::<ByteSize>(), Ok(ByteSize(10_737_418_240)));
        assert_eq!("512k".parse::<ByteSize>(), Ok(ByteSize(512 << 10)));
        assert_eq!("4096".parse::<ByteSize>(), Ok(ByteSize(4096)));
        assert!("lots".parse::<ByteSize>().is_err());
        assert!("99999999999T".parse::<ByteSize>().is_err());
    }

    #[test]
    fn every_subcommand_is_listed_once() {
        let mut names: Vec<&str> = SUBCOMMANDS.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 8);
    }
}
