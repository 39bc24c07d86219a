//! [`Greeting`]: QEMU's QMP banner, read once at connect; and [`excerpt`],
//! the short form of a line of QEMU's output that messages quote.

use serde_json::Value;

/// QEMU's QMP greeting.
#[derive(Debug, Clone)]
pub struct Greeting {
    /// QEMU's version, typed by the `qapi` crate.
    pub version: qapi::qmp::VersionInfo,
    /// Capabilities QEMU offered, e.g. `["oob"]`.
    pub capabilities: Vec<String>,
}

impl Greeting {
    pub(super) fn parse(line: &[u8]) -> Result<Self, String> {
        #[derive(serde::Deserialize)]
        struct Wire {
            #[serde(rename = "QMP")]
            qmp: Inner,
        }
        #[derive(serde::Deserialize)]
        struct Inner {
            version: qapi::qmp::VersionInfo,
            // Parsed as plain strings: qapi's `QmpCapability` is an untagged
            // enum whose `OutOfBand` unit variant never matches `"oob"`.
            #[serde(default)]
            capabilities: Vec<Value>,
        }
        let wire: Wire = serde_json::from_slice(line)
            .map_err(|e| format!("greeting is not a QMP banner ({e}): {:?}", excerpt(line)))?;
        Ok(Self {
            version: wire.qmp.version,
            capabilities: wire
                .qmp
                .capabilities
                .into_iter()
                .map(|c| match c {
                    Value::String(s) => s,
                    other => other.to_string(),
                })
                .collect(),
        })
    }

    /// `(major, minor, micro)`.
    pub fn version_triple(&self) -> (i64, i64, i64) {
        let q = &self.version.qemu;
        (q.major, q.minor, q.micro)
    }
}

pub(crate) fn excerpt(line: &[u8]) -> String {
    const MAX: usize = 120;
    let s = String::from_utf8_lossy(&line[..line.len().min(MAX)]).into_owned();
    if line.len() > MAX {
        s + "…"
    } else {
        s
    }
}
