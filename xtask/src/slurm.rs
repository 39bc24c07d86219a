//! `cargo xtask slurm-check`: the bundled suite's fast tests as a job array on a real,
//! single-host Slurm, merged, and checked against an unsharded selection.
//!
//! 1. A private cluster in a temporary directory: a munge key, `munged` on its own socket,
//!    a `slurm.conf` naming this host (one node with this machine's CPUs, one partition,
//!    `proctrack/linuxproc`, no accounting) on two free ports, `slurmctld` and `slurmd` in the
//!    foreground as children of this process. Nothing under `/etc` is read or written; a
//!    system Slurm, if any, is not touched (its ports and sockets are not ours).
//! 2. `sbatch --wait --array=0-3` of `kvmtest run … --shard auto` on the suite's fast
//!    variants ([`FAST`]): each array task reads its shard from `SLURM_ARRAY_TASK_*` and
//!    writes its own job directory (`…-slurm<JOB>-shard-K-of-4`). The batch script is a
//!    constant `exec "$@"`: the argv is passed as the script's arguments, never as shell text.
//! 3. `kvmtest merge` of the four directories; the merged `results.json` must hold exactly
//!    the variants (index and name) that `kvmtest run --list` selects without a shard, all
//!    passed, and each shard must say it came from the Slurm array.
//! 4. Always, also on failure or panic: the array is cancelled, the daemons are stopped (and
//!    killed after 10 s), and no `slurmctld`, `slurmd`, `slurmstepd` or `munged` of this
//!    cluster may remain. On failure the daemons' logs and the tasks' output are printed.
//!
//! Needs root (slurmd starts job steps as the submitting user and munged guards its key) and
//! Debian's `slurmctld`, `slurmd`, `slurm-client` and `munge` (installed by `cargo xtask deps`).
//! Results stay in `<target>/slurm-check/results/` for a look afterwards.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use rustix::process::{kill_process, Pid, Signal};
use serde_json::Value;

use crate::host::{is_root, show, stdout_of};
use crate::run_suite;

/// The array's size.
const TASKS: usize = 4;

/// `kvmtest run` filters that leave the suite's fast variants: the initramfs guest's tests
/// without the slower NIC hotplugs and reboots (15 variants, about 45 s of guest time).
const FAST: &[&str] = &[
    "--no",
    "disk_guest",
    "--no",
    "nic_hotplug",
    "--no",
    "reboot",
];

