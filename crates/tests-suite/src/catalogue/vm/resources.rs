//! `physical_resources_check`: the guest sees the memory, CPUs, disks and NICs the params give
//! the VM, and the NIC and disk models are the configured ones — checked on QEMU's side with
//! `query-pci`, each disk's device type (QOM) and tp-qemu's `info network` checks (NIC count,
//! `model=(.*),` holding each NIC's model, every MAC), and on the guest's side with its `lspci`;
//! then tp-qemu's optional guest checks: `cpu_{sockets,cores,threads}_chk_cmd` (the last match
//! of `mem_chk_re_str`) against QEMU's topology, `cpu_vendor_id_chk_cmd` against
//! `cpu_model_vendor`, `catch_uuid_cmd` against the VM's UUID, `catch_serial_cmd` against a
//! random `drive_serial` the VM is restarted with, `check_machine_type_cmd` against the
//! machine's description. Every mismatch is collected and reported together: "assigned to the
//! VM" versus "reported by QEMU" / "reported by the guest".

use serde_json::{json, Value};
use spec::types::DiskInterface;
use spec::VmSpec;

use super::common::{
    cancellable, disk_pci_id, guest_output, login, login_via, main_vm, nic_driver, nic_pci_id,
    pci_functions, PciFunction,
};
use super::PHYSICAL_RESOURCES_CHECK;
use crate::future::BoxFuture;
use crate::registry::{read_params, TestContext};
use crate::verdict::{TestError, TestResult};

/// The kernel's boot line `Memory: AVAILABLEK/TOTALK`: TOTAL is the RAM it found (within a
/// few hundred KiB of what QEMU gives: BIOS holes), unlike `MemTotal`, which leaves out the
/// kernel's own reservations (15–20 % of a 256 MiB guest).
pub(super) const MEM_CMD: &str = "dmesg | grep -o 'Memory: [0-9]*K/[0-9]*K'";
pub(super) const CPU_CMD: &str = "grep -c ^processor /proc/cpuinfo";
pub(super) const DISK_CMD: &str = "ls /sys/block | grep -E '^(vd|sd|hd|xvd)'";
pub(super) const NIC_CMD: &str = "ls /sys/class/net | grep '^eth'";

/// The last integer in `text`.
fn number(text: &str) -> Option<f64> {
    let digits: Vec<&str> = text
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .collect();
    digits.last()?.parse().ok()
}

