//! `physical_resources_check`: the guest sees the memory, CPUs, disks and NICs the params give
//! the VM, and the NIC and disk models are the configured ones — checked on QEMU's side with
//! `query-pci` (the seed's `chk_fmt_model` read `info pci`) and on the guest's side with its
//! `lspci`. Every mismatch is collected and reported together: "assigned to the VM" versus
//! "reported by QEMU" / "reported by the guest".

use serde_json::json;

use super::common::{
    cancellable, disk_pci_id, guest_output, login, main_vm, nic_driver, nic_pci_id, pci_functions,
    PciFunction,
};
use crate::future::BoxFuture;
use crate::registry::TestContext;
use crate::verdict::{TestError, TestResult};

/// The kernel's boot line `Memory: AVAILABLEK/TOTALK`: TOTAL is the RAM it found (within a
/// few hundred KiB of what QEMU gives: BIOS holes), unlike `MemTotal`, which leaves out the
/// kernel's own reservations (15–20 % of a 256 MiB guest).
const MEM_CMD: &str = "dmesg | grep -o 'Memory: [0-9]*K/[0-9]*K'";
const CPU_CMD: &str = "grep -c ^processor /proc/cpuinfo";
const DISK_CMD: &str = "ls /sys/block | grep -E '^(vd|sd|hd|xvd)'";
const NIC_CMD: &str = "ls /sys/class/net | grep '^eth'";

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
        let p = ctx.params.object_params(ctx.params.require("main_vm")?);
        // `mem` as the builder reads it (`1024`, `512M`, `2G`): the spec's memory size, in MiB.
        let mem = p
            .require("mem")?
            .parse::<::spec::types::MemSize>()
            .map_err(|e| {
                TestError::error(format!(
                    "{}mem = {:?}: expected {}",
                    p.origin("mem")
                        .map(|o| format!("{o}: "))
                        .unwrap_or_default(),
                    p.get("mem").unwrap_or_default(),
                    e.0
                ))
            })?
            .mib();
        let smp = p.get_u64("smp")?.unwrap_or(1);
        let tolerance = p.get_f64("mem_chk_tolerance")?.unwrap_or(5.0);
        let images: Vec<String> = p
            .objects("images")
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        let nics: Vec<String> = p.objects("nics").iter().map(|s| (*s).to_owned()).collect();

        let vm = main_vm(ctx)?;
        let mut shell = login(ctx, &vm).await?;
        let mut problems = Vec::new();

        // Memory: firmware holes and reservations make the guest see up to `tolerance` percent
        // less, never more.
        let mem_cmd = p.get("mem_chk_cmd").unwrap_or(MEM_CMD);
        let out = guest_output(ctx, &mut shell, mem_cmd).await?;
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
        let cpu_cmd = p.get("cpu_chk_cmd").unwrap_or(CPU_CMD);
        let out = guest_output(ctx, &mut shell, cpu_cmd).await?;
        match number(&out) {
            Some(n) if n as u64 == smp => {}
            _ => problems.push(format!(
                "CPUs: assigned {smp}; `{cpu_chk}` printed {:?}",
                out.trim(),
                cpu_chk = cpu_cmd
            )),
        }
        let disk_cmd = p.get("disk_chk_cmd").unwrap_or(DISK_CMD);
        let out = guest_output(ctx, &mut shell, disk_cmd).await?;
        let disks = out.split_whitespace().count();
        if disks != images.len() {
            problems.push(format!(
                "disks: assigned {} ({}); the guest sees {disks}: {:?}",
                images.len(),
                images.join(" "),
                out.trim()
            ));
        }
        let nic_cmd = p.get("nic_chk_cmd").unwrap_or(NIC_CMD);
        let out = guest_output(ctx, &mut shell, nic_cmd).await?;
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
        let lspci = guest_output(ctx, &mut shell, "lspci").await?;
        let mut expected: Vec<(String, String, &'static str)> = Vec::new();
        for nic in &nics {
            // The seed's default model when none is set.
            let model = p
                .object_params(nic)
                .get("nic_model")
                .unwrap_or("rtl8139")
                .to_owned();
            let driver = nic_driver(&model).to_owned();
            match nic_pci_id(&driver) {
                Some(id) => expected.push((format!("NIC {nic}"), model, id)),
                None => problems.push(format!("NIC {nic}: no known PCI id for model {model:?}")),
            }
        }
        for image in &images {
            let bus = p
                .object_params(image)
                .get("drive_format")
                .unwrap_or("ide")
                .to_owned();
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
                     guest (lspci): {:?}",
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

    #[test]
    fn the_last_number_is_taken() {
        assert_eq!(number("Memory: 200356K/261612K"), Some(261612.0));
        assert_eq!(number("210744\n"), Some(210744.0));
        assert_eq!(number("none"), None);
    }
}
