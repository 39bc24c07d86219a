//! What the runner does to VMs and images around a test: the processing family of keys.
//!
//! avocado-vt's `env_process` reads these keys before a test (images of every VM, then the
//! VMs) and after it (the VMs, then their images); after a failed test it first applies the
//! `on_error` object, so `kill_vm_on_error = yes` kills the VM only when the test failed.
//! [`Processing::before`] and [`Processing::after`] are that one reading, with avocado-vt's
//! defaults when a key is unset (its code's, not its `base.cfg`'s: a tree that sets a key keeps
//! its value, a tree that does not gets what avocado-vt would do).

use std::time::Duration;

use params::Params;

use crate::keys::{KeyDoc, Keys};
use crate::problem::{sort_problems, SpecError};

/// The processing keys, with avocado-vt's defaults.
pub const PROCESS_KEYS: &[KeyDoc] = &[
    KeyDoc::with_default(
        "start_vm",
        "no",
        "start the VM before the test (a running VM with the same command line is reused)",
    ),
    KeyDoc::with_default(
        "restart_vm",
        "no",
        "kill the VM before the test, so `start_vm` boots it afresh",
    ),
    KeyDoc::with_default(
        "kill_vm_before_test",
        "no",
        "with `start_vm = no`: destroy a VM left running by an earlier test",
    ),
    KeyDoc::with_default(
        "restore_from_snapshot",
        "no",
        "yes: start the VM from the state saved after an earlier boot with the same command \
         line (and QEMU) instead of booting it, the first such boot logged into and saved; \
         save: boot it (never restore) and save its state for later tests; no: boot",
    ),
    KeyDoc::with_default("kill_vm", "no", "destroy the VM after the test"),
    KeyDoc::with_default(
        "kill_vm_gracefully",
        "no",
        "destroy it gracefully (`shutdown_command`, then system_powerdown) before quit and SIGKILL",
    ),
    KeyDoc::with_default(
        "kill_vm_timeout",
        "0",
        "seconds to wait for the VM to go down by itself before destroying it",
    ),
    KeyDoc::with_default(
        "screendump_on_pass",
        "no",
        "also take each running VM's screendump (QMP `screendump`, PNG) after a test that \
         passed; after a failure or an error it is always taken, for the report",
    ),
    KeyDoc::with_default(
        "kill_unresponsive_vms",
        "no",
        "after the test, kill every running VM that no longer lets a session log in",
    ),
    KeyDoc::with_default(
        "skip_image_processing",
        "no",
        "neither create nor remove any image around this test",
    ),
    KeyDoc::with_default(
        "create_image",
        "no",
        "create the image before the test when its file does not exist",
    ),
    KeyDoc::with_default(
        "force_create_image",
        "no",
        "create the image before the test even when its file exists (replacing it)",
    ),
    KeyDoc::with_default(
        "remove_image",
        "yes",
        "remove the image after the test (skipped while its VM runs, unless the image is not \
         on its command line, `boot_drive = no`; that VM is then destroyed)",
    ),
    KeyDoc::with_default(
        "boot_drive",
        "yes",
        "no: the image is not on the VM's command line (a test hot-plugs it), so it can be \
         removed while the VM runs",
    ),
];

/// `restore_from_snapshot`: whether a VM that must be started may come from a saved state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Restore {
    /// `no`: boot.
    #[default]
    No,
    /// `yes`: restore from the saved state of the same command line, or boot, log in and save.
    Yes,
    /// `save`: boot (for a test about booting), log in and save for later tests.
    SaveOnly,
}

/// How a VM is brought down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Teardown {
    /// The guest's `shutdown_command`, then `system_powerdown`, then what [`Teardown::Kill`]
    /// does; each stage bounded.
    Graceful,
    /// QMP `quit`, then SIGKILL of QEMU's process group.
    Kill,
}