/// How long the array may take before it is cancelled.
const ARRAY_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// `cargo xtask slurm-check`.
pub fn main(args: &[String]) -> Result<()> {
    ensure!(
        args.is_empty(),
        "usage: cargo xtask slurm-check (no arguments)"
    );
    ensure!(
        is_root(),
        "slurm-check starts munged, slurmctld and slurmd: it needs root"
    );
    let p = run_suite::prepare()?;
    let out_dir = vm::fixtures::target_dir().join("slurm-check");
    let results = out_dir.join("results");
    if results.exists() {
        fs::remove_dir_all(&results).with_context(|| format!("removing {}", results.display()))?;
    }
    fs::create_dir_all(&results).with_context(|| format!("creating {}", results.display()))?;
    let started = Instant::now();
    let cluster = Cluster::start()?;
    eprintln!(
        "slurm-check: cluster up in {:.1} s (node {}, {} CPUs, config {})",
        started.elapsed().as_secs_f64(),
        cluster.node,
        cluster.cpus,
        cluster.conf.display()
    );
    let outcome = check(&cluster, &p, &results);
    if outcome.is_err() {
        cluster.print_logs(&results);
    }
    let stopped = cluster.stop();
    let report = outcome?;
    stopped?;
    eprintln!(
        "slurm-check: ok in {:.1} s: {report}",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Submits the array, merges, compares; returns a one-line summary.
fn check(cluster: &Cluster, p: &run_suite::Prepared, results: &Path) -> Result<String> {
    let mut run_args: Vec<String> = vec![
        "--results-dir".into(),
        results.display().to_string(),
        "--progress".into(),
        "plain".into(),
        "--retries".into(),
        "1".into(),
    ];
    run_args.extend(FAST.iter().map(|s| (*s).to_owned()));
    // The selection one unsharded run would have.
    let mut list_args = run_args.clone();
    list_args.push("--list".into());
    let argv = run_suite::suite_argv(p, None, &list_args);
    let listed = stdout_of(&mut command(&argv, &p.root))?;
    let expected: BTreeSet<(usize, String)> = listed
        .lines()
        .map(|l| {
            let (i, name) = l.split_once(' ').context("a --list line without a space")?;
            Ok((i.parse()?, name.to_owned()))
        })
        .collect::<Result<_>>()?;
    ensure!(
        expected.len() >= TASKS,
        "the fast selection has {} variants, fewer than the {TASKS} tasks",
        expected.len()
    );

    run_args.extend(["--shard".into(), "auto".into()]);
    let task_argv = run_suite::suite_argv(p, None, &run_args);
    let job = cluster.submit_array(&task_argv, &p.root, results)?;

    let tag = format!("-slurm{job}-shard-");
    let mut shards: Vec<PathBuf> = fs::read_dir(results)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|d| d.is_dir() && d.to_string_lossy().contains(&tag))
        .collect();
    shards.sort();
    ensure!(
        shards.len() == TASKS,
        "expected {TASKS} job directories named *{tag}* in {}, found {:?}",
        results.display(),
        shards
    );
    for d in &shards {
        let r = read_json(&d.join("results.json"))?;
        let source = r["shard_source"].as_str().unwrap_or_default();
        ensure!(
            source.contains("SLURM_ARRAY_TASK_ID="),
            "{}: the shard did not come from the Slurm array: shard_source {source:?}",
            d.display()
        );
    }

    let mut merge: Vec<OsString> = vec![
        p.kvmtest.clone().into(),
        "merge".into(),
        "--results-dir".into(),
        results.into(),
        "--job-id".into(),
        "merged".into(),
    ];
    merge.extend(shards.iter().map(|d| d.clone().into_os_string()));
    let merge_out = stdout_of(&mut command(&merge, &p.root))?;
    eprint!("{merge_out}");
    let merged = read_json(&results.join("merged").join("results.json"))?;
    let got: BTreeSet<(usize, String)> = merged["tests"]
        .as_array()
        .context("merged results.json has no tests")?
        .iter()
        .map(|t| {
            Ok((
                usize::try_from(t["index"].as_u64().context("a test without an index")?)?,
                t["name"]
                    .as_str()
                    .context("a test without a name")?
                    .to_owned(),
            ))
        })
        .collect::<Result<_>>()?;
    if got != expected {
        let missing: Vec<_> = expected.difference(&got).collect();
        let extra: Vec<_> = got.difference(&expected).collect();
        bail!("the merged result is not the unsharded selection: missing {missing:?}, extra {extra:?}");
    }
    let counts = &merged["counts"];
    let bad = counts["fail"].as_u64().unwrap_or(1)
        + counts["error"].as_u64().unwrap_or(1)
        + counts["cancel"].as_u64().unwrap_or(1);
    ensure!(bad == 0, "the merged result has failures: {counts}");
    Ok(format!(
        "Slurm array job {job}: {TASKS} tasks, {} variants merged, the same as one unsharded run; counts {counts}",
        got.len()
    ))
}

fn read_json(path: &Path) -> Result<Value> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

fn command(argv: &[OsString], dir: &Path) -> Command {
    let mut c = Command::new(&argv[0]);
    c.args(&argv[1..]).current_dir(dir);
    c
}

/// A single-host Slurm (munged, slurmctld, slurmd) in a temporary directory.
struct Cluster {
    /// Its files: key, sockets, config, state, logs (removed on drop).
    dir: tempfile::TempDir,
    conf: PathBuf,
    node: String,
    cpus: usize,
    /// munged, slurmctld, slurmd.
    daemons: Vec<(&'static str, Child)>,
}

impl Cluster {
    fn start() -> Result<Self> {
        // Short, so munged's socket path fits sun_path whatever the target dir is.
        let dir = tempfile::Builder::new()
            .prefix("kvmtest-slurm.")
            .tempdir_in("/tmp")
            .context("creating the cluster's directory")?;
        let d = dir.path().to_path_buf();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o711))?;
        for sub in ["state", "spool"] {
            fs::create_dir(d.join(sub))?;
        }
        let node = fs::read_to_string("/proc/sys/kernel/hostname")
            .context("reading the host name")?
            .trim()
            .split('.')
            .next()
            .unwrap_or_default()
            .to_owned();
        ensure!(!node.is_empty(), "the host has no name");
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut cluster = Cluster {
            conf: d.join("slurm.conf"),
            dir,
            node,
            cpus,
            daemons: Vec::new(),
        };

        // munge: a random key only root can read, and a daemon on its own socket.
        let key = d.join("munge.key");
        let mut bytes = vec![0u8; 1024];
        fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
            .context("reading /dev/urandom")?;
        fs::write(&key, &bytes)?;
        fs::set_permissions(&key, fs::Permissions::from_mode(0o400))?;
        let socket = d.join("munge.sock");
        let mut munged = Command::new(sbin("munged"));
        munged
            .arg("--foreground")
            .arg("--force")
            .arg(flag("--socket=", &socket))
            .arg(flag("--key-file=", &key))
            .arg(flag("--log-file=", &d.join("munged.log")))
            .arg(flag("--pid-file=", &d.join("munged.pid")))
            .arg(flag("--seed-file=", &d.join("munged.seed")));
        cluster.spawn("munged", munged, &d.join("munged.out"))?;
        wait_for("munged's socket", Duration::from_secs(10), || {
            Ok(socket.exists())
        })?;

        let (ctld_port, d_port) = (free_port()?, free_port()?);
        let conf = format!(
            "# written by cargo xtask slurm-check\n\
             ClusterName=kvmtest\n\
             SlurmctldHost={node}(127.0.0.1)\n\
             SlurmctldPort={ctld_port}\n\
             SlurmdPort={d_port}\n\
             SlurmUser=root\n\
             SlurmdUser=root\n\
             AuthType=auth/munge\n\
             AuthInfo=socket={socket}\n\
             CredType=cred/munge\n\
             StateSaveLocation={state}\n\
             SlurmdSpoolDir={spool}\n\
             SlurmctldPidFile={d}/slurmctld.pid\n\
             SlurmdPidFile={d}/slurmd.pid\n\
             SlurmctldLogFile={d}/slurmctld.log\n\
             SlurmdLogFile={d}/slurmd.log\n\
             ProctrackType=proctrack/linuxproc\n\
             TaskPlugin=task/none\n\
             SelectType=select/cons_tres\n\
             SelectTypeParameters=CR_CPU\n\
             JobAcctGatherType=jobacct_gather/none\n\
             AccountingStorageType=accounting_storage/none\n\
             MpiDefault=none\n\
             ReturnToService=2\n\
             SlurmdParameters=config_overrides\n\
             NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN\n\
             PartitionName=kvmtest Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n",
            node = cluster.node,
            socket = socket.display(),
            state = d.join("state").display(),
            spool = d.join("spool").display(),
            d = d.display(),
        );
        fs::write(&cluster.conf, conf)?;
        let mut ctld = Command::new(sbin("slurmctld"));
        ctld.args(["-D", "-i", "-f"]).arg(&cluster.conf);
        cluster.spawn("slurmctld", ctld, &d.join("slurmctld.out"))?;
        let mut slurmd = Command::new(sbin("slurmd"));
        slurmd.args(["-D", "-f"]).arg(&cluster.conf);
        cluster.spawn("slurmd", slurmd, &d.join("slurmd.out"))?;
        wait_for("the node to be idle", Duration::from_secs(60), || {
            cluster.alive()?;
            let state = cluster
                .client("sinfo")
                .args(["-h", "-o", "%T", "-n"])
                .arg(&cluster.node)
                .output()?;
            Ok(String::from_utf8_lossy(&state.stdout).trim() == "idle")
        })
        .inspect_err(|_| cluster.print_logs(Path::new("")))?;
        Ok(cluster)
    }

    fn spawn(&mut self, name: &'static str, mut cmd: Command, log: &Path) -> Result<()> {
        let out = fs::File::create(log)?;
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .env("SLURM_CONF", &self.conf);
        eprintln!("$ {}", show(&cmd));
        let child = cmd.spawn().with_context(|| format!("starting {name}"))?;
        self.daemons.push((name, child));
        Ok(())
    }

    /// An error when a daemon has exited.
    fn alive(&mut self) -> Result<()> {
        for (name, child) in &mut self.daemons {
            if let Some(status) = child.try_wait()? {
                bail!("{name} exited ({status})");
            }
        }
        Ok(())
    }

    /// A Slurm client command for this cluster.
    fn client(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", &self.conf).stdin(Stdio::null());
        c
    }

    /// Submits `argv` as a `TASKS`-task array and waits for it; returns the array's job id.
    fn submit_array(&self, argv: &[OsString], root: &Path, results: &Path) -> Result<String> {
        let script = self.dir.path().join("task.sh");
        fs::write(
            &script,
            "#!/bin/sh\n# the task's argv comes as arguments\nexec \"$@\"\n",
        )?;
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755))?;
        let mut sbatch = self.client("sbatch");
        sbatch
            .arg("--wait")
            .arg("--parsable")
            .arg(format!("--array=0-{}", TASKS - 1))
            .arg("--cpus-per-task=1")
            .arg("--job-name=kvmtest-fast")
            .arg(flag("--chdir=", root))
            .arg(flag("--output=", &results.join("slurm-%A_%a.out")))
            .arg(format!("--time={}", ARRAY_TIMEOUT.as_secs() / 60))
            .arg(&script)
            .args(argv)
            .stdout(Stdio::piped());
        eprintln!("$ {}", show(&sbatch));
        let mut child = sbatch.spawn().context("starting sbatch")?;
        let deadline = Instant::now() + ARRAY_TIMEOUT + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = child.try_wait()? {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the array did not finish in {ARRAY_TIMEOUT:?}");
            }
            sleep(Duration::from_millis(500));
        };
        let mut stdout = String::new();
        if let Some(mut o) = child.stdout.take() {
            std::io::Read::read_to_string(&mut o, &mut stdout)?;
        }
        let job = stdout
            .trim()
            .split(';')
            .next()
            .unwrap_or_default()
            .to_owned();
        ensure!(
            !job.is_empty() && job.chars().all(|c| c.is_ascii_digit()),
            "sbatch printed no job id: {stdout:?}"
        );
        let accounting = self
            .client("scontrol")
            .args(["show", "job", &job])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        ensure!(
            status.success(),
            "array job {job}: a task failed ({status}); {}",
            accounting
                .lines()
                .filter(|l| l.contains("JobState") || l.contains("ExitCode"))
                .collect::<Vec<_>>()
                .join("; ")
        );
        Ok(job)
    }

    fn print_logs(&self, results: &Path) {
        let d = self.dir.path();
        let mut files: Vec<PathBuf> = [
            "munged.out",
            "munged.log",
            "slurmctld.out",
            "slurmctld.log",
            "slurmd.out",
            "slurmd.log",
        ]
        .iter()
        .map(|f| d.join(f))
        .collect();
        if let Ok(entries) = fs::read_dir(results) {
            files.extend(
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|e| e == "out")),
            );
        }
        for f in files {
            if let Ok(text) = fs::read_to_string(&f) {
                let lines: Vec<&str> = text.lines().collect();
                let tail = &lines[lines.len().saturating_sub(40)..];
                eprintln!("---- {} (last {} lines)", f.display(), tail.len());
                for l in tail {
                    eprintln!("{l}");
                }
            }
        }
    }

    /// Cancels every job, stops the daemons, and fails when any process of this cluster
    /// remains.
    fn stop(mut self) -> Result<()> {
        self.shutdown();
        let left = leftovers(self.dir.path());
        ensure!(left.is_empty(), "Slurm processes left behind: {left:?}");
        Ok(())
    }

    fn shutdown(&mut self) {
        if self.daemons.is_empty() {
            return;
        }
        let _ = self
            .client("scancel")
            .args(["--full", "--user", "root"])
            .output();
        // The tasks' kvmtest stop their VMs on SIGTERM; give them the time to.
        let _ = wait_for("the jobs to end", Duration::from_secs(30), || {
            let q = self.client("squeue").args(["-h", "-o", "%i"]).output()?;
            Ok(q.status.success() && q.stdout.is_empty())
        });
        // slurmd and slurmctld first, munged last (they talk to it while stopping).
        for (name, mut child) in self.daemons.drain(..).rev() {
            signal(child.id(), Signal::TERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() > deadline => {
                        eprintln!("slurm-check: {name} ignored SIGTERM for 10 s: killing it");
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => sleep(Duration::from_millis(100)),
                }
            }
        }
        // A job step orphaned by a killed slurmd: killed by its cmdline (our config's path).
        for pid in leftovers(self.dir.path()) {
            signal(pid, Signal::KILL);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Pids of processes whose command line or environment names `dir` (this cluster's daemons
/// and job steps), other than this process.
fn leftovers(dir: &Path) -> Vec<u32> {
    let needle = dir.to_string_lossy().into_owned();
    let me = std::process::id();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .filter(|pid| {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let ours = String::from_utf8_lossy(&cmdline).contains(&needle)
                || (comm.starts_with("slurmstepd")
                    && fs::read(format!("/proc/{pid}/environ"))
                        .is_ok_and(|e| String::from_utf8_lossy(&e).contains(&needle)));
            ours
        })
        .collect()
}

/// Sends `sig` to `pid`; a process that is gone already is not an error.
fn signal(pid: u32, sig: Signal) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = kill_process(pid, sig);
    }
}

fn wait_for(what: &str, timeout: Duration, mut ready: impl FnMut() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if ready()? {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        sleep(Duration::from_millis(200));
    }
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `--name=PATH` as one argument.
fn flag(name: &str, path: &Path) -> OsString {
    let mut s = OsString::from(name);
    s.push(path);
    s
}

/// A daemon's path: on `PATH`, else Debian's `/usr/sbin` (not on a user's `PATH`).
fn sbin(name: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    on_path.unwrap_or_else(|| Path::new("/usr/sbin").join(name))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic with the error is the report
mod tests {
    use super::*;

    #[test]
    fn the_fast_selection_leaves_out_the_disk_guest() {
        assert!(FAST.windows(2).any(|w| w == ["--no", "disk_guest"]));
        assert_eq!(FAST.len() % 2, 0, "flag and value pairs");
    }

    #[test]
    fn leftovers_finds_processes_naming_a_directory() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let file = dir.path().join("followed");
        fs::write(&file, "").expect("writing the followed file");
        let mut live = Command::new("tail")
            .arg("-f")
            .arg(&file)
            .spawn()
            .expect("starting tail");
        // Until the child has exec'd, its command line is still this test's: wait for tail's.
        let deadline = Instant::now() + Duration::from_secs(10);
        let found = loop {
            let found = leftovers(dir.path());
            if found.contains(&live.id()) || Instant::now() > deadline {
                break found;
            }
            sleep(Duration::from_millis(20));
        };
        let _ = live.kill();
        let _ = live.wait();
        assert!(found.contains(&live.id()), "{found:?} lacks {}", live.id());
        assert!(!leftovers(dir.path()).contains(&live.id()));
    }
}