/// `type = physical_resources_check`.
pub fn run(ctx: &TestContext) -> BoxFuture<'_, TestResult> {
    Box::pin(async move {
        let mut k = ctx.keys(&PHYSICAL_RESOURCES_CHECK);
        let via = login_via(&mut k);
        let tolerance = k.parse("mem_chk_tolerance", |v| {
            v.parse::<f64>()
                .ok()
                .filter(|t| (0.0..100.0).contains(t))
                .ok_or_else(|| "a percentage from 0 to 100".to_string())
        });
        let mem_cmd = k.text("mem_chk_cmd");
        let cpu_cmd = k.text("cpu_chk_cmd");
        let disk_cmd = k.text("disk_chk_cmd");
        let nic_cmd = k.text("nic_chk_cmd");
        let number_re = k.parse("mem_chk_re_str", |v| {
            spec::regex_cache::regex(v).map_err(|e| format!("a regular expression ({e})"))
        });
        let topology_cmds = TOPOLOGY_LEVELS.map(|level| k.opt(&format!("cpu_{level}_chk_cmd")));
        let vendor = k.opt("cpu_model_vendor");
        let vendor_cmd = k.opt("cpu_vendor_id_chk_cmd");
        let uuid_cmd = k.opt("catch_uuid_cmd");
        let serial_cmd = k.opt("catch_serial_cmd");
        let serial_len = k.parse("length", |v| {
            v.parse::<usize>()
                .ok()
                .filter(|n| *n <= 20)
                .ok_or_else(|| "a length from 0 to 20".to_string())
        });
        let machine_cmd = k.opt("check_machine_type_cmd");
        let (via, tolerance, number_re, serial_len) =
            read_params(k, (via, tolerance, number_re, serial_len))?;
        let number_re = PHYSICAL_RESOURCES_CHECK.declared(number_re, "mem_chk_re_str")?;
        let serial_len = PHYSICAL_RESOURCES_CHECK.declared(serial_len, "length")?;
        let via = PHYSICAL_RESOURCES_CHECK.declared(via, "serial_login")?;
        let tolerance = PHYSICAL_RESOURCES_CHECK.declared(tolerance, "mem_chk_tolerance")?;
        let assigned = Assigned::of(ctx)?;
        let (mem, smp) = (assigned.mem_mib, assigned.cpus);
        let images: Vec<String> = assigned.disks.iter().map(|(n, _)| n.clone()).collect();
        let nics: Vec<String> = assigned.nics.iter().map(|(n, _)| n.clone()).collect();

        // tp-qemu's serial check restarts the VM with a random `drive_serial` first.
        let serial = match &serial_cmd {
            Some(_) => Some(restart_with_serial(ctx, serial_len).await?),
            None => None,
        };
        let vm = main_vm(ctx)?;
        let mut shell = login(ctx, &vm, via).await?;
        let mut problems = Vec::new();

        // Memory: firmware holes and reservations make the guest see up to `tolerance` percent
        // less, never more.
        let out = guest_output(ctx, &mut shell, &mem_cmd).await?;
        match number(&out) {
            Some(kib) => {
                let seen = kib / 1024.0;
                let low = mem as f64 * (1.0 - tolerance / 100.0);
                if seen > mem as f64 || seen < low {
                    problems.push(format!(
                        "memory: assigned {mem} MiB (the guest may see down to {low:.0} MiB); \
                         the guest reports {seen:.0} MiB"
                    ));
                }
            }
            None => problems.push(format!(
                "memory: `{mem_cmd}` printed {:?}, not a number of KiB",
                out.trim()
            )),
        }
        let out = guest_output(ctx, &mut shell, &cpu_cmd).await?;
        match number(&out) {
            Some(n) if n as u64 == u64::from(smp) => {}
            _ => problems.push(format!(
                "CPUs: assigned {smp}; `{cpu_chk}` printed {:?}",
                out.trim(),
                cpu_chk = cpu_cmd
            )),
        }
        let out = guest_output(ctx, &mut shell, &disk_cmd).await?;
        let disks = out.split_whitespace().count();
        if disks != images.len() {
            problems.push(format!(
                "disks: assigned {} ({}); the guest sees {disks}: {:?}",
                images.len(),
                images.join(" "),
                out.trim()
            ));
        }
        let out = guest_output(ctx, &mut shell, &nic_cmd).await?;
        let seen_nics = out.split_whitespace().count();
        if seen_nics != nics.len() {
            problems.push(format!(
                "NICs: assigned {} ({}); the guest sees {seen_nics}: {:?}",
                nics.len(),
                nics.join(" "),
                out.trim()
            ));
        }

        // Models, as the seed's chk_fmt_model: what QEMU reports, then what the guest reports.
        let reply = cancellable(ctx, async {
            vm.qmp("query-pci", json!({}))
                .await
                .map_err(TestError::from)
        })
        .await?;
        let functions = pci_functions(&reply);
        // Numeric ids (`00:03.0 0200: 1af4:1000`) whatever the guest's pci.ids knows.
        let lspci = guest_output(ctx, &mut shell, "lspci -n").await?;
        let mut expected: Vec<(String, String, &'static str)> = Vec::new();
        for (nic, model) in &assigned.nics {
            let model = model.clone();
            let driver = nic_driver(&model).to_owned();
            match nic_pci_id(&driver) {
                Some(id) => expected.push((format!("NIC {nic}"), model, id)),
                None => problems.push(format!("NIC {nic}: no known PCI id for model {model:?}")),
            }
        }
        for (image, bus) in &assigned.disks {
            let bus = bus.clone();
            match disk_pci_id(&bus) {
                Some(id) => expected.push((format!("disk {image}"), bus, id)),
                None => problems.push(format!(
                    "disk {image}: no known PCI id for drive_format {bus:?}"
                )),
            }
        }
        for (what, model, id) in &expected {
            let wanted = expected.iter().filter(|(_, _, i)| i == id).count();
            let in_qemu = functions.iter().filter(|f| f.id == *id).count();
            // An IDE controller serves up to four disks: one function is enough.
            let enough = |n: usize| {
                if *id == "8086:7010" {
                    n >= 1
                } else {
                    n >= wanted
                }
            };
            if !enough(in_qemu) {
                problems.push(format!(
                    "{what} model mismatch: assigned to the VM: {model} ({id}); reported by QEMU \
                     (query-pci): {}",
                    ids(&functions)
                ));
            }
            let in_guest = lspci.matches(id).count();
            if !enough(in_guest) {
                problems.push(format!(
                    "{what} model mismatch: assigned to the VM: {model} ({id}); reported by the \
                     guest (lspci -n): {:?}",
                    lspci.trim()
                ));
            }
        }
        disk_types(ctx, vm.as_ref(), &assigned, &mut problems).await?;
        network_info(ctx, vm.as_ref(), &assigned, &mut problems).await?;

        // tp-qemu's optional guest checks.
        let (_, _, t) = super::cpu::slots(ctx, vm.as_ref()).await?;
        let levels = TOPOLOGY_LEVELS.iter().zip([t.sockets, t.cores, t.threads]);
        for ((level, expected), cmd) in levels.zip(&topology_cmds) {
            let Some(cmd) = cmd else { continue };
            let out = guest_output(ctx, &mut shell, cmd).await?;
            let seen = number_re
                .find_iter(&out)
                .last()
                .and_then(|m| m.as_str().parse::<u64>().ok());
            if seen != Some(expected) {
                problems.push(format!(
                    "CPU {level}: assigned to the VM: {expected} (QEMU's topology); `{cmd}` printed {:?}",
                    out.trim()
                ));
            }
        }
        if let (Some(vendor), Some(cmd)) = (&vendor, &vendor_cmd) {
            let out = guest_output(ctx, &mut shell, cmd).await?;
            if !out.contains(vendor.as_str()) {
                problems.push(format!(
                    "CPU vendor: assigned to the VM: {vendor}; `{cmd}` printed {:?}",
                    out.trim()
                ));
            }
        }
        if let Some(cmd) = &uuid_cmd {
            let reply = cancellable(ctx, async {
                vm.qmp("query-uuid", json!({}))
                    .await
                    .map_err(TestError::from)
            })
            .await?;
            let uuid = reply
                .get("UUID")
                .and_then(Value::as_str)
                .unwrap_or_default();
            // No UUID given to the VM (QEMU's nil UUID): nothing to compare, as tp-qemu.
            if !uuid.is_empty() && uuid != NIL_UUID {
                let out = guest_output(ctx, &mut shell, cmd).await?;
                if !out.to_lowercase().contains(&uuid.to_lowercase()) {
                    problems.push(format!(
                        "UUID: assigned to the VM: {}; `{cmd}` printed {:?}",
                        uuid.to_uppercase(),
                        out.trim()
                    ));
                }
            }
        }
        if let (Some(cmd), Some(serial)) = (&serial_cmd, &serial) {
            let out = guest_output(ctx, &mut shell, cmd).await?;
            if !out.to_lowercase().contains(&serial.to_lowercase()) {
                problems.push(format!(
                    "disk serial: assigned to the VM: {serial:?}; `{cmd}` printed {:?}",
                    out.trim()
                ));
            }
        }
        if let Some(cmd) = &machine_cmd {
            machine_type(ctx, vm.as_ref(), &mut shell, cmd, &mut problems).await?;
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(TestError::fail(problems.join("; ")))
        }
    })
}