/// What to do with one image around a test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageProcessing {
    /// The image (a name of the VM's `images`).
    pub name: String,
    /// `create_image`: create it when its file is missing.
    pub create: bool,
    /// `force_create_image`: create it even when its file exists.
    pub force_create: bool,
    /// `remove_image`.
    pub remove: bool,
    /// `boot_drive`: the image is on the VM's command line.
    pub boot_drive: bool,
}

/// What to do with one VM around a test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmProcessing {
    /// The VM (a name of `vms`).
    pub name: String,
    /// `start_vm`.
    pub start: bool,
    /// `restore_from_snapshot`.
    pub restore: Restore,
    /// `restart_vm`.
    pub restart: bool,
    /// `kill_vm_before_test`.
    pub kill_before_test: bool,
    /// `kill_vm`.
    pub kill: bool,
    /// `kill_vm_gracefully`.
    pub teardown: Teardown,
    /// `kill_vm_timeout`.
    pub kill_wait: Duration,
    /// Its images, in `images` order (empty with `skip_image_processing`).
    pub images: Vec<ImageProcessing>,
}

/// The processing of one test variant, before or after the test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processing {
    /// The VMs, in `vms` order.
    pub vms: Vec<VmProcessing>,
    /// `kill_unresponsive_vms`.
    pub kill_unresponsive: bool,
    /// `screendump_on_pass`.
    pub screendump_on_pass: bool,
}

impl Processing {
    /// The processing before a test (and after a passing one): the variant's params as they
    /// are.
    ///
    /// # Errors
    /// [`SpecError::Object`] listing every bad value (a boolean that is not one, a timeout that
    /// is not a number of seconds), in cfg order.
    pub fn before(params: &Params) -> Result<Processing, SpecError> {
        Processing::read(params)
    }

    /// The processing after a test: as [`Processing::before`] when it passed; after a failure
    /// or an error, with the `on_error` object applied first (`kill_vm_on_error = yes` reads as
    /// `kill_vm = yes`).
    ///
    /// # Errors
    /// As [`Processing::before`].
    pub fn after(params: &Params, failed: bool) -> Result<Processing, SpecError> {
        if failed {
            Processing::read(&params.object_params("on_error"))
        } else {
            Processing::read(params)
        }
    }

