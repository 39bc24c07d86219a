//! The TPM family: `tpms`, each a TPM front end device (`tpm_model`) on a back end
//! (`tpm_type`): `emulator` (an swtpm process the `vm` crate starts beside QEMU, its control
//! socket and state directory in the VM's run dir) or `passthrough` (a host TPM,
//! `tpm_device_path`). Read as avocado-vt reads them (`qcontainer.tpm_define_by_params`), with
//! the keys declared here.

use crate::keys::KeyDoc;
use crate::problem::ProblemKind;
use crate::read::Reader;

/// VM-level keys of this family.
pub const TPM_VM_KEYS: &[KeyDoc] = &[KeyDoc::optional(
    "tpms",
    "the VM's TPMs (objects with the TPM keys); an emulated one runs swtpm beside QEMU",
)];

/// Keys of a TPM (`tpms` objects: `key_NAME` overrides `key`).
pub const TPM_KEYS: &[KeyDoc] = &[
    KeyDoc::required(
        "tpm_type",
        "the back end: emulator (swtpm, started by kvmtest) or passthrough (a host TPM)",
    ),
    KeyDoc::required(
        "tpm_model",
        "the front end device: tpm-crb, tpm-tis, tpm-spapr, tpm-tis-device…",
    ),
    KeyDoc::optional(
        "tpm_version",
        "2.0: a TPM 2.0 (`--tpm2` of swtpm and swtpm_setup); anything else: a TPM 1.2",
    ),
    KeyDoc::optional(
        "tpm_model_props",
        "more properties of the front end device, a JSON object (`{\"ppi\": false}`)",
    ),
    KeyDoc::with_default(
        "tpm_bin",
        "/usr/bin/swtpm",
        "the emulator (Debian's `swtpm` package)",
    ),
    KeyDoc::with_default(
        "tpm_setup_bin",
        "/usr/bin/swtpm_setup",
        "the emulator's state set-up tool, run before each start (Debian's `swtpm-tools`)",
    ),
    KeyDoc::optional(
        "tpm_bin_extra_options",
        "more words for swtpm's command line (split as a shell splits words, never run by one)",
    ),
    KeyDoc::optional(
        "tpm_setup_bin_extra_options",
        "more words for swtpm_setup's command line (split as a shell splits words)",
    ),
    KeyDoc::with_default(
        "tpm_overwrite",
        "no",
        "yes: swtpm_setup `--overwrite`, else `--not-overwrite` (kvmtest's state directory is \
         the run dir's, new for each start)",
    ),
    KeyDoc::optional(
        "tpm_device_path",
        "the host TPM of a passthrough back end (`/dev/tpm0`; required there)",
    ),
];

/// An emulated TPM's swtpm settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwtpmSpec {
    /// `tpm_bin`.
    pub binary: String,
    /// `tpm_setup_bin`.
    pub setup_binary: String,
    /// `tpm_version = 2.0`.
    pub tpm2: bool,
    /// `tpm_bin_extra_options`, split into words.
    pub extra: Vec<String>,
    /// `tpm_setup_bin_extra_options`, split into words.
    pub setup_extra: Vec<String>,
    /// `tpm_overwrite`.
    pub overwrite: bool,
}

/// A TPM's back end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TpmBackend {
    /// `tpm_type = emulator`: swtpm on a unix socket in the run dir.
    Emulator(SwtpmSpec),
    /// `tpm_type = passthrough`: the host TPM at `tpm_device_path`.
    Passthrough {
        /// `tpm_device_path`.
        path: String,
    },
}

impl TpmBackend {
    /// avocado-vt's name of the back end (`tpm_type`, the `-tpmdev` type).
    pub fn kind(&self) -> &'static str {
        match self {
            TpmBackend::Emulator(_) => "emulator",
            TpmBackend::Passthrough { .. } => "passthrough",
        }
    }
}

/// One TPM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmSpec {
    /// Object name (`tpm0`).
    pub name: String,
    /// `tpm_model`: the front end device.
    pub model: String,
    /// `tpm_model_props`: more properties of the front end, in the JSON's order.
    pub model_props: Vec<(String, String)>,
    /// The back end.
    pub backend: TpmBackend,
}

