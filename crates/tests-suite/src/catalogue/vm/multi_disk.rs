//! `multi_disk`, as tp-qemu's `multi_disk.py` runs it on a Linux guest.
//!
//! 1. The disks of `stg_params` (see [`super::stg_params`]) are added to the variant's params
//!    (`images += stgN`, `KEY_stgN`); with `multi_disk_params_only = yes` their table is logged
//!    and the test ends.
//! 2. Their images are created as the params say (`force_create_image`…), and the main VM is
//!    started with them (a running one whose command line differs is restarted).
//! 3. With `check_guest_proc_scsi = yes`, QEMU must list every added disk (`query-block`) and
//!    the guest's `/proc/scsi/scsi` at least as many disks as are on SCSI (tp-qemu compares
//!    the qtree with the params too; kvmtest's command lines are checked by its own tests).
//! 4. The data disks are the guest's disks of `stg_image_size` (`lsblk`, as avocado-vt's
//!    `get_linux_disks`): at least `stg_image_num` of them.
//! 5. `n_repeat` rounds: each disk gets a `labeltype` label and one partition over the whole
//!    disk (`parted`), a file system drawn from `file_system` (`mkfs -f`/`-F`), mounted on
//!    `/mnt/PART`; the commands `cmd_list` names run with `%s` = the partition, and
//!    `compare_command` must print `check_result_key_word`; `dd_test` (`%s` twice: the
//!    partition) must exit 0. Then `need_reboot` reboots, `need_shutdown` shuts the guest
//!    down and starts it again; the disks are found again and their partitions unmounted and
//!    removed.
//! 6. Always: `post_cmd`; then the VM is destroyed (its command line has this test's disks)
//!    and the disks' images removed as `remove_image` says.
//!
//! A Windows guest is an error naming `os_type`.

use std::time::Duration;

use spec::{Processing, Teardown};

use super::common::{
    cancellable, fail_env, guest_output, guest_status_output, linux_only, login, login_via,
    poll_guest, random_below,
};
use super::stg_params::{self, StgDisks};
use super::MULTI_DISK;
use crate::catalogue::session::{login_timeout, main_vm_name};
use crate::env::{LoginVia, RebootMethod, ShutdownMethod};
use crate::future::BoxFuture;
use crate::registry::{read_params, TestContext};
use crate::shell::RemoteShell;
use crate::verdict::{TestError, TestResult};

/// The guest side of the test: tp-qemu's keys (avocado-vt's `Linux.cfg` sets the commands).
struct GuestCmds {
    via: LoginVia,
    n_repeat: u64,
    cmd_timeout: Duration,
    file_systems: Vec<String>,
    labeltype: String,
    size: String,
    count: usize,
    /// The commands `cmd_list` names: (key, template).
    io: Vec<(String, String)>,
    compare: String,
    key_word: String,
    dd_test: Option<String>,
    need_reboot: bool,
    need_shutdown: bool,
    post: Option<String>,
    check_scsi: bool,
    only_qtree: bool,
}

