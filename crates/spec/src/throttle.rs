//! The throttle groups family: `throttle_groups` (`-object throttle-group`, its limits from
//! `throttle_group_parameters`) and the disks throttled by one (`image_throttle_group`: a
//! `throttle` filter node on top of the image's `-blockdev` graph), read as avocado-vt reads
//! them (`qcontainer.throttle_group_define_by_params`, `images_define_by_params`), with the
//! keys declared here.

use crate::keys::KeyDoc;
use crate::problem::ProblemKind;
use crate::read::Reader;

/// VM-level keys of this family.
pub const THROTTLE_VM_KEYS: &[KeyDoc] = &[KeyDoc::optional(
    "throttle_groups",
    "throttle groups (`-object throttle-group`; objects with `throttle_group_parameters`)",
)];

/// Keys of a throttle group (`throttle_groups` objects).
pub const THROTTLE_GROUP_KEYS: &[KeyDoc] = &[KeyDoc::with_default(
    "throttle_group_parameters",
    "{}",
    "the group's limits, a JSON object (`{\"iops-total\": 40}`), each given as QEMU's \
     `x-LIMIT=` property",
)];

/// Keys of an image that belong to this family.
pub const THROTTLE_IMAGE_KEYS: &[KeyDoc] = &[KeyDoc::optional(
    "image_throttle_group",
    "the throttle group (a `throttle_groups` name) limiting the disk: a `throttle` node on \
     top of its graph takes the `drive_NAME` node name",
)];

/// One throttle group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottleGroupSpec {
    /// Object name: the group's id.
    pub name: String,
    /// `throttle_group_parameters`: the limits, in the JSON's order (without the `x-`).
    pub limits: Vec<(String, String)>,
}

/// The family.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThrottleSpec {
    /// `throttle_groups`.
    pub groups: Vec<ThrottleGroupSpec>,
    /// `image_throttle_group` of each image that has one: (image, group).
    pub images: Vec<(String, String)>,
}

impl ThrottleSpec {
    /// Reads the family through the VM's reader; a disk's group must be one of
    /// `throttle_groups` (QEMU would refuse the node otherwise).
    pub fn read(r: &mut Reader<'_, '_>) -> ThrottleSpec {
        let mut groups = Vec::new();
        for name in r.objects("throttle_groups") {
            let mut g = r.child("throttle_group", name);
            let limits = crate::opts::json_props_of(&mut g, "throttle_group_parameters");
            groups.push(ThrottleGroupSpec {
                name: name.to_string(),
                limits,
            });
        }
        let mut images = Vec::new();
        for name in r.objects("images") {
            let mut i = r.child("image", name);
            let Some(group) = i.str("image_throttle_group") else {
                continue;
            };
            if groups.iter().any(|g| g.name == group) {
                images.push((name.to_string(), group.to_string()));
            } else {
                i.problem(
                    "image_throttle_group",
                    ProblemKind::Invalid {
                        expected: "a group of `throttle_groups`".into(),
                    },
                );
            }
        }
        ThrottleSpec { groups, images }
    }

    /// The group throttling image `name`.
    pub fn group_of(&self, image: &str) -> Option<&str> {
        self.images
            .iter()
            .find(|(i, _)| i == image)
            .map(|(_, g)| g.as_str())
    }
}

#[cfg(test)]
mod tests {
    use crate::test_support::params;
    use crate::VmSpec;

    #[test]
    fn groups_and_the_disks_they_throttle() {
        let p = params(&[
            ("throttle_groups", "group1 group2"),
            ("throttle_group_parameters_group1", r#"{"iops-total": 40}"#),
            ("images", "image1 stg"),
            ("image_name", "disk"),
            ("image_throttle_group_image1", "group1"),
        ]);
        let spec = VmSpec::new(&p, "vm1").unwrap_or_else(|e| panic!("{e}"));
        let t = &spec.throttle;
        assert_eq!(t.groups.len(), 2);
        assert_eq!(t.groups[0].limits, [("iops-total".into(), "40".into())]);
        assert!(t.groups[1].limits.is_empty());
        assert_eq!(t.group_of("image1"), Some("group1"));
        assert_eq!(t.group_of("stg"), None);
        let p = params(&[
            ("images", "image1"),
            ("image_name", "disk"),
            ("image_throttle_group", "nope"),
        ]);
        let err = VmSpec::new(&p, "vm1").err();
        assert_eq!(
            err.map(|e| e.problems()[0].key.clone()).as_deref(),
            Some("image_throttle_group")
        );
    }
}
