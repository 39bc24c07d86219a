//! [`IommuSpec`]: avocado-vt's guest IOMMUs and the properties it sets on every virtio device,
//! read with its keys, declared here.
//!
//! * `intel_iommu = yes`: `-device intel-iommu` with the `iommu_*` properties (`intremap` and
//!   `device-iotlb` default to `on`, as avocado-vt gives them; the others only when set).
//! * `virtio_iommu = yes`: `-device virtio-iommu-pci` with `virtio_iommu_extra_params`, plugged
//!   into the root bus directly (avocado-vt's `pcie_direct_plug`).
//! * `virtio_dev_disable_legacy`, `virtio_dev_disable_modern`, `virtio_dev_iommu_platform`,
//!   `virtio_dev_ats`, `virtio_dev_aer`: set on every device whose driver `virtio_dev_filter` (a
//!   Python regular expression, searched as `re.search` does) finds, when the device has the
//!   property and does not set it itself.
//!
//! Values are QEMU's (`on`, `off`, `auto`, numbers) and passed as written; QEMU checks them.

use crate::keys::KeyDoc;
use crate::problem::ProblemKind;
use crate::read::Reader;
use crate::vm::ExtraOpts;

/// avocado-vt's default `virtio_dev_filter`: every `virtio-*` and `vhost-*` driver.
pub const DEFAULT_VIRTIO_DEV_FILTER: &str = "(?:^virtio-)|(?:^vhost-)";

/// VM-level keys of this family.
pub const IOMMU_KEYS: &[KeyDoc] = &[
    KeyDoc::with_default(
        "intel_iommu",
        "no",
        "yes: `-device intel-iommu` (q35 only), before any virtio device",
    ),
    KeyDoc::with_default(
        "iommu_intremap",
        "on",
        "`intremap=` of intel-iommu (on, off, auto); `on` with KVM needs \
         `kernel-irqchip=split` (or `off`) in `machine_type_extra_params`",
    ),
    KeyDoc::with_default("iommu_device_iotlb", "on", "`device-iotlb=` of intel-iommu"),
    KeyDoc::optional("iommu_caching_mode", "`caching-mode=` of intel-iommu"),
    KeyDoc::optional("iommu_eim", "`eim=` of intel-iommu (on, off, auto)"),
    KeyDoc::optional("iommu_x_buggy_eim", "`x-buggy-eim=` of intel-iommu"),
    KeyDoc::optional("iommu_version", "`version=` of intel-iommu"),
    KeyDoc::optional("iommu_x_scalable_mode", "`x-scalable-mode=` of intel-iommu"),
    KeyDoc::optional("iommu_dma_drain", "`dma-drain=` of intel-iommu"),
    KeyDoc::optional("iommu_pt", "`pt=` of intel-iommu"),
    KeyDoc::optional("iommu_aw_bits", "`aw-bits=` of intel-iommu (39 or 48)"),
    KeyDoc::with_default(
        "virtio_iommu",
        "no",
        "yes: `-device virtio-iommu-pci` on the root bus, before any virtio device",
    ),
    KeyDoc::optional(
        "virtio_iommu_extra_params",
        "items added to virtio-iommu-pci (`,boot-bypass=off`)",
    ),
    KeyDoc::with_default(
        "virtio_dev_filter",
        DEFAULT_VIRTIO_DEV_FILTER,
        "a Python regular expression: the `virtio_dev_*` properties go to every device whose \
         driver it finds (`re.search`)",
    ),
    KeyDoc::optional(
        "virtio_dev_disable_legacy",
        "`disable-legacy=` of every matching device that has it and does not set it",
    ),
    KeyDoc::optional(
        "virtio_dev_disable_modern",
        "`disable-modern=` of every matching device that has it and does not set it",
    ),
    KeyDoc::optional(
        "virtio_dev_iommu_platform",
        "`iommu_platform=` of every matching device that has it and does not set it",
    ),
    KeyDoc::optional(
        "virtio_dev_ats",
        "`ats=` of every matching device that has it and does not set it",
    ),
    KeyDoc::optional(
        "virtio_dev_aer",
        "`aer=` of every matching device that has it and does not set it",
    ),
];