impl GuestCmds {
    fn read(ctx: &TestContext, count: usize) -> Result<GuestCmds, TestError> {
        let mut k = ctx.keys(&MULTI_DISK);
        let via = login_via(&mut k);
        let n_repeat = k.u64("n_repeat");
        let cmd_timeout = k.secs("cmd_timeout");
        let file_systems: Vec<String> = k.list("file_system");
        if file_systems.is_empty() {
            k.problem(
                "file_system",
                spec::ProblemKind::Invalid {
                    expected: "the file systems to format with (tp-qemu: \"xfs ext4\")".into(),
                },
            );
        }
        let labeltype = k.text("labeltype");
        let size = k.text("stg_image_size");
        let names = k.list("cmd_list");
        let compare = k.text("compare_command");
        let key_word = k.text("check_result_key_word");
        let dd_test = k.opt("dd_test").filter(|d| d != "no");
        let need_reboot = k.bool("need_reboot");
        let need_shutdown = k.bool("need_shutdown");
        let post = k.opt("post_cmd");
        let check_scsi = k.bool("check_guest_proc_scsi");
        let only_qtree = k.bool("multi_disk_only_qtree");
        linux_only(
            &mut k,
            "tp-qemu's diskpart formatting of Windows disks is not supported",
        );
        let mut io = Vec::new();
        for name in &names {
            match ctx.params.get(name) {
                Some(t) => io.push((name.clone(), t.to_owned())),
                None => k.problem(
                    "cmd_list",
                    spec::ProblemKind::Invalid {
                        expected: format!("names of set keys ({name} is not set)"),
                    },
                ),
            }
        }
        let (via, n_repeat, cmd_timeout) = read_params(k, (via, n_repeat, cmd_timeout))?;
        Ok(GuestCmds {
            via: MULTI_DISK.declared(via, "serial_login")?,
            n_repeat: MULTI_DISK.declared(n_repeat, "n_repeat")?,
            cmd_timeout: MULTI_DISK.declared(cmd_timeout, "cmd_timeout")?,
            file_systems,
            labeltype,
            size,
            count,
            io,
            compare,
            key_word,
            dd_test,
            need_reboot,
            need_shutdown,
            post,
            check_scsi,
            only_qtree,
        })
    }
}

/// `size` (`1G`, `100M`, `512K`, a number of bytes) in MiB, as avocado-vt's
/// `normalize_data_size(size, "M")`.
fn mib(size: &str) -> Option<u64> {
    let s = size.trim();
    let (num, unit) = match s.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => (&s[..i], s[i..].to_ascii_uppercase()),
        None => (s, String::new()),
    };
    let n: f64 = num.trim().parse().ok()?;
    let factor = match unit.trim_end_matches('B').trim_end_matches('I') {
        "" => 1.0 / 1024.0 / 1024.0,
        "K" => 1.0 / 1024.0,
        "M" => 1.0,
        "G" => 1024.0,
        "T" => 1024.0 * 1024.0,
        _ => return None,
    };
    let v = (n * factor).round();
    (v >= 1.0).then_some(v as u64)
}

/// `template` with its `%s` replaced by `args` in order (Python's `%`): a count that does not
/// match is the params' error, naming `key`.
fn fill(key: &str, template: &str, args: &[&str]) -> Result<String, TestError> {
    let parts: Vec<&str> = template.split("%s").collect();
    if parts.len() - 1 != args.len() {
        return Err(TestError::error(format!(
            "`{key}` = {template:?}: expected {} %s (it gets {}), found {}",
            args.len(),
            args.join(", "),
            parts.len() - 1
        )));
    }
    let mut out = String::from(parts[0]);
    for (a, p) in args.iter().zip(&parts[1..]) {
        out.push_str(a);
        out.push_str(p);
    }
    Ok(out)
}

/// Runs `cmd` (the value of `key`) and fails with its output when it exits non-zero.
async fn run_checked(
    ctx: &TestContext,
    shell: &mut Box<dyn RemoteShell>,
    key: &str,
    cmd: &str,
    timeout: Duration,
) -> Result<String, TestError> {
    let (status, out) = guest_status_output(ctx, shell, cmd, timeout).await?;
    if status != 0 {
        return Err(TestError::fail(format!(
            "`{cmd}` ({key}) exited {status}: {}",
            out.trim_end()
        )));
    }
    Ok(out)
}

