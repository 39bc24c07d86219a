//! [`WorkerPaths`]: an [`ArgvSource`] wrapper that places a variant's relative file names.
//!
//! A config names the guest's files relatively (`kernel = vmlinux`, `image_name_disk1 = disk1`)
//! so it works on any machine; where they are is the run's business. Before the inner source
//! (the `qemu-cmd` builder) sees the layout, relative `kernel`/`initrd` become absolute under
//! the guest directory and relative `image_name`s absolute under the worker's image directory,
//! so `--jobs N` workers never share an image file. Absolute values are left alone.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use params::Params;
use vm::{ArgvSource, BoxError, RunLayout};

/// Resolves relative guest files and images, then asks `inner` for the argv.
#[derive(Clone)]
pub struct WorkerPaths {
    inner: Arc<dyn ArgvSource>,
    guest_dir: PathBuf,
    image_dir: PathBuf,
}

impl std::fmt::Debug for WorkerPaths {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerPaths")
            .field("guest_dir", &self.guest_dir)
            .field("image_dir", &self.image_dir)
            .finish_non_exhaustive()
    }
}

fn under(dir: &Path, value: &str) -> String {
    if Path::new(value).is_absolute() {
        value.to_owned()
    } else {
        dir.join(value).to_string_lossy().into_owned()
    }
}

impl WorkerPaths {
    /// `inner` with relative guest files under `guest_dir` and images under `image_dir`.
    pub fn new(
        inner: Arc<dyn ArgvSource>,
        guest_dir: impl Into<PathBuf>,
        image_dir: impl Into<PathBuf>,
    ) -> Self {
        WorkerPaths {
            inner,
            guest_dir: guest_dir.into(),
            image_dir: image_dir.into(),
        }
    }

    /// Where relatively named images live.
    pub fn image_dir(&self) -> &Path {
        &self.image_dir
    }

    /// `params` (a VM's object view) with the relative paths placed.
    pub fn place(&self, params: &Params) -> Params {
        let mut p = params.clone();
        for key in ["kernel", "initrd"] {
            if let Some(v) = p.get(key).filter(|v| !v.is_empty()) {
                let placed = under(&self.guest_dir, v);
                p.insert(key, placed);
            }
        }
        let images: Vec<String> = p
            .objects("images")
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        for image in images {
            let ip = p.object_params(&image);
            // As `spec` reads it (`yes`/`on`/`true`); a bad value fails the argv build of the
            // same params, so nothing runs with a misplaced image.
            let raw = ::spec::ImageView::of(&ip, "", &image).is_ok_and(|v| v.raw_device);
            if let Some(name) = ip.get("image_name").filter(|v| !v.is_empty() && !raw) {
                let placed = under(&self.image_dir, name);
                p.insert(format!("image_name_{image}"), placed);
            }
        }
        p
    }
}

impl ArgvSource for WorkerPaths {
    fn argv(&self, layout: &RunLayout) -> Result<Vec<OsString>, BoxError> {
        let mut placed = layout.clone();
        placed.params = self.place(&layout.params);
        self.inner.argv(&placed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_files_are_placed_absolute_ones_kept() {
        let src: Arc<dyn ArgvSource> =
            Arc::new(|_: &RunLayout| -> Result<Vec<OsString>, BoxError> { Ok(Vec::new()) });
        let w = WorkerPaths::new(src, "/g", "/w/images");
        let mut p = Params::new();
        for (k, v) in [
            ("kernel", "vmlinux"),
            ("initrd", "/abs/initrd.gz"),
            ("images", "disk1 disk2 dev"),
            ("image_name", "disk"),
            ("image_name_disk2", "/abs/d2"),
            ("image_name_dev", "/dev/sdz"),
            ("image_raw_device_dev", "yes"),
        ] {
            p.insert(k, v);
        }
        let q = w.place(&p);
        assert_eq!(q.get("kernel"), Some("/g/vmlinux"));
        assert_eq!(q.get("initrd"), Some("/abs/initrd.gz"));
        assert_eq!(
            q.object_params("disk1").get("image_name"),
            Some("/w/images/disk")
        );
        assert_eq!(q.object_params("disk2").get("image_name"), Some("/abs/d2"));
        assert_eq!(q.object_params("dev").get("image_name"), Some("/dev/sdz"));
    }
}