/// intel-iommu's properties and the keys that set them, in avocado-vt's order.
const INTEL_PROPS: &[(&str, &str)] = &[
    ("iommu_intremap", "intremap"),
    ("iommu_device_iotlb", "device-iotlb"),
    ("iommu_caching_mode", "caching-mode"),
    ("iommu_eim", "eim"),
    ("iommu_x_buggy_eim", "x-buggy-eim"),
    ("iommu_version", "version"),
    ("iommu_x_scalable_mode", "x-scalable-mode"),
    ("iommu_dma_drain", "dma-drain"),
    ("iommu_pt", "pt"),
    ("iommu_aw_bits", "aw-bits"),
];

/// The virtio device properties and the keys that set them, in avocado-vt's order.
const VIRTIO_PROPS: &[(&str, &str)] = &[
    ("virtio_dev_disable_legacy", "disable-legacy"),
    ("virtio_dev_disable_modern", "disable-modern"),
    ("virtio_dev_iommu_platform", "iommu_platform"),
    ("virtio_dev_ats", "ats"),
    ("virtio_dev_aer", "aer"),
];

/// `intel_iommu = yes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntelIommu {
    /// The device's properties, in avocado-vt's order; each with the key that set it (or whose
    /// default it is).
    pub props: Vec<Prop>,
}

impl IntelIommu {
    /// Whether interrupt remapping is asked for outright (`intremap=on`, the default), which
    /// QEMU refuses next to KVM's in-kernel irqchip.
    pub fn intremap_on(&self) -> bool {
        self.props
            .iter()
            .any(|p| p.qemu == "intremap" && matches!(p.value.as_str(), "on" | "yes" | "true"))
    }
}

/// One device property and the key it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prop {
    /// The key (`iommu_pt`).
    pub key: &'static str,
    /// QEMU's property (`pt`).
    pub qemu: &'static str,
    /// Its value.
    pub value: String,
}

/// `virtio_dev_filter`: a Python regular expression, compiled (look-around included) by
/// `fancy-regex`. Two filters are equal when their patterns are.
#[derive(Clone)]
pub struct VirtioDevFilter {
    pattern: String,
    re: std::sync::Arc<fancy_regex::Regex>,
}

impl VirtioDevFilter {
    /// Compiles `pattern`; the error says why it is not a regular expression.
    ///
    /// # Errors
    /// The compiler's message.
    pub fn new(pattern: &str) -> Result<VirtioDevFilter, String> {
        crate::regex_cache::fancy(pattern).map(|re| VirtioDevFilter {
            pattern: pattern.to_string(),
            re,
        })
    }

    /// Whether the expression is found in `driver` (`re.search`); a pattern that exhausts the
    /// backtracking limit finds nothing.
    pub fn finds(&self, driver: &str) -> bool {
        self.re.is_match(driver).unwrap_or(false)
    }

    /// The pattern as written.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }
}

impl std::fmt::Debug for VirtioDevFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("VirtioDevFilter")
            .field(&self.pattern)
            .finish()
    }
}

impl PartialEq for VirtioDevFilter {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern
    }
}

impl Eq for VirtioDevFilter {}

/// The `virtio_dev_*` properties and the devices they go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtioGlobals {
    /// `virtio_dev_filter`.
    pub filter: VirtioDevFilter,
    /// The properties set, in avocado-vt's order (empty: nothing to do).
    pub props: Vec<Prop>,
}

/// The family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IommuSpec {
    /// `intel_iommu = yes`.
    pub intel: Option<IntelIommu>,
    /// `virtio_iommu = yes`: `virtio_iommu_extra_params`.
    pub virtio: Option<ExtraOpts>,
    /// `virtio_dev_*`; `None` when none is set.
    pub virtio_globals: Option<VirtioGlobals>,
}