/// The table of added disks, for the log.
fn table(disks: &StgDisks) -> String {
    disks
        .disks
        .iter()
        .map(|(name, kv)| {
            let cols: Vec<String> = kv.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{name}: {}", cols.join(" "))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `type = multi_disk`.
pub fn run(ctx: &TestContext) -> BoxFuture<'_, TestResult> {
    Box::pin(async move {
        let disks = stg_params::expand(&ctx.params).map_err(|e| TestError::error(e.0))?;
        ctx.log.info(format_args!(
            "{} disks added:\n{}",
            disks.disks.len(),
            table(&disks)
        ));
        if ctx.params.get("multi_disk_params_only") == Some("yes") {
            return Ok(());
        }
        let g = GuestCmds::read(ctx, disks.disks.len())?;
        let Some(size_mib) = mib(&g.size) else {
            return Err(TestError::error(format!(
                "stg_image_size = {:?}: expected a size such as 1G or 100M",
                g.size
            )));
        };
        let params = disks.apply(&ctx.params);
        let vm_name = main_vm_name(ctx)?;
        let processing = Processing::before(&params)
            .map_err(|e| TestError::error(crate::error::error_chain(&e)))?;
        let added: Vec<&str> = disks.disks.iter().map(|(n, _)| n.as_str()).collect();
        let images: Vec<_> = processing
            .vms
            .iter()
            .filter(|v| v.name == vm_name)
            .flat_map(|v| v.images.iter())
            .filter(|i| added.contains(&i.name.as_str()))
            .cloned()
            .collect();
        for image in &images {
            cancellable(ctx, async {
                ctx.env
                    .prepare_image(&vm_name, image, &params)
                    .await
                    .map_err(TestError::from)
            })
            .await?;
        }
        let result = with_disks(ctx, &g, &params, &vm_name, size_mib).await;
        // This VM's command line has the test's disks: it goes, then their images.
        let destroyed = ctx.env.destroy_vm(&vm_name, Teardown::Graceful).await;
        for image in images.iter().filter(|i| i.remove) {
            if let Err(e) = ctx.env.remove_image(&vm_name, &image.name, &params).await {
                ctx.log.warn(format_args!(
                    "removing the image of {}: {}",
                    image.name,
                    crate::error::error_chain(&e)
                ));
            }
        }
        result?;
        destroyed.map_err(TestError::from)
    })
}

/// Starts the VM with `params` and logs in.
async fn start(
    ctx: &TestContext,
    g: &GuestCmds,
    params: &params::Params,
    vm_name: &str,
) -> Result<
    (
        std::sync::Arc<dyn crate::env::GuestVm>,
        Box<dyn RemoteShell>,
    ),
    TestError,
> {
    cancellable(ctx, async {
        ctx.env
            .start_vm(vm_name, params, &ctx.dir)
            .await
            .map_err(TestError::from)
    })
    .await?;
    let vm = ctx.env.vm(vm_name).map_err(TestError::from)?;
    let shell = login(ctx, &vm, g.via).await?;
    Ok((vm, shell))
}

/// Steps 2–6 on the VM started with `params`.
async fn with_disks(
    ctx: &TestContext,
    g: &GuestCmds,
    params: &params::Params,
    vm_name: &str,
    size_mib: u64,
) -> TestResult {
    let (vm, mut shell) = start(ctx, g, params, vm_name).await?;
    if g.check_scsi {
        check_scsi(ctx, &mut shell, vm.as_ref(), params, g.count).await?;
        if g.only_qtree {
            return Ok(());
        }
    }
    let result = rounds(ctx, g, params, vm_name, vm, &mut shell, size_mib).await;
    if let Some(c) = &g.post {
        if let Err(e) = guest_status_output(ctx, &mut shell, c, g.cmd_timeout).await {
            ctx.log.warn(format_args!("post_cmd: {e}"));
        }
    }
    result
}

/// Step 3.
async fn check_scsi(
    ctx: &TestContext,
    shell: &mut Box<dyn RemoteShell>,
    vm: &dyn crate::env::GuestVm,
    params: &params::Params,
    added: usize,
) -> TestResult {
    let blocks = cancellable(ctx, async {
        vm.qmp("query-block", serde_json::json!({}))
            .await
            .map_err(TestError::from)
    })
    .await?;
    let listed = blocks.to_string();
    for i in 0..added {
        let name = format!("stg{i}");
        if !listed.contains(&format!("\"{name}\"")) && !listed.contains(&format!("_{name}\"")) {
            return Err(TestError::fail(format!(
                "QEMU's query-block does not list the added disk {name}"
            )));
        }
    }
    let scsi = params
        .objects("images")
        .iter()
        .filter(|i| {
            params
                .object_params(i)
                .get("drive_format")
                .is_some_and(|f| f.starts_with("scsi") || f == "lsi")
        })
        .count();
    let proc = guest_output(ctx, shell, "cat /proc/scsi/scsi").await?;
    let seen = proc.matches("Direct-Access").count();
    if seen < scsi {
        return Err(TestError::fail(format!(
            "the params put {scsi} disks on SCSI; the guest's /proc/scsi/scsi lists {seen} \
             direct-access devices: {:?}",
            proc.trim_end()
        )));
    }
    Ok(())
}

/// The guest's disks that are whole disks of `size` (`lsblk` prints it as the params do: 1G,
/// 100M), sorted.
fn data_disks_in(lsblk: &str, size: &str) -> Vec<String> {
    let mut out: Vec<String> = lsblk
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (name, sz, ty) = (w.next()?, w.next()?, w.next()?);
            (ty == "disk" && sz == size).then(|| name.to_owned())
        })
        .collect();
    out.sort();
    out
}

