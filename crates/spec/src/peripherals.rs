//! [`PeripheralsSpec`]: avocado-vt's input devices (`inputs`), sound cards (`soundcards`),
//! vsock devices (`vsocks`), the smartcard reader (`smartcard`) and option ROMs
//! (`option_roms`), read with its keys, declared here.
//!
//! * An input is `input_dev_type` (mouse, keyboard, tablet) on `input_dev_bus_type`; avocado-vt
//!   knows the virtio bus only (`virtio-mouse-pci`…) and refuses any other, so kvmtest does.
//! * `soundcards` is a comma-separated list (`hda,ac97`) or `all`: a name containing `hda` is an
//!   `intel-hda` controller with an `hda-duplex` codec, `ac97` and `es1370` are QEMU's `AC97`
//!   and `ES1370`, any other name is the device of that name.
//! * A vsock is a `vhost-vsock-pci` named after its object; its guest CID is chosen per run.
//! * `smartcard = yes`: a `usb-ccid` reader with a `ccid-card-passthru` card on chardev
//!   `smartcard_id` of backend `smartcard_chardev` (avocado-vt names the chardev's SPICE
//!   channel `smartcard`).

use crate::keys::KeyDoc;
use crate::problem::ProblemKind;
use crate::read::Reader;

/// VM-level keys of this family.
pub const PERIPHERAL_KEYS: &[KeyDoc] = &[
    KeyDoc::optional(
        "inputs",
        "the VM's input devices (objects with `input_dev_type` and `input_dev_bus_type`)",
    ),
    KeyDoc::optional(
        "soundcards",
        "sound cards, comma-separated (`hda,ac97`: a name with `hda` is intel-hda with an \
         hda-duplex codec, `ac97`/`es1370` are AC97/ES1370, others the device of that name), \
         or `all` (`-soundhw all`, QEMU before 7.1)",
    ),
    KeyDoc::optional(
        "vsocks",
        "vhost-vsock devices (object names are their ids); each gets a free guest CID from 3 \
         up, held for the VM's life (needs /dev/vhost-vsock)",
    ),
    KeyDoc::with_default(
        "smartcard",
        "no",
        "yes: a usb-ccid reader with a ccid-card-passthru card on chardev `smartcard_id`",
    ),
    KeyDoc::optional(
        "smartcard_chardev",
        "the smartcard's chardev backend (required with `smartcard`; `spicevmc`: avocado-vt \
         names its SPICE channel `smartcard`)",
    ),
    KeyDoc::optional(
        "smartcard_id",
        "the smartcard chardev's id (required with `smartcard`)",
    ),
    KeyDoc::optional(
        "option_roms",
        "option ROM files, whitespace-separated (`-option-rom FILE` each, as written)",
    ),
];

/// Keys of an input device (`inputs` objects).
pub const INPUT_KEYS: &[KeyDoc] = &[
    KeyDoc::required("input_dev_type", "mouse, keyboard or tablet"),
    KeyDoc::required(
        "input_dev_bus_type",
        "virtio (avocado-vt's only input bus; a USB mouse, keyboard or tablet is a \
         `usb_devices` entry)",
    ),
];

/// What an input device is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// `mouse`.
    Mouse,
    /// `keyboard`.
    Keyboard,
    /// `tablet`.
    Tablet,
}

impl InputKind {
    /// The virtio driver's stem (`virtio-mouse`, then `-pci`, `-device` or `-ccw`).
    pub fn virtio_stem(self) -> &'static str {
        match self {
            InputKind::Mouse => "virtio-mouse",
            InputKind::Keyboard => "virtio-keyboard",
            InputKind::Tablet => "virtio-tablet",
        }
    }
}

/// One input device (on the virtio bus, the only one avocado-vt builds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputSpec {
    /// Object name: the device's id is `input_NAME`.
    pub name: String,
    /// `input_dev_type`.
    pub kind: InputKind,
}

/// One sound card of `soundcards`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SoundCard {
    /// A name containing `hda`: an `intel-hda` controller and an `hda-duplex` codec on it.
    IntelHda,
    /// Any other: the device (`AC97`, `ES1370`, `sb16`…).
    Device(String),
}

/// `soundcards`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SoundSpec {
    /// The value as written (what `-soundhw` gets).
    pub text: String,
    /// `all`: every card (`-soundhw all`).
    pub all: bool,
    /// The cards, in order.
    pub cards: Vec<SoundCard>,
}

/// `smartcard = yes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmartcardSpec {
    /// `smartcard_chardev`: the chardev backend.
    pub backend: String,
    /// `smartcard_id`: the chardev's id.
    pub id: String,
}

/// The family.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeripheralsSpec {
    /// `inputs`.
    pub inputs: Vec<InputSpec>,
    /// `soundcards`.
    pub sound: Option<SoundSpec>,
    /// `vsocks`: the devices' ids.
    pub vsocks: Vec<String>,
    /// `smartcard = yes`.
    pub smartcard: Option<SmartcardSpec>,
    /// `option_roms`.
    pub option_roms: Vec<String>,
}