impl IommuSpec {
    /// Reads the family through the VM's reader.
    pub fn read(r: &mut Reader<'_, '_>) -> IommuSpec {
        let intel = r.bool("intel_iommu", false).then(|| IntelIommu {
            props: INTEL_PROPS
                .iter()
                .filter_map(|&(key, qemu)| {
                    let default = match key {
                        "iommu_intremap" | "iommu_device_iotlb" => Some("on"),
                        _ => None,
                    };
                    let value = r.string(key).or(default.map(str::to_string))?;
                    Some(Prop { key, qemu, value })
                })
                .collect(),
        });
        let virtio = r
            .bool("virtio_iommu", false)
            .then(|| r.opt_list("virtio_iommu_extra_params", "boot-bypass=off"));
        let props: Vec<Prop> = VIRTIO_PROPS
            .iter()
            .filter_map(|&(key, qemu)| r.string(key).map(|value| Prop { key, qemu, value }))
            .collect();
        let pattern = r
            .string("virtio_dev_filter")
            .unwrap_or_else(|| DEFAULT_VIRTIO_DEV_FILTER.to_string());
        let filter = match VirtioDevFilter::new(&pattern) {
            Ok(f) => Some(f),
            Err(e) => {
                r.problem(
                    "virtio_dev_filter",
                    ProblemKind::Invalid {
                        expected: format!("a regular expression ({e})"),
                    },
                );
                None
            }
        };
        let virtio_globals = match filter {
            Some(filter) if !props.is_empty() => Some(VirtioGlobals { filter, props }),
            _ => None,
        };
        IommuSpec {
            intel,
            virtio,
            virtio_globals,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::params;
    use crate::VmSpec;

    fn spec(pairs: &[(&str, &str)]) -> IommuSpec {
        VmSpec::new(&params(pairs), "vm1")
            .unwrap_or_else(|e| panic!("{e}"))
            .iommu
    }

    #[test]
    fn intel_iommu_defaults_and_order_are_avocados() {
        let s = spec(&[
            ("intel_iommu", "yes"),
            ("iommu_aw_bits", "48"),
            ("iommu_pt", "on"),
        ]);
        let props: Vec<(&str, &str)> = s
            .intel
            .as_ref()
            .map(|i| i.props.iter().map(|p| (p.qemu, p.value.as_str())).collect())
            .unwrap_or_default();
        assert_eq!(
            props,
            [
                ("intremap", "on"),
                ("device-iotlb", "on"),
                ("pt", "on"),
                ("aw-bits", "48")
            ]
        );
        assert!(s.intel.is_some_and(|i| i.intremap_on()));
        let off = spec(&[("intel_iommu", "yes"), ("iommu_intremap", "off")]);
        assert!(!off.intel.is_some_and(|i| i.intremap_on()));
        assert_eq!(spec(&[("iommu_pt", "on")]).intel, None);
    }

    #[test]
    fn the_filter_is_pythons_with_look_ahead() {
        let f = VirtioDevFilter::new("^(?:(?:virtio-)|(?:vhost-))(?!(?:balloon)|(?:user))")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(f.finds("virtio-net-pci"));
        assert!(f.finds("vhost-vsock-pci"));
        assert!(!f.finds("virtio-balloon-pci"));
        assert!(!f.finds("vhost-user-fs-pci"));
        assert!(!f.finds("e1000"));
        let default =
            VirtioDevFilter::new(DEFAULT_VIRTIO_DEV_FILTER).unwrap_or_else(|e| panic!("{e}"));
        assert!(default.finds("virtio-blk-pci") && !default.finds("pcie-root-port"));
        assert_eq!(
            spec(&[("virtio_dev_filter", "x")]).virtio_globals,
            None,
            "no property set"
        );
        let s = spec(&[
            ("virtio_dev_ats", "on"),
            ("virtio_dev_disable_legacy", "on"),
        ]);
        let props: Vec<&str> = s
            .virtio_globals
            .map(|g| g.props.iter().map(|p| p.qemu).collect())
            .unwrap_or_default();
        assert_eq!(props, ["disable-legacy", "ats"], "avocado-vt's order");
        let err = VmSpec::new(&params(&[("virtio_dev_filter", "(")]), "vm1").err();
        assert_eq!(
            err.map(|e| e.problems()[0].key.clone()).as_deref(),
            Some("virtio_dev_filter")
        );
    }
}