/// Step 4: the data disks, at least as many as were added.
async fn data_disks(
    ctx: &TestContext,
    shell: &mut Box<dyn RemoteShell>,
    g: &GuestCmds,
) -> Result<Vec<String>, TestError> {
    let cmd = "lsblk -d -n -o KNAME,SIZE,TYPE";
    let out = run_checked(ctx, shell, "the disk listing", cmd, g.cmd_timeout).await?;
    let disks = data_disks_in(&out, &g.size);
    if disks.len() < g.count {
        return Err(TestError::fail(format!(
            "fail to list all the volumes: {} disks added, the guest has {} of {} ({}); `{cmd}` \
             printed {:?}",
            g.count,
            disks.len(),
            g.size,
            disks.join(" "),
            out.trim_end()
        )));
    }
    Ok(disks)
}

/// The partitions of `disk` in `ls -l /sys/dev/block` output (`…/block/DISK/PART`).
fn partitions_in(listing: &str, disk: &str) -> Vec<String> {
    let marker = format!("/block/{disk}/");
    let mut out: Vec<String> = listing
        .lines()
        .filter_map(|l| {
            let i = l.find(&marker)?;
            let rest = l[i + marker.len()..].trim();
            (!rest.is_empty() && !rest.contains('/')).then(|| rest.to_owned())
        })
        .collect();
    out.sort();
    out
}

/// The guest command listing `disk`'s partitions (read by [`partitions_in`]).
fn listing_cmd(disk: &str) -> String {
    format!("ls /sys/dev/block -l | grep /block/{disk}/")
}

/// `partprobe` of `disk`, then its partitions (`ls -l /sys/dev/block`) polled for up to 30 s
/// until `done` holds: the last listing and whether it held.
async fn reread(
    ctx: &TestContext,
    shell: &mut Box<dyn RemoteShell>,
    t: Duration,
    disk: &str,
    done: impl Fn(&[String]) -> bool,
) -> Result<(String, bool), TestError> {
    let probe = format!("partprobe /dev/{disk}");
    run_checked(ctx, shell, "the partition", &probe, t).await?;
    let list = listing_cmd(disk);
    poll_guest(
        ctx,
        shell,
        &list,
        Duration::from_secs(30),
        Duration::from_millis(500),
        |o| done(&partitions_in(o, disk)),
    )
    .await
}

