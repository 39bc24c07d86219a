//! The builder: a [`VmSpec`] plus [`Capabilities`] plus a [`RunContext`] → [`QemuCommand`].
//!
//! One function per QEMU option family, in the submodules, each taking the typed view and asking
//! the capabilities what this binary accepts. Options are emitted in avocado-vt's order
//! (environment and command prefix, `-S`, name, sandbox, machine, `-nodefaults`, IOMMUs, VGA and
//! the extra QXL adapters, watchdog, memory, `-smp`, `-numa`, `-cpu`, sound cards, monitors,
//! pvpanic, serials, RNGs, SeaBIOS log, USB, iothreads, disks, NICs, vsocks, CD-ROMs, boot files
//! and kernel, redirs, display (VNC, SPICE…), uuid, testdev, debug-exit, HPET, `-rtc`, `-boot`,
//! 9p, PCI assignment, extra params, `-bios`, TPMs, host devices, `-compat`, `-runas`, sga,
//! smartcard, option ROMs, input devices, balloons, `-msg`/`-overcommit`/`-k`, the
//! `virtio_dev_*` properties, extra root ports), `-incoming` last:
//! PCI slots are handed out in that order, so the same order gives the same addresses.
//! What the binary cannot do is a [`ProblemKind::Unsupported`] problem, collected with the
//! view's own problems so a variant reports everything at once. Nothing here does I/O.

mod block;
mod chardev;
pub(crate) mod devices;
mod hostdev;
mod iommu;
mod launch;
mod memory;
mod misc;
mod net;
mod options;
mod pci;
mod peripherals;
mod platform;
mod smp;
mod spice;
mod throttle;
mod tpm;
mod usb;
mod vga;
mod virtiofs;

use params::Params;

use crate::caps::{BoolSyntax, Capabilities};
use crate::cmd::{QemuCommand, RunText, Word, WordBuf};
use crate::plan::RunPlan;
use spec::problem::{Problem, ProblemKind, SpecError};
use spec::read::{Findings, FlatParams, ObjParams};
use spec::vm::VmSpec;

/// The VM a variant's command line is for: `main_vm`, else the first of `vms`, else `vm1`
/// (avocado-vt's default main VM).
pub fn main_vm(params: &Params) -> &str {
    main_vm_of(&ObjParams::root(params))
}

fn main_vm_of<'a>(root: &ObjParams<'a>) -> &'a str {
    root.get("main_vm")
        .filter(|s| !s.is_empty())
        .or_else(|| root.get("vms").and_then(|v| v.split_whitespace().next()))
        .unwrap_or("vm1")
}

/// The command line of `spec` for this run (`plan`) on this QEMU (`caps`).
///
/// # Errors
///
/// [`SpecError::Params`] with every value this QEMU cannot honour, each with the cfg line the
/// spec recorded for it.
pub fn build(spec: &VmSpec, plan: &RunPlan, caps: &Capabilities) -> Result<QemuCommand, SpecError> {
    let mut b = Builder::new(spec, caps, plan, Vec::new());
    b.all(spec);
    b.finish()
}

/// Reads the spec of the variant's main VM (see [`main_vm`]) and builds its command line: a
/// dry run's or the command-line matrix's one step. Problems of the params and what the binary
/// lacks are reported together.
///
/// # Errors
///
/// [`SpecError::Params`] with every bad or unsupported key of the VM and its objects.
pub fn cmdline(
    params: &Params,
    caps: &Capabilities,
    plan: &RunPlan,
) -> Result<QemuCommand, SpecError> {
    read_and_build(&ObjParams::root(params), caps, plan)
}

/// [`cmdline`] from [`FlatParams`] (a variant's entries, indexed without copying): what
/// [`crate::for_each_cmdline`] and [`crate::map_cmdlines`] use, several times faster than going
/// through `VariantView::params()`.
///
/// # Errors
///
/// [`SpecError::Params`] with every bad or unsupported key of the VM and its objects.
pub fn cmdline_flat(
    flat: &FlatParams<'_>,
    caps: &Capabilities,
    plan: &RunPlan,
) -> Result<QemuCommand, SpecError> {
    read_and_build(&ObjParams::flat(flat), caps, plan)
}

