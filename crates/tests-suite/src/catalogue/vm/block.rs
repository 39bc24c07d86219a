//! `block_hotplug` (tp-qemu's `block_hotplug`): `repeat_times` rounds of plugging `blk_num`
//! disks, each found in the guest (`get_disk_pattern` in `get_disk_cmd`'s output, a disk that
//! was not there before) and exercised (`disk_op_cmd`), then unplugging them, each of which the
//! guest must lose. The images are the 2nd… of `images` (`boot_drive_stgN = no`, created by
//! pre-processing). With `need_plug = no` the disks are on the command line
//! (`boot_drive_stgN = yes`) and only unplugged. Sub-tests of the catalogue
//! (`sub_type_before_plug`, `sub_type_after_plug`, `sub_type_before_unplug`,
//! `sub_type_after_unplug`) run with the same params between the steps, as tp-qemu's
//! `run_virt_sub_test`; a sub-test that leaves the VM dead (shutdown) ends the test there.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;

use super::common::{
    cancellable, fail_env, guest_output, guest_status_output, linux_only, login, login_via,
    poll_guest, require_device_types, sub_test, sub_types, vm_alive,
};
use super::BLOCK_HOTPLUG;
use crate::catalogue::session::main_vm_name;
use crate::env::{DiskPlug, GuestVm, Hotplugged, LoginVia};
use crate::future::BoxFuture;
use crate::registry::{read_params, TestContext};
use crate::verdict::{TestError, TestResult};

/// The parameters of `block_hotplug`, read (and checked) before the guest is touched.
#[derive(Debug)]
struct BlockParams {
    via: LoginVia,
    format: String,
    driver: String,
    pause: Duration,
    repeat_times: u64,
    disk_op_timeout: Duration,
    get_disk_cmd: String,
    pattern: Regex,
    disk_op_cmd: Option<String>,
    need_plug: bool,
    controller: Option<String>,
    /// `sub_type_before_plug`, `…_after_plug`, `…_before_unplug`, `…_after_unplug`.
    sub_types: [Option<String>; 4],
    /// Per disk: its image (an entry of `images`) and its device's and controller's extra
    /// properties.
    disks: Vec<DiskParams>,
}

#[derive(Debug)]
struct DiskParams {
    image: String,
    device_props: Vec<(String, String)>,
    controller_props: Vec<(String, String)>,
}

/// The sub-test keys, in the order they run.
const SUB_TYPE_KEYS: [&str; 4] = [
    "sub_type_before_plug",
    "sub_type_after_plug",
    "sub_type_before_unplug",
    "sub_type_after_unplug",
];

/// `k=v,k=v` as QEMU's `-device` options, for `blk_extra_params` / `bus_extra_params`.
fn device_props(text: &str) -> Result<Vec<(String, String)>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.trim().to_owned())),
            _ => Err(format!(
                "device properties as key=value,key=value (QEMU's -device syntax); {p:?} is not \
                 key=value"
            )),
        })
        .collect()
}