/// avocado-vt's `configure_empty_linux_disk` with one partition: label, partition, file
/// system, mount on `/mnt/PART`; the partition's name.
async fn configure(
    ctx: &TestContext,
    shell: &mut Box<dyn RemoteShell>,
    g: &GuestCmds,
    disk: &str,
    size_mib: u64,
    fs: &str,
) -> Result<String, TestError> {
    let t = g.cmd_timeout;
    let label = format!("parted -s \"/dev/{disk}\" mklabel {}", g.labeltype);
    run_checked(ctx, shell, "labeltype", &label, t).await?;
    let list = listing_cmd(disk);
    let before = partitions_in(&guest_output(ctx, shell, &list).await?, disk);
    let mkpart = format!("parted -s \"/dev/{disk}\" mkpart primary 0M {size_mib}M");
    run_checked(ctx, shell, "the partition", &mkpart, t).await?;
    let (out, made) = reread(ctx, shell, t, disk, |p| p.len() > before.len()).await?;
    let Some(part) = partitions_in(&out, disk)
        .into_iter()
        .find(|p| made && !before.contains(p))
    else {
        return Err(TestError::fail(format!(
            "no partition appeared on {disk} within 30 s after `{mkpart}`"
        )));
    };
    let force = if fs == "xfs" { "-f" } else { "-F" };
    let mkfs = format!("yes|mkfs.{fs} {force} '/dev/{part}'");
    run_checked(ctx, shell, "file_system", &mkfs, t).await?;
    let dst = format!("/mnt/{part}");
    run_checked(
        ctx,
        shell,
        "the mount point",
        &format!("rm -rf {dst}; mkdir {dst}"),
        t,
    )
    .await?;
    let mount = format!("mount -t {fs} /dev/{part} {dst}");
    run_checked(ctx, shell, "the mount", &mount, t).await?;
    Ok(part)
}

/// avocado-vt's `clean_partition_linux`: unmount `disk`'s partitions, remove them, wait until
/// the kernel has none.
async fn clean(
    ctx: &TestContext,
    shell: &mut Box<dyn RemoteShell>,
    g: &GuestCmds,
    disk: &str,
) -> TestResult {
    let t = g.cmd_timeout;
    let mounts = guest_output(ctx, shell, "lsblk -n -o KNAME,MOUNTPOINT").await?;
    for line in mounts.lines() {
        let mut w = line.split_whitespace();
        if let (Some(name), Some(point)) = (w.next(), w.next()) {
            if name != disk && name.starts_with(disk) && point.starts_with('/') {
                run_checked(ctx, shell, "the unmount", &format!("umount /dev/{name}"), t).await?;
            }
        }
    }
    let list = listing_cmd(disk);
    let parts = partitions_in(&guest_output(ctx, shell, &list).await?, disk);
    if parts.is_empty() {
        return Ok(());
    }
    let numbers = guest_output(
        ctx,
        shell,
        &format!("parted -s /dev/{disk} print|awk '/^ / {{print $1}}'"),
    )
    .await?;
    for n in numbers
        .lines()
        .map(str::trim)
        .filter(|n| n.parse::<u32>().is_ok())
    {
        run_checked(
            ctx,
            shell,
            "the partition",
            &format!("parted -s \"/dev/{disk}\" rm {n}"),
            t,
        )
        .await?;
    }
    let (out, gone) = reread(ctx, shell, t, disk, <[String]>::is_empty).await?;
    if !gone {
        return Err(TestError::fail(format!(
            "the partitions of {disk} did not go within 30 s: {:?}",
            out.trim_end()
        )));
    }
    Ok(())
}

