//! The subcommands that boot the main VM from an image they made (`convert`, `rebase`,
//! `commit`), tp-qemu's `_boot`, and where the images they start from are.
//!
//! Their source is the root of the main image's `image_chain` when it has one (the built guest
//! image, which backing files only ever open read-only), else the main image itself, its VM
//! destroyed first so that no QEMU has it open. Nothing is written into the source: `commit`
//! commits into a base overlay of its own in the test's directory.

use std::ffi::OsString;
use std::sync::Arc;
use std::time::Duration;

use params::Params;
use serde_json::Value;
use spec::{Keys, ProblemKind, Teardown};

use super::{in_dir, need, remove, ImageFile, Tool};
use crate::catalogue::session::{login_timeout, main_vm_name};
use crate::catalogue::vm::common::{cancellable, guest_status_output};
use crate::env::{EnvError, GuestVm, LoginVia, ShutdownMethod};
use crate::registry::TestContext;
use crate::verdict::{TestError, TestResult};

/// The keys of a boot.
pub(super) struct BootKeys {
    enabled: bool,
    via: LoginVia,
    linux: bool,
    dd_file_size: String,
    dd_timeout: Duration,
}

impl BootKeys {
    pub(super) fn read(k: &mut Keys<'_>) -> Self {
        BootKeys {
            enabled: k.bool("qemu_img_boot"),
            via: k
                .choice(
                    "serial_login",
                    &[
                        ("yes", LoginVia::Serial),
                        ("no", LoginVia::Remote { nic: 0 }),
                    ],
                )
                .unwrap_or(LoginVia::Serial),
            linux: k.text("os_type") == "linux",
            dd_file_size: k.text("dd_file_size"),
            dd_timeout: k.secs("dd_timeout").unwrap_or(Duration::from_secs(60)),
        }
    }
}

/// What a boot does in the guest between its login and its shutdown.
enum Guest<'a> {
    /// tp-qemu's `_boot`: `dd` in a linux guest.
    Dd,
    /// Each `(key, command)` must exit 0.
    Run(&'a [(&'static str, &'a str)]),
}

/// A guest that does not come up is the product's failure; anything else the environment's.
fn env_error(what: &str, e: &EnvError) -> TestError {
    let text = format!("{what}: {}", crate::error::error_chain(e));
    match e {
        EnvError::NoLogin { .. } => TestError::fail(text),
        _ => TestError::error(text),
    }
}

/// The first image of VM `vm`.
fn first_image(params: &Params, vm: &str) -> Result<String, TestError> {
    params
        .object_params(vm)
        .objects("images")
        .first()
        .map(|s| s.to_string())
        .ok_or_else(|| TestError::error(format!("vm {vm}: `images` names no image")))
}

/// The main image: without VMs the first of `images` in the test's directory, else the main
/// VM's first image as the VM layer places it, the VM destroyed first (qemu-img must not work
/// on an image a QEMU has open).
pub(super) async fn main_image(ctx: &TestContext, tool: &Tool) -> Result<ImageFile, TestError> {
    if ctx.params.objects("vms").is_empty() {
        return tool.own_main();
    }
    let vm = main_vm_name(ctx)?;
    let image = first_image(&ctx.params, &vm)?;
    ctx.env
        .destroy_vm(&vm, Teardown::Kill)
        .await
        .map_err(|e| env_error(&format!("destroying {vm} before qemu-img"), &e))?;
    let (path, format) = ctx.env.image_file(&vm, &image, &ctx.params)?;
    Ok(ImageFile { path, format })
}

/// The image the booting subcommands start from: the root of the main image's `image_chain`,
/// else the main image.
async fn source_image(ctx: &TestContext, tool: &Tool) -> Result<ImageFile, TestError> {
    if ctx.params.objects("vms").is_empty() {
        return tool.own_main();
    }
    let vm = main_vm_name(ctx)?;
    let first = first_image(&ctx.params, &vm)?;
    let mut name = first.clone();
    for _ in 0..16 {
        match spec::ImageSpec::of(&ctx.params, &vm, &name)?.chain_base {
            Some(base) => name = base,
            None => break,
        }
    }
    if name == first {
        return main_image(ctx, tool).await;
    }
    let (path, format) = ctx.env.image_file(&vm, &name, &ctx.params)?;
    ctx.log.info(format_args!(
        "source image: {} ({format}), the root of {first}'s image_chain",
        path.display()
    ));
    Ok(ImageFile { path, format })
}

