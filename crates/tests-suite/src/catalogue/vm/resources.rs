//! `physical_resources_check`: the guest sees the memory, CPUs, disks and NICs the params give
//! the VM, and the NIC and disk models are the configured ones — checked on QEMU's side with
//! `query-pci` (the seed's `chk_fmt_model` read `info pci`) and on the guest's side with its
//! `lspci`. Every mismatch is collected and reported together: "assigned to the VM" versus
//! "reported by QEMU" / "reported by the guest".

use serde_json::json;
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
        let (via, tolerance) = read_params(k, (via, tolerance))?;
        let via = PHYSICAL_RESOURCES_CHECK.declared(via, "serial_login")?;
        let tolerance = PHYSICAL_RESOURCES_CHECK.declared(tolerance, "mem_chk_tolerance")?;
        let assigned = Assigned::of(ctx)?;
        let (mem, smp) = (assigned.mem_mib, assigned.cpus);
        let images: Vec<String> = assigned.disks.iter().map(|(n, _)| n.clone()).collect();
        let nics: Vec<String> = assigned.nics.iter().map(|(n, _)| n.clone()).collect();

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
        if problems.is_empty() {
            Ok(())
        } else {
            Err(TestError::fail(problems.join("; ")))
        }
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

    #[test]
    fn the_last_number_is_taken() {
        assert_eq!(number("Memory: 200356K/261612K"), Some(261612.0));
        assert_eq!(number("210744\n"), Some(210744.0));
        assert_eq!(number("none"), None);
    }
}