    fn read(params: &Params) -> Result<Processing, SpecError> {
        let mut problems = Vec::new();
        let mut top = Keys::new(params, "test processing", PROCESS_KEYS);
        let kill_unresponsive = top.bool("kill_unresponsive_vms");
        let screendump_on_pass = top.bool("screendump_on_pass");
        let skip_images = top.bool("skip_image_processing");
        problems.extend(top.take_problems());
        let mut vms = Vec::new();
        for vm in params.objects("vms") {
            let vp = params.object_params(vm);
            let mut k = Keys::new(&vp, format!("vm {vm}"), PROCESS_KEYS);
            let mut images = Vec::new();
            if !skip_images {
                for image in vp.objects("images") {
                    let ip = vp.object_params(image);
                    let mut ik = Keys::new(&ip, format!("image {image}"), PROCESS_KEYS);
                    images.push(ImageProcessing {
                        name: image.to_string(),
                        create: ik.bool("create_image"),
                        force_create: ik.bool("force_create_image"),
                        remove: ik.bool("remove_image"),
                        boot_drive: ik.bool("boot_drive"),
                    });
                    problems.extend(ik.take_problems());
                }
            }
            vms.push(VmProcessing {
                name: vm.to_string(),
                start: k.bool("start_vm"),
                restore: k
                    .choice(
                        "restore_from_snapshot",
                        &[
                            ("no", Restore::No),
                            ("yes", Restore::Yes),
                            ("save", Restore::SaveOnly),
                        ],
                    )
                    .unwrap_or_default(),
                restart: k.bool("restart_vm"),
                kill_before_test: k.bool("kill_vm_before_test"),
                kill: k.bool("kill_vm"),
                teardown: if k.bool("kill_vm_gracefully") {
                    Teardown::Graceful
                } else {
                    Teardown::Kill
                },
                kill_wait: k.secs("kill_vm_timeout").unwrap_or(Duration::ZERO),
                images,
            });
            problems.extend(k.take_problems());
        }
        // A key set once at the top level is seen by every VM and image: report it once.
        sort_problems(&mut problems);
        problems.dedup_by(|a, b| a.key == b.key && a.origin == b.origin && a.origin.is_some());
        if problems.is_empty() {
            Ok(Processing {
                vms,
                kill_unresponsive,
                screendump_on_pass,
            })
        } else {
            Err(SpecError::Object {
                object: "test processing".into(),
                problems,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::params;

    #[test]
    fn unset_keys_are_avocado_vts_defaults() {
        let p = params(&[("vms", "vm1"), ("images", "image1")]);
        let pr = Processing::before(&p).unwrap_or_else(|e| panic!("{e}"));
        let vm = &pr.vms[0];
        assert!(!vm.start && !vm.restart && !vm.kill && !vm.kill_before_test);
        assert_eq!(vm.teardown, Teardown::Kill);
        assert_eq!(vm.kill_wait, Duration::ZERO);
        assert_eq!(
            vm.images,
            [ImageProcessing {
                name: "image1".into(),
                create: false,
                force_create: false,
                remove: true,
                boot_drive: true,
            }]
        );
        assert!(!pr.kill_unresponsive);
    }

    #[test]
    fn per_object_values_and_on_error() {
        let p = params(&[
            ("vms", "vm1 vm2"),
            ("images", "image1 stg"),
            ("start_vm", "yes"),
            ("kill_vm_vm2", "yes"),
            ("kill_vm_on_error", "yes"),
            ("kill_vm_gracefully", "yes"),
            ("kill_vm_timeout", "2.5"),
            ("remove_image_image1", "no"),
            ("create_image_stg", "yes"),
        ]);
        let pr = Processing::before(&p).unwrap_or_else(|e| panic!("{e}"));
        assert!(pr.vms.iter().all(|v| v.start));
        assert_eq!(
            pr.vms.iter().map(|v| v.kill).collect::<Vec<_>>(),
            [false, true]
        );
        let images = &pr.vms[0].images;
        assert_eq!(
            images
                .iter()
                .map(|i| (i.create, i.remove))
                .collect::<Vec<_>>(),
            [(false, false), (true, true)]
        );
        let after = Processing::after(&p, true).unwrap_or_else(|e| panic!("{e}"));
        assert!(after.vms.iter().all(|v| v.kill));
        assert_eq!(after.vms[0].teardown, Teardown::Graceful);
        assert_eq!(after.vms[0].kill_wait, Duration::from_millis(2500));
        let passed = Processing::after(&p, false).unwrap_or_else(|e| panic!("{e}"));
        assert!(!passed.vms[0].kill);
    }

    #[test]
    fn skip_image_processing_drops_every_image() {
        let p = params(&[
            ("vms", "vm1"),
            ("images", "image1"),
            ("skip_image_processing", "yes"),
        ]);
        let pr = Processing::before(&p).unwrap_or_else(|e| panic!("{e}"));
        assert!(pr.vms[0].images.is_empty());
    }

    #[test]
    fn bad_values_are_errors_not_defaults() {
        let p = params(&[
            ("vms", "vm1"),
            ("images", "image1"),
            ("kill_vm_timeout", "sixty"),
            ("start_vm", "sure"),
            ("remove_image", "maybe"),
        ]);
        let err = Processing::before(&p)
            .err()
            .unwrap_or_else(|| panic!("bad values were accepted"));
        let mut keys: Vec<&str> = err.problems().iter().map(|p| p.key.as_str()).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["kill_vm_timeout", "remove_image", "start_vm"],
            "{err}"
        );
    }
}