/// The variant's params with VM `vm`'s first image being `img` (its backing, if any, read
/// from its header: `image_chain` dropped) and no restore from a saved state.
fn boot_params(params: &Params, vm: &str, img: &ImageFile) -> Result<Params, TestError> {
    let first = first_image(params, vm)?;
    let path = img.path.to_string_lossy();
    let Some(stem) = path.strip_suffix(&format!(".{}", img.format)) else {
        return Err(TestError::error(format!(
            "{path}: an image to boot must end in .{}",
            img.format
        )));
    };
    let mut p = params.clone();
    p.insert(format!("image_name_{first}"), stem);
    p.insert(format!("image_format_{first}"), img.format.as_str());
    p.remove("image_chain");
    p.remove(&format!("image_chain_{first}"));
    p.remove(&format!("restore_from_snapshot_{vm}"));
    p.insert("restore_from_snapshot", "no");
    Ok(p)
}

/// tp-qemu's `_boot`: the main VM started from `img`, logged into, `guest` done, shut down
/// from the guest's shell. The VM is destroyed whatever happened.
async fn boot(ctx: &TestContext, b: &BootKeys, img: &ImageFile, guest: Guest<'_>) -> TestResult {
    let vm_name = main_vm_name(ctx)?;
    let params = boot_params(&ctx.params, &vm_name, img)?;
    ctx.log.info(format_args!(
        "booting {vm_name} from {} ({})",
        img.path.display(),
        img.format
    ));
    let started = cancellable(ctx, async {
        ctx.env
            .start_vm(&vm_name, &params, &ctx.dir)
            .await
            .map_err(|e| env_error(&format!("starting {vm_name}"), &e))
    })
    .await;
    let result = match started {
        Ok(how) => {
            ctx.log.info(format_args!("VM {vm_name}: {how}"));
            in_guest(ctx, b, &vm_name, guest).await
        }
        Err(e) => Err(e),
    };
    if let Err(e) = ctx.env.destroy_vm(&vm_name, Teardown::Kill).await {
        ctx.log.warn(format_args!(
            "destroying {vm_name}: {}",
            crate::error::error_chain(&e)
        ));
    }
    result
}

/// The guest part of [`boot`].
async fn in_guest(ctx: &TestContext, b: &BootKeys, vm_name: &str, guest: Guest<'_>) -> TestResult {
    let vm: Arc<dyn GuestVm> = ctx.env.vm(vm_name)?;
    let timeout = login_timeout(ctx)?;
    let mut shell = cancellable(ctx, async {
        vm.login_via(b.via, timeout)
            .await
            .map_err(|e| env_error(&format!("logging into {vm_name}"), &e))
    })
    .await?;
    match guest {
        Guest::Dd if b.linux => {
            let cmd = format!(
                "dd if=/dev/zero of=/mnt/test bs={} count=1000",
                b.dd_file_size
            );
            let (status, out) = guest_status_output(ctx, &mut shell, &cmd, b.dd_timeout).await?;
            if status != 0 {
                return Err(TestError::error(format!(
                    "`{cmd}` in the guest exited {status}: {}",
                    out.trim()
                )));
            }
        }
        Guest::Dd => {}
        Guest::Run(cmds) => {
            for (key, cmd) in cmds {
                let (status, out) = guest_status_output(ctx, &mut shell, cmd, timeout).await?;
                if status != 0 {
                    return Err(TestError::fail(format!(
                        "{key} `{cmd}` exited {status} in the guest: {}",
                        out.trim()
                    )));
                }
            }
        }
    }
    drop(shell);
    ctx.log.info(format_args!("shutting {vm_name} down"));
    cancellable(ctx, async {
        vm.shutdown(ShutdownMethod::Shell, timeout)
            .await
            .map_err(|e| {
                TestError::fail(format!(
                    "shutting {vm_name} down: {}",
                    crate::error::error_chain(&e)
                ))
            })
    })
    .await
}

/// `convert`'s keys.
pub(super) struct ConvertKeys {
    dest: String,
    compressed: bool,
}