/// Step 5.
async fn rounds(
    ctx: &TestContext,
    g: &GuestCmds,
    params: &params::Params,
    vm_name: &str,
    mut vm: std::sync::Arc<dyn crate::env::GuestVm>,
    shell: &mut Box<dyn RemoteShell>,
    size_mib: u64,
) -> TestResult {
    let mut disks = data_disks(ctx, shell, g).await?;
    for round in 1..=g.n_repeat {
        ctx.log.info(format_args!(
            "round {round} of {}: disks {}",
            g.n_repeat,
            disks.join(" ")
        ));
        for disk in &disks {
            let fs = g.file_systems[random_below(g.file_systems.len())].clone();
            let part = configure(ctx, shell, g, disk, size_mib, &fs).await?;
            for (key, template) in &g.io {
                let cmd = fill(key, template, &[&part])?;
                run_checked(ctx, shell, key, &cmd, g.cmd_timeout).await?;
            }
            let out = guest_output(ctx, shell, &g.compare).await?;
            if !out.contains(&g.key_word) {
                return Err(TestError::fail(format!(
                    "files on the guest's root and on {part} differ: `{}` printed {:?}, without \
                     {:?}",
                    g.compare,
                    out.trim_end(),
                    g.key_word
                )));
            }
            if let Some(dd) = &g.dd_test {
                let cmd = fill("dd_test", dd, &[&part, &part])?;
                run_checked(ctx, shell, "dd_test", &cmd, g.cmd_timeout).await?;
            }
        }
        if g.need_reboot {
            let timeout = login_timeout(ctx)?;
            let v = vm.clone();
            *shell = cancellable(ctx, async {
                v.reboot(RebootMethod::Shell, timeout)
                    .await
                    .map_err(|e| fail_env("rebooting (need_reboot)", &e))
            })
            .await?;
            if !matches!(g.via, LoginVia::Serial) {
                *shell = login(ctx, &vm, g.via).await?;
            }
        }
        if g.need_shutdown {
            let timeout = login_timeout(ctx)?;
            let v = vm.clone();
            cancellable(ctx, async {
                v.shutdown(ShutdownMethod::Shell, timeout)
                    .await
                    .map_err(|e| fail_env("shutting down (need_shutdown)", &e))
            })
            .await?;
            let (v, s) = start(ctx, g, params, vm_name).await?;
            vm = v;
            *shell = s;
        }
        disks = data_disks(ctx, shell, g).await?;
        for disk in &disks {
            clean(ctx, shell, g, disk).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_take_their_arguments_in_order() {
        assert_eq!(
            fill(
                "m",
                "mkdir /mnt/%s && mount /dev/%s /mnt/%s",
                &["vdb", "vdb", "vdb"]
            )
            .ok(),
            Some("mkdir /mnt/vdb && mount /dev/vdb /mnt/vdb".to_owned())
        );
        let e = fill("format_command", "mkfs -t %s", &["xfs", "vdb"]).expect_err("count");
        assert!(format!("{e:?}").contains("format_command"), "{e:?}");
    }

    #[test]
    fn sizes_are_in_mib_as_avocado_vt_normalizes_them() {
        assert_eq!(mib("1G"), Some(1024));
        assert_eq!(mib("100M"), Some(100));
        assert_eq!(mib("2g"), Some(2048));
        assert_eq!(mib("50M"), Some(50));
        assert_eq!(mib("1073741824"), Some(1024));
        assert_eq!(mib("big"), None);
    }

    #[test]
    fn data_disks_are_whole_disks_of_the_size() {
        let lsblk = "vda    4.1G disk\nvdb      1G disk\nsr0   1024M rom\nsda      1G disk\nloop0    1G loop\n";
        assert_eq!(data_disks_in(lsblk, "1G"), ["sda", "vdb"]);
        assert!(data_disks_in(lsblk, "100M").is_empty());
    }

    #[test]
    fn partitions_are_read_from_sys_dev_block() {
        let ls = "lrwxrwxrwx 1 root root 0 Dec  6 22:00 252:16 -> ../../devices/pci0000:00/0000:00:06.0/virtio3/block/vdb\nlrwxrwxrwx 1 root root 0 Dec  6 22:00 252:17 -> ../../devices/pci0000:00/0000:00:06.0/virtio3/block/vdb/vdb1\n";
        assert_eq!(partitions_in(ls, "vdb"), ["vdb1"]);
        assert!(partitions_in(ls, "vdc").is_empty());
    }
}