fn read_and_build(
    root: &ObjParams<'_>,
    caps: &Capabilities,
    plan: &RunPlan,
) -> Result<QemuCommand, SpecError> {
    let vm = main_vm_of(root);
    let mut found = Findings::new();
    let spec = VmSpec::read(root.object(vm), vm, &mut found);
    if let Some(p) = required_qemu(root, caps) {
        found.problems.push(p);
    }
    let mut b = Builder::new(&spec, caps, plan, found.problems);
    b.all(&spec);
    b.finish()
}

/// `required_qemu` (avocado-vt's version interval of the variant) when this QEMU is outside
/// it: the runner skips such a variant, as avocado-vt cancels it; a dry run names the reason.
fn required_qemu(root: &ObjParams<'_>, caps: &Capabilities) -> Option<Problem> {
    let (text, src) = root.get_with_origin("required_qemu")?;
    let v = caps.version;
    let kind = match text.parse::<spec::VersionInterval>() {
        Ok(i) if i.contains(&[v.major.into(), v.minor.into(), v.micro.into()]) => return None,
        Ok(i) => ProblemKind::Unsupported {
            reason: format!("the variant runs on QEMU {i} only; this is QEMU {v}"),
        },
        Err(expected) => ProblemKind::Invalid { expected },
    };
    Some(Problem {
        object: "test".into(),
        key: "required_qemu".into(),
        value: Some(text.to_string()),
        origin: src.origin(),
        kind,
    })
}

/// An object of the VM, to name it in a problem.
#[derive(Clone, Copy)]
pub(crate) enum Obj<'n> {
    /// The VM itself.
    Vm,
    /// A listed object: kind (`image`) and name.
    Sub(&'static str, &'n str),
}

/// The state of one build.
pub(crate) struct Builder<'c> {
    pub(crate) caps: &'c Capabilities,
    pub(crate) plan: &'c RunPlan,
    /// The spec, whose origins name the cfg line of an unsupported value.
    spec: &'c VmSpec,
    pub(crate) root: RunText,
    pub(crate) images: RunText,
    pub(crate) run: RunText,
    pub(crate) cmd: QemuCommand,
    problems: Vec<Problem>,
    /// The block family's controllers, places and boot indexes so far.
    pub(crate) block: block::BlockState,
    /// Whether a kernel boots directly (disk boot indexes then start at 1).
    pub(crate) spec_has_kernel: bool,
    /// The USB buses of the controllers emitted so far.
    pub(crate) usb_buses: Vec<usb::UsbBus>,
    /// PCI placement so far.
    pub(crate) pci: pci::PciState,
    /// The options `extra_params` gave, verbatim (by index in `cmd.options`).
    pub(crate) verbatim: std::ops::Range<usize>,
}