impl ConvertKeys {
    pub(super) fn read(k: &mut Keys<'_>) -> Self {
        if k.bool("encrypted") {
            k.problem(
                "encrypted",
                ProblemKind::Unsupported {
                    reason: "qemu-img has no `-e` any more: only no is supported".into(),
                },
            );
        }
        ConvertKeys {
            dest: need(k, "dest_image_format", "convert"),
            compressed: k.bool("compressed"),
        }
    }
}

/// `convert`: the source converted to `dest_image_format` in the test's directory (judged by
/// `check_output`), booted, and checked when it is qcow2.
pub(super) async fn convert(
    ctx: &TestContext,
    tool: &Tool,
    b: &BootKeys,
    c: &ConvertKeys,
) -> TestResult {
    let src = source_image(ctx, tool).await?;
    let file = src
        .path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dst = ImageFile {
        path: ctx.dir.join(format!("{file}.converted_{0}.{0}", c.dest)),
        format: c.dest.clone(),
    };
    tool.convert(ctx, &src.path, Some(&src.format), &dst, c.compressed)
        .await?;
    if b.enabled {
        boot(ctx, b, &dst, Guest::Dd).await?;
    } else {
        ctx.log
            .info("qemu_img_boot = no: the converted image is not booted");
    }
    if dst.format == "qcow2" {
        tool.check(ctx, &dst.path, Some("qcow2")).await?;
    }
    remove(ctx, &dst.path);
    Ok(())
}

/// `rebase`'s keys.
pub(super) struct RebaseKeys {
    sn1: String,
    sn2: String,
    format: String,
    unsafe_mode: bool,
}

impl RebaseKeys {
    pub(super) fn read(k: &mut Keys<'_>) -> Self {
        RebaseKeys {
            sn1: need(k, "image_name_snapshot1", "rebase"),
            sn2: need(k, "image_name_snapshot2", "rebase"),
            format: k.text("snapshot_format"),
            unsafe_mode: k
                .choice("rebase_mode", &[("safe", false), ("unsafe", true)])
                .unwrap_or(false),
        }
    }
}

/// `rebase`: sn1 over the source (safe: booted), sn2 over sn1, booted; (unsafe: sn1 removed;)
/// sn2 rebased onto the source (judged by `check_output`), booted; its backing file must name
/// the source and it must check clean.
pub(super) async fn rebase(
    ctx: &TestContext,
    tool: &Tool,
    b: &BootKeys,
    r: &RebaseKeys,
) -> TestResult {
    let base = source_image(ctx, tool).await?;
    let sn1 = ImageFile {
        path: in_dir(ctx, &r.sn1, Some(&r.format)),
        format: r.format.clone(),
    };
    let sn2 = ImageFile {
        path: in_dir(ctx, &r.sn2, Some(&r.format)),
        format: r.format.clone(),
    };
    let maybe_boot = |img: &ImageFile| {
        let img = img.clone();
        async move {
            if b.enabled {
                boot(ctx, b, &img, Guest::Dd).await
            } else {
                ctx.log.info(format_args!(
                    "qemu_img_boot = no: {} is not booted",
                    img.path.display()
                ));
                Ok(())
            }
        }
    };
    tool.create(ctx, &sn1, Some(&base), &[], None).await?;
    tool.check(ctx, &sn1.path, Some(&sn1.format)).await?;
    if !r.unsafe_mode {
        maybe_boot(&sn1).await?;
    }
    tool.create(ctx, &sn2, Some(&sn1), &[], None).await?;
    tool.check(ctx, &sn2.path, Some(&sn2.format)).await?;
    maybe_boot(&sn2).await?;
    if r.unsafe_mode {
        remove(ctx, &sn1.path);
    }
    let mut args: Vec<OsString> = vec!["rebase".into()];
    if r.unsafe_mode {
        args.push("-u".into());
    }
    args.extend(tool.progress_flag());
    args.extend([
        "-b".into(),
        base.path.clone().into(),
        "-F".into(),
        base.format.clone().into(),
        sn2.path.clone().into(),
    ]);
    let out = tool.run(ctx, tool.argv(args), true).await?;
    tool.judge(&out)?;
    maybe_boot(&sn2).await?;
    let info = tool.info(ctx, &sn2).await?;
    let backing = info
        .get("backing-filename")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let base_name = base
        .path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !backing.contains(&base_name) {
        return Err(TestError::fail(format!(
            "after the rebase the backing file of {} is {backing:?}, not {base_name}",
            sn2.path.display()
        )));
    }
    tool.check(ctx, &sn2.path, Some(&sn2.format)).await?;
    remove(ctx, &sn2.path);
    remove(ctx, &sn1.path);
    Ok(())
}