/// The levels of `cpu_<level>_chk_cmd`, in the order of QEMU's topology.
const TOPOLOGY_LEVELS: [&str; 3] = ["sockets", "cores", "threads"];

/// QEMU's UUID when the VM was given none.
const NIL_UUID: &str = "00000000-0000-0000-0000-000000000000";

/// Restarts the main VM with a random `drive_serial` of up to `max_len` characters (letters,
/// digits, `-` and `_`, as tp-qemu draws it) and returns the serial.
async fn restart_with_serial(ctx: &TestContext, max_len: usize) -> Result<String, TestError> {
    use rand::RngExt as _;
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
    let serial: String = {
        let mut rng = rand::rng();
        // tp-qemu draws the length from 0; an empty serial leaves nothing to find: 1 at least.
        let len = rng.random_range(1..=max_len.max(1));
        (0..len)
            .map(|_| char::from(CHARS[rng.random_range(0..CHARS.len())]))
            .collect()
    };
    let name = crate::catalogue::session::main_vm_name(ctx)?;
    let mut params = ctx.params.clone();
    params.insert("drive_serial", serial.clone());
    ctx.log.info(format_args!(
        "restarting {name} with drive_serial = {serial} (catch_serial_cmd)"
    ));
    cancellable(ctx, async {
        ctx.env
            .start_vm(&name, &params, &ctx.dir)
            .await
            .map_err(TestError::from)
    })
    .await?;
    Ok(serial)
}