impl<'c> Builder<'c> {
    fn new(
        spec: &'c VmSpec,
        caps: &'c Capabilities,
        plan: &'c RunPlan,
        problems: Vec<Problem>,
    ) -> Builder<'c> {
        Builder {
            caps,
            plan,
            spec,
            root: plan.root_dir(),
            images: plan.image_dir(),
            run: plan.run_dir(),
            cmd: QemuCommand::new(Word::from("")),
            problems,
            block: block::BlockState::default(),
            spec_has_kernel: spec.kernel.is_some(),
            usb_buses: Vec::new(),
            pci: pci::PciState::new(pci::Layout::of(spec, caps.has_device())),
            verbatim: 0..0,
        }
    }

    fn all(&mut self, v: &VmSpec) {
        options::env_prefix(self, v);
        self.check_plan(v);
        let mut prog = WordBuf::new();
        self.path(&mut prog, &v.qemu_binary, false);
        self.cmd.program = prog.finish();
        // avocado-vt's order (`VM.make_create_command`): PCI addresses are handed out in it.
        options::stop(self, v);
        misc::name(self, v);
        options::sandbox(self, v);
        misc::machine(self, v);
        pci::machine_devices(self);
        options::defaults(self, v);
        iommu::iommus(self, v);
        vga::vga(self, v);
        spice::extra_qxl(self, v);
        platform::watchdog(self, v);
        pci::controllers(self, v);
        memory::memory(self, v);
        smp::smp(self, v);
        memory::numa(self, v);
        misc::cpu(self, v);
        peripherals::sound(self, v);
        chardev::monitors(self, v);
        platform::pvpanic_vmcoreinfo(self, v);
        chardev::serials(self, v);
        devices::rngs(self, v);
        platform::logs(self, v);
        usb::usb(self, v);
        devices::iothreads(self, v);
        throttle::groups(self, v);
        block::images(self, v);
        virtiofs::filesystems(self, v);
        net::nics(self, v);
        peripherals::vsocks(self, v);
        block::cdroms(self, v);
        misc::boot_files(self, v);
        net::legacy_redirs(self, v);
        misc::display(self, v);
        misc::uuid(self, v);
        chardev::testdev(self, v);
        platform::debugexit(self, v);
        misc::hpet(self, v);
        options::rtc(self, v);
        options::boot(self, v);
        devices::nine_p(self, v);
        misc::pci(self, v);
        misc::extra(self, v);
        launch::bios(self, v);
        tpm::tpms(self, v);
        hostdev::hostdevs(self, v);
        launch::compat_runas(self, v);
        platform::sga(self, v);
        peripherals::smartcard(self, v);
        peripherals::option_roms(self, v);
        peripherals::inputs(self, v);
        devices::balloons(self, v);
        options::qemu_options(self, v);
        iommu::virtio_globals(self, v);
        pci::extra_root_ports(self, v);
        misc::incoming(self, v);
    }

    /// A plan with values must have decided every NIC of the spec (a caller's mistake, reported
    /// rather than rendered as a placeholder QEMU would reject).
    fn check_plan(&mut self, v: &VmSpec) {
        if let Some(values) = &self.plan.values {
            let (nics, vsocks) = (values.nics.len(), values.vsocks.len());
            if nics != v.nics.len() {
                self.plan_problem(
                    "nics",
                    format!(
                        "the run plan decides {nics} NIC(s), the spec has {}",
                        v.nics.len()
                    ),
                );
            }
            if vsocks != v.peripherals.vsocks.len() {
                self.plan_problem(
                    "vsocks",
                    format!(
                        "the run plan decides {vsocks} vsock(s), the spec has {}",
                        v.peripherals.vsocks.len()
                    ),
                );
            }
        }
    }

    fn finish(mut self) -> Result<QemuCommand, SpecError> {
        if self.problems.is_empty() {
            Ok(self.cmd)
        } else {
            spec::sort_problems(&mut self.problems);
            Err(SpecError::Params {
                vm: self.spec.name.clone(),
                problems: self.problems,
            })
        }
    }

    /// Records that this QEMU cannot do what `key` of `obj` asks.
    pub(crate) fn unsupported(&mut self, obj: Obj<'_>, key: &str, reason: String) {
        let (kind, name) = match obj {
            Obj::Vm => ("vm", self.spec.name.as_str()),
            Obj::Sub(kind, name) => (kind, name),
        };
        let read = self.spec.origins.get(kind, name, key);
        self.problems.push(Problem {
            object: format!("{kind} {name}"),
            key: key.to_string(),
            value: read.map(|r| r.value.clone()),
            origin: read.and_then(|r| r.origin.clone()),
            kind: ProblemKind::Unsupported { reason },
        });
    }

    /// A problem with the run plan (not the cfg): named as such, without a cfg line.
    pub(crate) fn plan_problem(&mut self, key: &str, reason: String) {
        self.problems.push(Problem {
            object: "run plan".into(),
            key: key.to_string(),
            value: None,
            origin: None,
            kind: ProblemKind::Unsupported { reason },
        });
    }

    /// Appends a cfg path: relative paths are joined to the root dir (as the seed's
    /// `get_path`); `escape` when the path sits inside an option list.
    pub(crate) fn path(&self, w: &mut WordBuf, p: &str, escape: bool) {
        self.path_under(&self.root, w, p, escape);
    }

    /// Appends a cfg path, relative paths joined to `dir`.
    pub(crate) fn path_under(&self, dir: &RunText, w: &mut WordBuf, p: &str, escape: bool) {
        if !p.starts_with('/') {
            w.run(dir, escape).raw("/");
        }
        if escape {
            w.esc(p.as_bytes());
        } else {
            w.verbatim(p.as_bytes());
        }
    }

    /// A socket or log file in the run dir.
    pub(crate) fn run_file(&self, w: &mut WordBuf, file: &str, escape: bool) {
        w.run(&self.run, escape).raw("/");
        if escape {
            w.esc(file.as_bytes());
        } else {
            w.verbatim(file.as_bytes());
        }
    }

    /// `server=on,wait=off` or `server,nowait`, as this QEMU spells it.
    pub(crate) fn server_nowait(&self, o: &mut Opts) {
        match self.caps.bool_syntax {
            BoolSyntax::OnOff => o.kv("server", "on").kv("wait", "off"),
            BoolSyntax::Short => o.flag("server").flag("nowait"),
        };
    }
}