/// Reads `tpms` through the VM's reader.
pub fn read_tpms(r: &mut Reader<'_, '_>) -> Vec<TpmSpec> {
    let mut out = Vec::new();
    for name in r.objects("tpms") {
        let mut t = r.child("tpm", name);
        let model = t.require("tpm_model").map(str::to_string);
        let model_props = crate::opts::json_props_of(&mut t, "tpm_model_props");
        let backend = match t.require("tpm_type") {
            None => None,
            Some("emulator") => {
                let tpm2 = t.str("tpm_version") == Some("2.0");
                let extra = words(&mut t, "tpm_bin_extra_options");
                let setup_extra = words(&mut t, "tpm_setup_bin_extra_options");
                Some(TpmBackend::Emulator(SwtpmSpec {
                    binary: t
                        .string("tpm_bin")
                        .unwrap_or_else(|| "/usr/bin/swtpm".into()),
                    setup_binary: t
                        .string("tpm_setup_bin")
                        .unwrap_or_else(|| "/usr/bin/swtpm_setup".into()),
                    tpm2,
                    extra,
                    setup_extra,
                    overwrite: t.bool("tpm_overwrite", false),
                }))
            }
            Some("passthrough") => t
                .require("tpm_device_path")
                .map(|p| TpmBackend::Passthrough {
                    path: p.to_string(),
                }),
            Some(_) => {
                t.problem(
                    "tpm_type",
                    ProblemKind::Invalid {
                        expected: "emulator or passthrough".into(),
                    },
                );
                None
            }
        };
        if let (Some(model), Some(backend)) = (model, backend) {
            out.push(TpmSpec {
                name: name.to_string(),
                model,
                model_props,
                backend,
            });
        }
    }
    out
}

/// A value split into argv words as a shell splits them (never run by one); unbalanced quotes
/// are a problem.
pub(crate) fn words(r: &mut Reader<'_, '_>, key: &str) -> Vec<String> {
    let Some(text) = r.str(key) else {
        return Vec::new();
    };
    shlex::split(text).unwrap_or_else(|| {
        r.problem(
            key,
            ProblemKind::Invalid {
                expected: "command-line words with balanced quotes".into(),
            },
        );
        Vec::new()
    })
}

#[cfg(test)]
mod tests {
    use crate::test_support::params;
    use crate::VmSpec;

    use super::*;

    #[test]
    fn an_emulator_and_a_passthrough() {
        let p = params(&[
            ("tpms", "tpm0 tpm1"),
            ("tpm_type_tpm0", "emulator"),
            ("tpm_model", "tpm-crb"),
            ("tpm_version_tpm0", "2.0"),
            ("tpm_model_props_tpm0", r#"{"ppi": false, "x": 3}"#),
            ("tpm_bin_extra_options", " --log level=20"),
            ("tpm_type_tpm1", "passthrough"),
            ("tpm_device_path_tpm1", "/dev/tpm0"),
        ]);
        let spec = VmSpec::new(&p, "vm1").unwrap_or_else(|e| panic!("{e}"));
        let tpms = &spec.tpms;
        assert_eq!(tpms.len(), 2);
        assert_eq!(
            tpms[0].model_props,
            [("ppi".into(), "off".into()), ("x".into(), "3".into())]
        );
        let TpmBackend::Emulator(sw) = &tpms[0].backend else {
            panic!("{:?}", tpms[0].backend)
        };
        assert!(sw.tpm2 && !sw.overwrite);
        assert_eq!(sw.extra, ["--log", "level=20"]);
        assert_eq!(sw.binary, "/usr/bin/swtpm");
        assert_eq!(
            tpms[1].backend,
            TpmBackend::Passthrough {
                path: "/dev/tpm0".into()
            }
        );
    }

    #[test]
    fn bad_tpms_name_their_keys() {
        let keys = |pairs: &[(&str, &str)]| -> Vec<String> {
            match VmSpec::new(&params(pairs), "vm1") {
                Ok(_) => Vec::new(),
                Err(e) => e.problems().iter().map(|p| p.key.clone()).collect(),
            }
        };
        assert_eq!(
            keys(&[("tpms", "t"), ("tpm_type", "emulator")]),
            ["tpm_model"]
        );
        assert_eq!(
            keys(&[
                ("tpms", "t"),
                ("tpm_model", "tpm-tis"),
                ("tpm_type", "swtpm")
            ]),
            ["tpm_type"]
        );
        assert_eq!(
            keys(&[
                ("tpms", "t"),
                ("tpm_model", "tpm-tis"),
                ("tpm_type", "passthrough")
            ]),
            ["tpm_device_path"]
        );
        assert_eq!(
            keys(&[
                ("tpms", "t"),
                ("tpm_model", "tpm-tis"),
                ("tpm_type", "emulator"),
                ("tpm_model_props", "{ppi: 1}"),
            ]),
            ["tpm_model_props"]
        );
    }
}