/// Each disk's device is the model its interface makes (`virtio-blk-pci`, `ide-hd`,
/// `scsi-hd`…), as QEMU reports the device's QOM type — an IDE disk is checked by its own
/// device, not by the IDE controller every `pc` machine has.
async fn disk_types(
    ctx: &TestContext,
    vm: &dyn crate::env::GuestVm,
    assigned: &Assigned,
    problems: &mut Vec<String>,
) -> Result<(), TestError> {
    for (i, (image, bus)) in assigned.disks.iter().enumerate() {
        let Ok(itf) = bus.parse::<DiskInterface>() else {
            continue;
        };
        let expected = qemu_cmd::names::disk_model(itf);
        let id = qemu_cmd::names::DiskIds::of(image, i).device;
        let path = format!("/machine/peripheral/{id}");
        let reply = cancellable(ctx, async {
            Ok::<_, TestError>(
                vm.qmp("qom-get", json!({"path": path, "property": "type"}))
                    .await,
            )
        })
        .await?;
        match reply {
            Ok(Value::String(t)) if t == expected => {}
            Ok(other) => problems.push(format!(
                "disk {image} model mismatch: assigned to the VM: {bus} ({expected}); reported by QEMU (type of device {id}): {other}"
            )),
            Err(e) => problems.push(format!(
                "disk {image} model mismatch: assigned to the VM: {bus} ({expected}); QEMU has no device {id}: {}",
                crate::error::error_chain(&e)
            )),
        }
    }
    Ok(())
}

/// tp-qemu's checks on the human monitor's `info network`: as many `model=` as NICs, each
/// NIC's model found in a `model=(.*),` match, every NIC's MAC among the `macaddr=`s.
async fn network_info(
    ctx: &TestContext,
    vm: &dyn crate::env::GuestVm,
    assigned: &Assigned,
    problems: &mut Vec<String>,
) -> Result<(), TestError> {
    let info = cancellable(ctx, async {
        vm.human_monitor_cmd("info network")
            .await
            .map_err(TestError::from)
    })
    .await?;
    let models = network_models(&info);
    if models.len() != assigned.nics.len() {
        problems.push(format!(
            "NIC count mismatch: assigned to the VM: {}; reported by QEMU (info network): {}",
            assigned.nics.len(),
            models.len()
        ));
    }
    for (nic, model) in &assigned.nics {
        if !models.iter().any(|m| m.contains(model.as_str())) {
            problems.push(format!(
                "NIC {nic} model mismatch: assigned to the VM: {model}; reported by QEMU (info network): {models:?}"
            ));
        }
    }
    let ids = cancellable(ctx, async { vm.nic_ids().await.map_err(TestError::from) }).await?;
    let macs = network_macs(&info);
    for n in &ids {
        let mac = n.mac.to_string().to_lowercase();
        if !macs.contains(&mac) {
            problems.push(format!(
                "NIC {} MAC address: assigned to the VM: {mac}; reported by QEMU (info network): {macs:?}",
                n.name
            ));
        }
    }
    Ok(())
}

/// tp-qemu's `model=(.*),` matches in `info network` (greedy, to the line's last comma).
fn network_models(info: &str) -> Vec<String> {
    info.lines()
        .filter_map(|l| {
            let at = l.find("model=")? + "model=".len();
            let rest = &l[at..];
            rest.rfind(',').map(|end| rest[..end].to_owned())
        })
        .collect()
}