impl BlockParams {
    fn read(ctx: &TestContext) -> Result<BlockParams, TestError> {
        let mut k = ctx.keys(&BLOCK_HOTPLUG);
        let via = login_via(&mut k);
        let format = k.text("img_format_type");
        let driver = k.text("pci_type");
        let pause = k.secs("virtio_block_pause");
        let whole = |v: &str| match v.parse::<u64>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err("a whole number of at least 1".to_owned()),
        };
        let blk_num = k.parse("blk_num", whole);
        let repeat_times = k.parse("repeat_times", whole);
        let disk_op_timeout = k.secs("disk_op_timeout");
        let get_disk_cmd = k.text("get_disk_cmd");
        let pattern = k.regex("get_disk_pattern", true);
        let disk_op_cmd = k.opt("disk_op_cmd");
        if let Some(cmd) = &disk_op_cmd {
            if cmd.matches("%s").count() > 2 {
                k.problem(
                    "disk_op_cmd",
                    spec::ProblemKind::Invalid {
                        expected: "a command with at most two %s (each is the disk)".into(),
                    },
                );
            }
        }
        let need_plug = k.bool("need_plug");
        let need_controller = k.bool("need_controller");
        let controller = need_controller.then(|| k.text("controller_model"));
        let sub_types = sub_types(&mut k, SUB_TYPE_KEYS, BLOCK_HOTPLUG.name);
        linux_only(
            &mut k,
            "the Windows disk letters and iozone run of tp-qemu are not supported",
        );
        let images = ctx.params.objects("images");
        let (via, pause, blk_num, repeat_times, disk_op_timeout, pattern) = read_params(
            k,
            (via, pause, blk_num, repeat_times, disk_op_timeout, pattern),
        )?;
        let blk_num = usize::try_from(BLOCK_HOTPLUG.declared(blk_num, "blk_num")?)
            .map_err(|_| TestError::error("blk_num is too large"))?;
        let repeat_times = BLOCK_HOTPLUG.declared(repeat_times, "repeat_times")?;
        if images.len() < blk_num + 1 {
            return Err(TestError::error(format!(
                "blk_num = {blk_num} needs {} entries in `images` (the system disk, then one \
                 image per disk, as tp-qemu's `images += \" stg0\"`); `images` is {:?}{}",
                blk_num + 1,
                images.join(" "),
                ctx.params
                    .origin("images")
                    .map(|o| format!(" (set at {o})"))
                    .unwrap_or_default()
            )));
        }
        if !need_plug && repeat_times > 1 {
            return Err(TestError::error(format!(
                "need_plug = no unplugs the disks of the command line, which can be done once; \
                 repeat_times is {repeat_times} (tp-qemu's without_plug sets repeat_times = 1)"
            )));
        }
        let mut disks = Vec::new();
        for image in &images[1..=blk_num] {
            let ip = ctx.params.object_params(image);
            let props = |key: &str| -> Result<Vec<(String, String)>, TestError> {
                let Some(text) = ip.get(key) else {
                    return Ok(Vec::new());
                };
                device_props(text).map_err(|e| {
                    TestError::error(format!(
                        "`{key}_{image}` = {text:?}{}: {e}",
                        ip.origin(key)
                            .map(|o| format!(" (set at {o})"))
                            .unwrap_or_default()
                    ))
                })
            };
            disks.push(DiskParams {
                image: (*image).to_owned(),
                device_props: props("blk_extra_params")?,
                controller_props: props("bus_extra_params")?,
            });
        }
        Ok(BlockParams {
            via: BLOCK_HOTPLUG.declared(via, "serial_login")?,
            format,
            driver,
            pause: BLOCK_HOTPLUG.declared(pause, "virtio_block_pause")?,
            repeat_times,
            disk_op_timeout: BLOCK_HOTPLUG.declared(disk_op_timeout, "disk_op_timeout")?,
            get_disk_cmd,
            pattern: BLOCK_HOTPLUG.declared(pattern, "get_disk_pattern")?,
            disk_op_cmd,
            need_plug,
            controller,
            sub_types,
            disks,
        })
    }
}

/// The disks `get_disk_pattern` finds in `output` (tp-qemu's `re.findall` with `re.M`).
fn disks_in(pattern: &Regex, output: &str) -> BTreeSet<String> {
    // A terminal's CRLF line ends are line ends (`$` matches before `\n` only).
    let output = output.replace("\r\n", "\n");
    pattern
        .find_iter(&output)
        .map(|m| m.as_str().to_owned())
        .collect()
}

/// `disk_op_cmd` for `disk`: each `%s` is the disk.
fn disk_op_for(cmd: &str, disk: &str) -> String {
    cmd.replace("%s", disk)
}

/// The test's guest: its VM and a shell, logged in again after a sub-test.
struct Guest {
    name: String,
    vm: Arc<dyn GuestVm>,
    shell: Box<dyn crate::shell::RemoteShell>,
}

impl Guest {
    async fn login(ctx: &TestContext, via: LoginVia) -> Result<Guest, TestError> {
        let name = main_vm_name(ctx)?;
        let vm = ctx.env.vm(&name)?;
        let shell = login(ctx, &vm, via).await?;
        Ok(Guest { name, vm, shell })
    }

    async fn disks(
        &mut self,
        ctx: &TestContext,
        p: &BlockParams,
        cmd: &str,
    ) -> Result<BTreeSet<String>, TestError> {
        let out = guest_output(ctx, &mut self.shell, cmd).await?;
        Ok(disks_in(&p.pattern, &out))
    }

    /// Polls the disk list (once a second, for `virtio_block_pause`) until `done` holds.
    async fn wait_disks(
        &mut self,
        ctx: &TestContext,
        p: &BlockParams,
        cmd: &str,
        done: impl Fn(&BTreeSet<String>) -> bool,
    ) -> Result<(BTreeSet<String>, bool), TestError> {
        let (out, held) = poll_guest(
            ctx,
            &mut self.shell,
            cmd,
            p.pause,
            Duration::from_secs(1),
            |o| done(&disks_in(&p.pattern, o)),
        )
        .await?;
        Ok((disks_in(&p.pattern, &out), held))
    }
}