/// A QEMU id for object `name`: `prefix-name` when `name` is a valid id tail, else
/// `prefix<index>`.
pub(crate) fn qemu_id(prefix: &str, name: &str, index: usize) -> String {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        format!("{prefix}-{name}")
    } else {
        format!("{prefix}{index}")
    }
}

/// Builds one `a=b,c=d` argument; every value goes through [`crate::escape_into`].
pub(crate) struct Opts {
    w: WordBuf,
    first: bool,
}

impl Opts {
    /// Starts with `head` (a driver or backend name: fixed text or validated by the caps).
    pub(crate) fn new(head: &str) -> Opts {
        let mut w = WordBuf::new();
        w.esc(head.as_bytes());
        Opts {
            w,
            first: head.is_empty(),
        }
    }

    fn sep(&mut self) {
        if !self.first {
            self.w.raw(",");
        }
        self.first = false;
    }

    /// `,key=value`.
    pub(crate) fn kv(&mut self, key: &str, value: &str) -> &mut Self {
        self.sep();
        self.w.raw(key).raw("=").esc(value.as_bytes());
        self
    }

    /// `,key` (a bare flag).
    pub(crate) fn flag(&mut self, key: &str) -> &mut Self {
        self.sep();
        self.w.raw(key);
        self
    }

    /// `,key=` followed by whatever `f` appends (paths, run-specific parts).
    pub(crate) fn kv_with(&mut self, key: &str, f: impl FnOnce(&mut WordBuf)) -> &mut Self {
        self.sep();
        self.w.raw(key).raw("=");
        f(&mut self.w);
        self
    }

    /// Extra `key=value` pairs from the cfg, each key and value escaped.
    pub(crate) fn extra(&mut self, pairs: &[(String, Option<String>)]) -> &mut Self {
        for (k, v) in pairs {
            self.sep();
            self.w.esc(k.as_bytes());
            if let Some(v) = v {
                self.w.raw("=").esc(v.as_bytes());
            }
        }
        self
    }

    /// `key=value` pairs from the cfg (JSON properties, `key=value` words), each key and value
    /// escaped.
    pub(crate) fn pairs(&mut self, pairs: &[(String, String)]) -> &mut Self {
        for (k, v) in pairs {
            self.sep();
            self.w.esc(k.as_bytes()).raw("=").esc(v.as_bytes());
        }
        self
    }

    pub(crate) fn finish(self) -> Word {
        self.w.finish()
    }
}