/// The `macaddr=` values of `info network`, lower-case.
fn network_macs(info: &str) -> Vec<String> {
    info.split("macaddr=")
        .skip(1)
        .filter_map(|rest| rest.split_whitespace().next())
        .map(|m| m.trim_end_matches(',').to_lowercase())
        .collect()
}

/// tp-qemu's machine type check: the description `-machine help` gives the VM's machine type
/// (QOM type `NAME-machine`; QMP has no descriptions) is in the guest command's output.
async fn machine_type(
    ctx: &TestContext,
    vm: &dyn crate::env::GuestVm,
    shell: &mut Box<dyn crate::shell::RemoteShell>,
    cmd: &str,
    problems: &mut Vec<String>,
) -> Result<(), TestError> {
    let current = cancellable(ctx, async {
        vm.qmp("qom-get", json!({"path": "/machine", "property": "type"}))
            .await
            .map_err(TestError::from)
    })
    .await?;
    let current = current
        .as_str()
        .unwrap_or_default()
        .trim_end_matches("-machine")
        .to_owned();
    let Some(binary) = ctx.env.qemu_binary(&ctx.params) else {
        return Err(TestError::error(
            "check_machine_type_cmd: this environment has no QEMU binary to ask for machine \
             descriptions (`-machine help`)",
        ));
    };
    let argv: Vec<std::ffi::OsString> =
        vec![binary.clone().into(), "-machine".into(), "help".into()];
    let out = crate::command::run(ctx, &argv).await?;
    if !out.success() {
        return Err(TestError::error(format!(
            "check_machine_type_cmd: {}",
            out.describe()
        )));
    }
    let help = &out.stdout;
    let Some(description) = machine_description(help, &current) else {
        return Err(TestError::error(format!(
            "check_machine_type_cmd: machine type {current:?} is not in `{} -machine help`",
            binary.display()
        )));
    };
    let seen = guest_output(ctx, shell, cmd).await?;
    if !seen.contains(description.as_str()) {
        problems.push(format!(
            "machine type: assigned to the VM: {current} ({description}); `{cmd}` printed {:?}",
            seen.trim()
        ));
    }
    Ok(())
}

/// The description `-machine help` gives `name`: the text after the name and before any
/// `(alias of …)`/`(default)` note, trimmed (tp-qemu's `([\w\.-]+)\s+([^(]+)`).
fn machine_description(help: &str, name: &str) -> Option<String> {
    help.lines().find_map(|l| {
        let rest = l.trim_start().strip_prefix(name)?;
        if !rest.starts_with(char::is_whitespace) {
            return None;
        }
        let text = rest.split('(').next()?.trim();
        (!text.is_empty()).then(|| text.to_owned())
    })
}

/// What the VM was given, as its spec reads it (so as QEMU's command line has it): `mem` in MiB
/// (`1024`, `512M`, `2G` alike), the vCPUs, each disk with its bus (`drive_format`; unset: IDE,
/// the builder's default) and each NIC with its model.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Assigned {
    mem_mib: u64,
    cpus: u32,
    disks: Vec<(String, String)>,
    nics: Vec<(String, String)>,
}

impl Assigned {
    fn of(ctx: &TestContext) -> Result<Assigned, TestError> {
        let vm = crate::catalogue::session::main_vm_name(ctx)?;
        Assigned::from_spec(&VmSpec::new(&ctx.params, &vm)?)
    }

    fn from_spec(spec: &VmSpec) -> Result<Assigned, TestError> {
        let Some(mem) = spec.mem else {
            return Err(TestError::error(format!(
                "vm {}: mem is not set: the test needs the memory the VM was given",
                spec.name
            )));
        };
        Ok(Assigned {
            mem_mib: mem.mib(),
            cpus: spec.smp.as_ref().map_or(1, |s| s.cpus),
            disks: spec
                .images
                .iter()
                .map(|i| {
                    let bus = i.interface.unwrap_or(DiskInterface::Ide);
                    (i.name.clone(), bus.as_str().to_owned())
                })
                .collect(),
            nics: spec
                .nics
                .iter()
                .map(|n| (n.name.clone(), n.model.clone()))
                .collect(),
        })
    }
}