/// `type = block_hotplug`.
pub fn run(ctx: &TestContext) -> BoxFuture<'_, TestResult> {
    Box::pin(async move {
        let p = BlockParams::read(ctx)?;
        let mut g = Guest::login(ctx, p.via).await?;
        let mut wanted = vec![("pci_type", p.driver.as_str(), p.driver.as_str())];
        if let Some(c) = &p.controller {
            wanted.push(("controller_model", c.as_str(), c.as_str()));
        }
        require_device_types(ctx, g.vm.as_ref(), &wanted).await?;
        // Without the plug, the system disk is left out when it has the same model as the
        // disks under test (tp-qemu's egrep of [hsv]da).
        let get_disk_cmd = match ctx.params.get("drive_format") {
            Some(f) if !p.need_plug && p.driver.contains(f) => {
                format!("{} | grep -Ev '^/dev/[hsv]da[0-9]*$'", p.get_disk_cmd)
            }
            _ => p.get_disk_cmd.clone(),
        };
        for round in 1..=p.repeat_times {
            if p.repeat_times > 1 {
                ctx.log
                    .info(format_args!("round {round} of {}", p.repeat_times));
            }
            if let Some(ty) = &p.sub_types[0] {
                sub_test(ctx, SUB_TYPE_KEYS[0], ty).await?;
                g = Guest::login(ctx, p.via).await?;
            }
            let mut plugged: Vec<Hotplugged> = Vec::new();
            let result = plug_all(ctx, &p, &mut g, &get_disk_cmd, &mut plugged).await;
            if result.is_err() {
                // Leave the VM as it was found (the failure is the verdict).
                while let Some(d) = plugged.pop() {
                    if p.need_plug {
                        let _ = g.vm.unplug(&d).await;
                    }
                }
                return result;
            }
            if let Some(ty) = &p.sub_types[1] {
                sub_test(ctx, SUB_TYPE_KEYS[1], ty).await?;
                if !vm_alive(ctx, &g.name) {
                    ctx.log
                        .info(format_args!("{} is down after the sub-test: done", g.name));
                    return Ok(());
                }
                g = Guest::login(ctx, p.via).await?;
            }
            if let Some(ty) = &p.sub_types[2] {
                sub_test(ctx, SUB_TYPE_KEYS[2], ty).await?;
                g = Guest::login(ctx, p.via).await?;
            }
            for (num, device) in plugged.iter().enumerate() {
                unplug_one(ctx, &p, &mut g, &get_disk_cmd, num, device).await?;
            }
            if let Some(ty) = &p.sub_types[3] {
                sub_test(ctx, SUB_TYPE_KEYS[3], ty).await?;
                if !vm_alive(ctx, &g.name) {
                    return Ok(());
                }
                g = Guest::login(ctx, p.via).await?;
            }
        }
        Ok(())
    })
}

