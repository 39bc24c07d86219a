//! [`Origins`]: each value a spec read, as the cfg wrote it, and where (`file:line`).
//!
//! A spec is owned and outlives its params; a later layer that finds a value it cannot honour
//! (the command-line builder, for a device this QEMU lacks) still names the value and the cfg
//! line that set it, by asking the spec's origins.

use params::Origin;

/// One value's origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueOrigin {
    /// The object's kind (`vm`, `image`, `nic`…).
    pub kind: &'static str,
    /// The object's name (`vm1`, `image1`…).
    pub name: String,
    /// The key as the object sees it (`drive_format`, not `drive_format_image1`).
    pub key: String,
    /// The value as the cfg wrote it.
    pub value: String,
    /// The statement that set it (unknown for params built in code).
    pub origin: Option<Origin>,
}

/// The origins of the values read into a spec, in the order they were read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origins(Vec<ValueOrigin>);

impl Origins {
    /// Records that `key` of object `kind name` was `value`, set at `origin` (a key read
    /// twice is recorded twice; both records say the same).
    pub fn record(
        &mut self,
        kind: &'static str,
        name: &str,
        key: &str,
        value: &str,
        origin: Option<Origin>,
    ) {
        self.0.push(ValueOrigin {
            kind,
            name: name.to_string(),
            key: key.to_string(),
            value: value.to_string(),
            origin,
        });
    }

    /// The value `key` of object `kind name` had and where it was set, if it was read.
    pub fn get(&self, kind: &str, name: &str, key: &str) -> Option<&ValueOrigin> {
        self.0
            .iter()
            .find(|o| o.kind == kind && o.name == name && o.key == key)
    }

    /// Every recorded origin, in reading order.
    pub fn iter(&self) -> impl Iterator<Item = &ValueOrigin> {
        self.0.iter()
    }

    /// How many values were read.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no value was read.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