fn ids(functions: &[PciFunction]) -> String {
    functions
        .iter()
        .map(|f| {
            if f.qdev_id.is_empty() {
                f.id.clone()
            } else {
                format!("{} ({})", f.id, f.qdev_id)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assigned(pairs: &[(&str, &str)]) -> Assigned {
        let mut p = params::Params::new();
        for (k, v) in pairs {
            p.insert(*k, *v);
        }
        let spec = VmSpec::new(&p, "vm1").unwrap_or_else(|e| panic!("{e}"));
        Assigned::from_spec(&spec).unwrap_or_else(|e| panic!("{e:?}"))
    }

    /// `mem` means what it means on QEMU's command line: `2G` is 2048 MiB, not an error.
    #[test]
    fn memory_sizes_are_read_as_the_builder_reads_them() {
        assert_eq!(assigned(&[("mem", "2G")]).mem_mib, 2048);
        assert_eq!(assigned(&[("mem", "512M")]).mem_mib, 512);
        assert_eq!(assigned(&[("mem", "384")]).mem_mib, 384);
    }

    #[test]
    fn disks_and_nics_come_with_their_models() {
        let a = assigned(&[
            ("mem", "256"),
            ("smp", "2"),
            ("images", "d1 d2"),
            ("image_name", "x"),
            ("drive_format_d2", "virtio"),
            ("nics", "n1 n2"),
            ("nic_model_n2", "e1000"),
        ]);
        assert_eq!(a.cpus, 2);
        assert_eq!(
            a.disks,
            [("d1".into(), "ide".into()), ("d2".into(), "virtio".into())]
        );
        assert_eq!(
            a.nics,
            [
                ("n1".into(), "rtl8139".into()),
                ("n2".into(), "e1000".into())
            ]
        );
    }

    /// `info network` of a VM with two NICs, as QEMU 7.2 and 10.0 print it.
    const INFO_NETWORK: &str =
        "net0: index=0,type=nic,model=e1000,macaddr=9a:6c:1c:95:4f:8e\r\n \\ \
        hostnet0: index=0,type=user,net=10.0.2.0,restrict=off\r\nnet1: \
        index=0,type=nic,model=virtio-net-pci,macaddr=9A:6C:1C:95:4F:8F\r\n \\ hostnet1: \
        index=0,type=user,net=10.0.2.0,restrict=off\r\n";

    #[test]
    fn machine_descriptions_are_read_as_tp_qemu_reads_them() {
        let help = "Supported machines are:\n\
            pc                   Standard PC (i440FX + PIIX, 1996) (alias of pc-i440fx-7.2)\n\
            pc-i440fx-7.2        Standard PC (i440FX + PIIX, 1996) (default)\n\
            pc-i440fx-7.1        Standard PC (i440FX + PIIX, 1996)\n\
            q35                  Standard PC (Q35 + ICH9, 2009) (alias of pc-q35-7.2)\n\
            pc-q35-7.2           Standard PC (Q35 + ICH9, 2009)\n";
        assert_eq!(
            machine_description(help, "pc-i440fx-7.2").as_deref(),
            Some("Standard PC")
        );
        assert_eq!(machine_description(help, "pc-q35-7").as_deref(), None);
        assert_eq!(machine_description(help, "isapc"), None);
    }

    #[test]
    fn info_network_gives_tp_qemus_model_matches_and_the_macs() {
        // `model=(.*),` is greedy: to the line's last comma.
        assert_eq!(network_models(INFO_NETWORK), ["e1000", "virtio-net-pci"]);
        assert_eq!(
            network_macs(INFO_NETWORK),
            ["9a:6c:1c:95:4f:8e", "9a:6c:1c:95:4f:8f"]
        );
        assert!(network_models("").is_empty());
    }

    #[test]
    fn the_last_number_is_taken() {
        assert_eq!(number("Memory: 200356K/261612K"), Some(261612.0));
        assert_eq!(number("210744\n"), Some(210744.0));
        assert_eq!(number("none"), None);
    }
}