impl PeripheralsSpec {
    /// Reads the family through the VM's reader.
    pub fn read(r: &mut Reader<'_, '_>) -> PeripheralsSpec {
        let mut inputs = Vec::new();
        for name in r.objects("inputs") {
            let mut i = r.child("input", name);
            let kind = match i.require("input_dev_type") {
                None => None,
                Some("mouse") => Some(InputKind::Mouse),
                Some("keyboard") => Some(InputKind::Keyboard),
                Some("tablet") => Some(InputKind::Tablet),
                Some(_) => {
                    let expected = "mouse, keyboard or tablet".into();
                    i.problem("input_dev_type", ProblemKind::Invalid { expected });
                    None
                }
            };
            let on_virtio = match i.require("input_dev_bus_type") {
                None => false,
                Some("virtio") => true,
                Some(_) => {
                    let expected = "virtio (avocado-vt builds input devices on the virtio bus \
                                    only; a USB mouse, keyboard or tablet is a `usb_devices` \
                                    entry with `usbdev_type = usb-mouse`, `usb-kbd` or \
                                    `usb-tablet`)"
                        .into();
                    i.problem("input_dev_bus_type", ProblemKind::Invalid { expected });
                    false
                }
            };
            if let (Some(kind), true) = (kind, on_virtio) {
                inputs.push(InputSpec {
                    name: name.to_string(),
                    kind,
                });
            }
        }
        let sound = r.string("soundcards").map(|text| {
            let all = text == "all";
            let cards = if all {
                Vec::new()
            } else {
                text.split(',')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(|c| {
                        if c.contains("hda") {
                            SoundCard::IntelHda
                        } else if c == "ac97" || c == "es1370" {
                            SoundCard::Device(c.to_ascii_uppercase())
                        } else {
                            SoundCard::Device(c.to_string())
                        }
                    })
                    .collect()
            };
            SoundSpec { text, all, cards }
        });
        let vsocks = r
            .objects("vsocks")
            .into_iter()
            .map(str::to_string)
            .collect();
        let smartcard = if r.bool("smartcard", false) {
            let backend = r.require("smartcard_chardev").map(str::to_string);
            let id = r.require("smartcard_id").map(str::to_string);
            backend
                .zip(id)
                .map(|(backend, id)| SmartcardSpec { backend, id })
        } else {
            None
        };
        let option_roms = r
            .str("option_roms")
            .map(|s| s.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default();
        PeripheralsSpec {
            inputs,
            sound,
            vsocks,
            smartcard,
            option_roms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::params;
    use crate::VmSpec;

    fn read(pairs: &[(&str, &str)]) -> Result<PeripheralsSpec, Vec<String>> {
        VmSpec::new(&params(pairs), "vm1")
            .map(|s| s.peripherals)
            .map_err(|e| e.problems().iter().map(|p| p.key.clone()).collect())
    }

    #[test]
    fn inputs_are_virtio_only_as_in_avocado() {
        let p = read(&[
            ("inputs", "m k"),
            ("input_dev_bus_type", "virtio"),
            ("input_dev_type_m", "mouse"),
            ("input_dev_type_k", "keyboard"),
        ])
        .unwrap_or_else(|e| panic!("{e:?}"));
        let kinds: Vec<InputKind> = p.inputs.iter().map(|i| i.kind).collect();
        assert_eq!(kinds, [InputKind::Mouse, InputKind::Keyboard]);
        let usb = read(&[
            ("inputs", "m"),
            ("input_dev_bus_type", "usb"),
            ("input_dev_type", "mouse"),
        ]);
        assert_eq!(usb.err(), Some(vec!["input_dev_bus_type".to_string()]));
        let bad = read(&[("inputs", "m"), ("input_dev_bus_type", "virtio")]);
        assert_eq!(bad.err(), Some(vec!["input_dev_type".to_string()]));
    }

    #[test]
    fn sound_card_names_map_as_avocados() {
        let p = read(&[("soundcards", "ich9-intel-hda, ac97,sb16")])
            .unwrap_or_else(|e| panic!("{e:?}"));
        let sound = p.sound.unwrap_or_else(|| panic!("no sound"));
        assert!(!sound.all);
        assert_eq!(
            sound.cards,
            [
                SoundCard::IntelHda,
                SoundCard::Device("AC97".into()),
                SoundCard::Device("sb16".into())
            ]
        );
        let all = read(&[("soundcards", "all")]).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(all.sound.is_some_and(|s| s.all && s.cards.is_empty()));
    }

    #[test]
    fn a_smartcard_needs_its_chardev() {
        let err = read(&[("smartcard", "yes"), ("smartcard_chardev", "spicevmc")]);
        assert_eq!(err.err(), Some(vec!["smartcard_id".to_string()]));
        let ok = read(&[
            ("smartcard", "yes"),
            ("smartcard_chardev", "spicevmc"),
            ("smartcard_id", "sc0"),
            ("option_roms", "/a.rom  b.rom"),
            ("vsocks", "v0 v1"),
        ])
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(ok.smartcard.map(|s| s.id).as_deref(), Some("sc0"));
        assert_eq!(ok.option_roms, ["/a.rom", "b.rom"]);
        assert_eq!(ok.vsocks, ["v0", "v1"]);
    }
}