/// Plugs (or, without `need_plug`, takes from the command line) each disk, finds it in the
/// guest and runs `disk_op_cmd` on it; `plugged` gets each device as soon as it exists.
async fn plug_all(
    ctx: &TestContext,
    p: &BlockParams,
    g: &mut Guest,
    get_disk_cmd: &str,
    plugged: &mut Vec<Hotplugged>,
) -> TestResult {
    for (num, d) in p.disks.iter().enumerate() {
        let disk = if p.need_plug {
            let before = g.disks(ctx, p, get_disk_cmd).await?;
            let (path, _) = ctx
                .env
                .image_file(&g.name, &d.image, &ctx.params)
                .map_err(TestError::from)?;
            if !path.exists() {
                return Err(TestError::error(format!(
                    "image {} of `images` ({}) does not exist: pre-processing creates it with \
                     `create_image_{0} = yes` or `force_create_image_{0} = yes`",
                    d.image,
                    path.display()
                )));
            }
            let plug = DiskPlug {
                controller: p.controller.clone(),
                device_props: d.device_props.clone(),
                controller_props: d.controller_props.clone(),
                ..DiskPlug::new(path, &p.format, &p.driver)
            };
            let added = cancellable(ctx, async {
                g.vm.hotplug_disk(&plug)
                    .await
                    .map_err(|e| fail_env(&format!("hotplug of {} as a {}", d.image, p.driver), &e))
            })
            .await?;
            ctx.log.info(format_args!(
                "plugged {} as {} ({})",
                d.image, added.id, added.driver
            ));
            plugged.push(added);
            let (after, found) = g
                .wait_disks(ctx, p, get_disk_cmd, |now| {
                    now.difference(&before).next().is_some()
                })
                .await?;
            if !found {
                return Err(TestError::fail(format!(
                    "no new disk in the guest within {} s of plugging {} ({}): `{get_disk_cmd}` \
                     matched {:?} by {:?} before and {:?} after",
                    p.pause.as_secs_f64(),
                    d.image,
                    p.driver,
                    before,
                    p.pattern.as_str().trim_start_matches("(?m)"),
                    after
                )));
            }
            after
                .difference(&before)
                .next()
                .cloned()
                .unwrap_or_default()
        } else {
            plugged.push(Hotplugged {
                id: d.image.clone(),
                driver: p.driver.clone(),
                mac: None,
            });
            let disks: Vec<String> = g.disks(ctx, p, get_disk_cmd).await?.into_iter().collect();
            match disks.get(num) {
                Some(disk) => disk.clone(),
                None => {
                    return Err(TestError::fail(format!(
                        "expected at least {} disks of the command line in the guest's \
                         `{get_disk_cmd}` (matched by {:?}); found {disks:?}",
                        num + 1,
                        p.pattern.as_str().trim_start_matches("(?m)")
                    )))
                }
            }
        };
        if let Some(cmd) = &p.disk_op_cmd {
            let cmd = disk_op_for(cmd, &disk);
            let (status, out) =
                guest_status_output(ctx, &mut g.shell, &cmd, p.disk_op_timeout).await?;
            if status != 0 {
                return Err(TestError::fail(format!(
                    "check of {disk} ({}) after the hotplug failed: `{cmd}` exited {status}: \
                     {:?}",
                    d.image,
                    out.trim_end()
                )));
            }
        }
    }
    Ok(())
}

/// Unplugs disk `num`; QEMU must confirm it and the guest must lose a disk.
async fn unplug_one(
    ctx: &TestContext,
    p: &BlockParams,
    g: &mut Guest,
    get_disk_cmd: &str,
    num: usize,
    device: &Hotplugged,
) -> TestResult {
    let before = g.disks(ctx, p, get_disk_cmd).await?;
    ctx.log
        .info(format_args!("unplugging {} (disk {})", device.id, num + 1));
    cancellable(ctx, async {
        g.vm.unplug(device)
            .await
            .map_err(|e| fail_env(&format!("unplug of {} ({})", device.id, device.driver), &e))
    })
    .await?;
    let (after, gone) = g
        .wait_disks(ctx, p, get_disk_cmd, |now| {
            before.difference(now).next().is_some()
        })
        .await?;
    if !gone {
        return Err(TestError::fail(format!(
            "the guest still lists every disk {} s after {} was unplugged: {:?} before, {:?} \
             after",
            p.pause.as_secs_f64(),
            device.id,
            before,
            after
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disks_are_the_lines_the_pattern_matches() {
        let re = Regex::new("(?m)^/dev/vd[a-z]*$").expect("regex");
        let out = "/dev/vda\n/dev/vda1\n/dev/vdb\r\n/dev/sda\n";
        let found: Vec<String> = disks_in(&re, out).into_iter().collect();
        assert_eq!(found, ["/dev/vda", "/dev/vdb"]);
    }

    #[test]
    fn extra_params_are_device_properties() {
        assert_eq!(
            device_props("iothread=iothread0").expect("props"),
            [("iothread".to_owned(), "iothread0".to_owned())]
        );
        assert_eq!(
            device_props("num_queues=4, iothread=t1,").expect("props"),
            [
                ("num_queues".to_owned(), "4".to_owned()),
                ("iothread".to_owned(), "t1".to_owned())
            ]
        );
        assert!(device_props("iothread").is_err());
        assert!(device_props("=x").is_err());
    }

    #[test]
    fn the_disk_op_gets_the_disk_for_each_placeholder() {
        assert_eq!(
            disk_op_for("dd if=%s of=/dev/null && dd if=/dev/zero of=%s", "/dev/vdb"),
            "dd if=/dev/vdb of=/dev/null && dd if=/dev/zero of=/dev/vdb"
        );
    }
}
