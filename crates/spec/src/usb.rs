//! The USB family: controllers (`usbs`) and devices (`usb_devices`), read as avocado-vt reads
//! them (`qcontainer.usbc_by_params` / `usb_by_params`), with their keys declared here.

use crate::keys::KeyDoc;
use crate::problem::ProblemKind;
use crate::read::Reader;

/// Keys of a USB controller (`usbs` objects: `key_NAME` overrides `key`).
pub const USB_KEYS: &[KeyDoc] = &[
    KeyDoc::required(
        "usb_type",
        "the controller's device model (`ich9-usb-ehci1`, `qemu-xhci`, `nec-usb-xhci`, \
         `piix3-usb-uhci`…); `ich9-usb-ehci1` comes with its three UHCI companions at 1d.0-1d.4",
    ),
    KeyDoc::optional("multifunction", "`multifunction=` of the controller"),
    KeyDoc::optional(
        "masterbus",
        "`masterbus=` (a companion controller's EHCI bus)",
    ),
    KeyDoc::optional(
        "firstport",
        "`firstport=` (a companion's first port on its master)",
    ),
    KeyDoc::optional("freq", "`freq=` of the controller"),
    KeyDoc::with_default(
        "max_ports",
        "6",
        "ports a device can be given on the controller's bus",
    ),
    KeyDoc::optional(
        "pci_addr",
        "a fixed PCI address on the root bus (`1d.7`, `0x5`; unset: the next free slot)",
    ),
];

/// Keys of a USB device (`usb_devices` objects).
pub const USB_DEVICE_KEYS: &[KeyDoc] = &[
    KeyDoc::required(
        "usbdev_type",
        "the device model (`usb-tablet`, `usb-kbd`, `usb-mouse`, `usb-host`, `usb-storage`…)",
    ),
    KeyDoc::optional(
        "usb_controller",
        "the controller kind the device goes on (uhci, ehci, ohci, xhci) when `usbdev_bus` is unset",
    ),
    KeyDoc::optional("usbdev_bus", "the USB bus (`usb1.0`; unset: a bus of `usb_controller`'s kind)"),
    KeyDoc::optional("usbdev_port", "the port (`2`, `1.2` behind a hub; unset: the next free one)"),
    KeyDoc::optional("usbdev_serial", "`serial=` of the device"),
    KeyDoc::optional("usbdev_option_hostbus", "`hostbus=` of a `usb-host` device"),
    KeyDoc::optional("usbdev_option_hostaddr", "`hostaddr=` of a `usb-host` device"),
    KeyDoc::optional("usbdev_option_hostport", "`hostport=` of a `usb-host` device"),
    KeyDoc::optional("usbdev_option_vendorid", "`vendorid=0x…` of a `usb-host` device (hex digits)"),
    KeyDoc::optional("usbdev_option_productid", "`productid=0x…` of a `usb-host` device (hex digits)"),
];

/// One USB controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsbControllerSpec {
    /// Object name: the controller's id, its bus is `NAME.0`.
    pub name: String,
    /// `usb_type`.
    pub model: String,
    /// `multifunction`, `masterbus`, `firstport`, `freq`, in avocado-vt's order.
    pub props: Vec<(&'static str, String)>,
    /// `max_ports`.
    pub max_ports: u32,
    /// `pci_addr`.
    pub pci_addr: Option<String>,
}

/// One USB device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsbDeviceSpec {
    /// Object name: the device's id is `usb-NAME`.
    pub name: String,
    /// `usbdev_type`.
    pub model: String,
    /// `usb_controller`.
    pub controller: Option<String>,
    /// `usbdev_bus`.
    pub bus: Option<String>,
    /// `usbdev_port`.
    pub port: Option<String>,
    /// `usbdev_serial` and the `usb-host` options, in avocado-vt's order.
    pub props: Vec<(&'static str, String)>,
}

/// The VM's USB controllers and devices.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsbSpec {
    /// `usbs`.
    pub controllers: Vec<UsbControllerSpec>,
    /// `usb_devices`.
    pub devices: Vec<UsbDeviceSpec>,
}

impl UsbSpec {
    /// Reads `usbs` and `usb_devices` through the VM's reader.
    pub fn read(r: &mut Reader<'_, '_>) -> UsbSpec {
        let mut controllers = Vec::new();
        for name in r.objects("usbs") {
            let mut c = r.child("usb", name);
            let Some(model) = c.require("usb_type").map(str::to_string) else {
                continue;
            };
            let props = ["multifunction", "masterbus", "firstport", "freq"]
                .into_iter()
                .filter_map(|k| c.string(k).map(|v| (k, v)))
                .collect();
            controllers.push(UsbControllerSpec {
                name: name.to_string(),
                model,
                props,
                max_ports: c.num("max_ports", "a port count").unwrap_or(6),
                pci_addr: c.string("pci_addr"),
            });
        }
        let mut devices = Vec::new();
        for name in r.objects("usb_devices") {
            let mut d = r.child("usb_device", name);
            let Some(model) = d.require("usbdev_type").map(str::to_string) else {
                continue;
            };
            let mut props: Vec<(&'static str, String)> = Vec::new();
            if let Some(s) = d.string("usbdev_serial") {
                props.push(("serial", s));
            }
            if model == "usb-host" {
                for (key, prop) in [
                    ("usbdev_option_hostbus", "hostbus"),
                    ("usbdev_option_hostaddr", "hostaddr"),
                    ("usbdev_option_hostport", "hostport"),
                ] {
                    if let Some(v) = d.string(key) {
                        props.push((prop, v));
                    }
                }
                for (key, prop) in [
                    ("usbdev_option_vendorid", "vendorid"),
                    ("usbdev_option_productid", "productid"),
                ] {
                    match d.str(key) {
                        None => {}
                        Some(v) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_hexdigit()) => {
                            props.push((prop, format!("0x{v}")));
                        }
                        Some(_) => d.problem(
                            key,
                            ProblemKind::Invalid {
                                expected: "hexadecimal digits without 0x (`0627`)".into(),
                            },
                        ),
                    }
                }
            }
            devices.push(UsbDeviceSpec {
                name: name.to_string(),
                model,
                controller: d.string("usb_controller"),
                bus: d.string("usbdev_bus"),
                port: d.string("usbdev_port"),
                props,
            });
        }
        UsbSpec {
            controllers,
            devices,
        }
    }
}
