//! Small file-system helpers shared by the result files, the run registry and the state store.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Write `data` to `path` through a temporary file and a rename, so readers never see half a
/// file.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)
}