/// `commit`'s keys.
pub(super) struct CommitKeys {
    create: String,
    info: String,
    exist: String,
    delete: String,
}

impl CommitKeys {
    pub(super) fn read(k: &mut Keys<'_>, b: &BootKeys) -> Self {
        if !b.enabled {
            k.problem(
                "qemu_img_boot",
                ProblemKind::Unsupported {
                    reason: "subcommand = commit boots its images: only yes".into(),
                },
            );
        }
        CommitKeys {
            create: k.text("file_create_cmd"),
            info: k.text("file_info_cmd"),
            exist: k.text("file_exist_chk_cmd"),
            delete: k.text("file_del_cmd"),
        }
    }
}

/// `commit`: a base of the test's own over the source and an overlay over it; the overlay
/// booted and a file created in it; `qemu-img commit` of the overlay; the base booted, where
/// the file must be (then deleted); the base checked.
pub(super) async fn commit(
    ctx: &TestContext,
    tool: &Tool,
    b: &BootKeys,
    c: &CommitKeys,
) -> TestResult {
    let src = source_image(ctx, tool).await?;
    let stem = src
        .path
        .file_stem()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into());
    let base = ImageFile {
        path: in_dir(ctx, &stem, Some("qcow2")),
        format: "qcow2".into(),
    };
    let overlay = ImageFile {
        path: in_dir(ctx, &format!("{stem}_overlay"), Some("qcow2")),
        format: "qcow2".into(),
    };
    ctx.log.info(format_args!(
        "the commit goes into {}, this test's own overlay of {}",
        base.path.display(),
        src.path.display()
    ));
    tool.create(ctx, &base, Some(&src), &[], None).await?;
    tool.create(ctx, &overlay, Some(&base), &[], None).await?;
    let cmds = [
        ("file_create_cmd", c.create.as_str()),
        ("file_info_cmd", c.info.as_str()),
    ];
    boot(ctx, b, &overlay, Guest::Run(&cmds)).await?;
    tool.must(
        ctx,
        tool.argv([
            OsString::from("commit"),
            "-f".into(),
            overlay.format.clone().into(),
            overlay.path.clone().into(),
        ]),
    )
    .await?;
    let cmds = [
        ("file_exist_chk_cmd", c.exist.as_str()),
        ("file_del_cmd", c.delete.as_str()),
    ];
    boot(ctx, b, &base, Guest::Run(&cmds)).await?;
    tool.check(ctx, &base.path, Some(&base.format)).await?;
    remove(ctx, &overlay.path);
    remove(ctx, &base.path);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn a_boot_takes_the_image_and_never_restores() {
        let mut p = Params::new();
        p.insert("vms", "vm1");
        p.insert("images", "image1");
        p.insert("image_chain", "guest_disk image1");
        p.insert("image_name_image1", "overlay");
        p.insert("restore_from_snapshot", "yes");
        p.insert("restore_from_snapshot_vm1", "yes");
        let img = ImageFile {
            path: Path::new("/t/dir/sn2.qcow2").to_path_buf(),
            format: "qcow2".into(),
        };
        let b = boot_params(&p, "vm1", &img).unwrap_or_else(|e| panic!("{e:?}"));
        let ip = b.object_params("vm1").object_params("image1");
        assert_eq!(ip.get("image_name"), Some("/t/dir/sn2"));
        assert_eq!(ip.get("image_format"), Some("qcow2"));
        assert_eq!(ip.get("image_chain"), None);
        assert_eq!(
            b.object_params("vm1").get("restore_from_snapshot"),
            Some("no")
        );
        let raw = ImageFile {
            path: Path::new("/t/dir/x.qcow2").to_path_buf(),
            format: "raw".into(),
        };
        assert!(boot_params(&p, "vm1", &raw).is_err());
    }
}
