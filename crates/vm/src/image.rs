//! Disk images through the real `qemu-img`.
//!
//! [`Image`] is an image as `spec` reads it ([`ImageSpec`]: `image_name` + `image_format` →
//! the file, `image_size`…); its operations run `qemu-img` as an argv and fail with its stderr.
//! Which images are created or removed around a test is `spec::Processing`'s to say.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use params::Params;
use spec::{HostTools, ImageSpec};

use crate::error::ImageError;
use qemu_cmd::render_argv;

/// An image file as the params describe it.
#[derive(Debug, Clone)]
pub struct Image {
    /// The image's name in `images`.
    pub name: String,
    /// `image_name` + `.` + `image_format` (raw images keep the bare name), under the root dir.
    pub path: PathBuf,
    /// `image_format` (default `qcow2`).
    pub format: String,
    /// `image_size` (default `10G`), as `qemu-img` reads it.
    pub size: String,
    /// `image_secret`: a luks image's passphrase.
    secret: Option<String>,
    /// The backing image (path and format) when `image_chain` puts one before this image.
    pub backing: Option<(PathBuf, String)>,
    /// Whether `image_size` was given (an overlay without it takes its backing image's size).
    size_set: bool,
    qemu_img: PathBuf,
}

fn run(argv: &[OsString]) -> Result<String, ImageError> {
    let (program, args) = argv.split_first().ok_or_else(|| ImageError::Spawn {
        program: String::new(),
        source: std::io::Error::other("empty argv"),
    })?;
    // `qemu-img`: this module owns it.
    #[allow(clippy::disallowed_methods)]
    let out = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|source| ImageError::Spawn {
            program: program.to_string_lossy().into_owned(),
            source,
        })?;
    if !out.status.success() {
        return Err(ImageError::Failed {
            command: render_argv(argv),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Image {
    /// The image `spec` describes, relative paths under `root`, handled with `qemu_img`.
    pub fn new(spec: &ImageSpec, root: &Path, qemu_img: impl Into<PathBuf>) -> Image {
        Image {
            name: spec.name.clone(),
            path: root.join(spec.file_name()),
            format: spec.format.to_string(),
            size: spec.size.to_string(),
            secret: spec.secret.clone(),
            backing: None,
            size_set: spec.size_set,
            qemu_img: qemu_img.into(),
        }
    }

    /// Image `name` of VM `vm` of a variant's `params`, as `spec` reads it ([`ImageSpec::of`],
    /// [`HostTools`]), relative paths under `root`.
    ///
    /// # Errors
    /// [`ImageError::Params`] with every bad image key (`image_name` missing, an unknown
    /// `image_format`, a `image_raw_device` that is not a boolean…).
    pub fn from_params(
        params: &Params,
        vm: &str,
        name: &str,
        root: &Path,
    ) -> Result<Image, ImageError> {
        let wrap = |source| ImageError::Params {
            image: name.to_owned(),
            source: Box::new(source),
        };
        let spec = ImageSpec::of(params, vm, name).map_err(wrap)?;
        if let Some(key) = spec.backend.key() {
            return Err(ImageError::Backend {
                image: name.to_owned(),
                key,
                backend: spec.backend.as_str(),
            });
        }
        let tools = HostTools::of(params, vm).map_err(wrap)?;
        let mut image = Image::new(&spec, root, tools.qemu_img);
        if let Some(base) = &spec.chain_base {
            let base_spec =
                ImageSpec::of(params, vm, base).map_err(|source| ImageError::Params {
                    image: base.clone(),
                    source: Box::new(source),
                })?;
            image.backing = Some((
                root.join(base_spec.file_name()),
                base_spec.format.to_string(),
            ));
        }
        Ok(image)
    }

    fn argv(&self, args: &[&str]) -> Vec<OsString> {
        std::iter::once(OsString::from(&self.qemu_img))
            .chain(args.iter().map(OsString::from))
            .collect()
    }

    /// `qemu-img create -f FORMAT PATH SIZE`; an overlay of its backing image (`image_chain`)
    /// with `-b BASE -F FORMAT`, `SIZE` only when `image_size` was given.
    ///
    /// # Errors
    /// [`ImageError::Failed`] with `qemu-img`'s stderr.
    /// A luks image gets its passphrase as a secret object (`--object secret,…` with
    /// `-o key-secret=…`), as avocado-vt creates it.
    pub fn create(&self) -> Result<(), ImageError> {
        let mut argv = self.argv(&["create", "-f", &self.format]);
        if let Some((base, format)) = &self.backing {
            argv.push("-b".into());
            argv.push(base.clone().into_os_string());
            argv.push("-F".into());
            argv.push(format.into());
        }
        if let (Some(secret), "luks") = (&self.secret, self.format.as_str()) {
            argv.push("--object".into());
            argv.push(format!("secret,id=sec0,data={}", qemu_cmd::escape_opt_value(secret)).into());
            argv.push("-o".into());
            argv.push("key-secret=sec0".into());
        }
        argv.push(self.path.clone().into_os_string());
        if self.backing.is_none() || self.size_set {
            argv.push(self.size.clone().into());
        }
        // A luks header's PBKDF iteration count comes from a CPU-time benchmark, which QEMU
        // gives up on when a loaded host yields no measurable CPU time ("Unable to get accurate
        // CPU usage"): that one failure is retried, a bounded number of times.
        let mut tries = 0;
        loop {
            match run(&argv) {
                Err(ImageError::Failed { stderr, .. })
                    if tries < 4 && stderr.contains("Unable to get accurate CPU usage") =>
                {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(100 << tries));
                }
                r => return r.map(|_| ()),
            }
        }
    }

    /// `qemu-img check` (qcow2 and other formats that support it); a report of problems is
    /// [`ImageError::Corrupt`].
    ///
    /// # Errors
    /// [`ImageError::Corrupt`], [`ImageError::Failed`].
    pub fn check(&self) -> Result<(), ImageError> {
        let mut argv = self.argv(&["check", "-f", &self.format]);
        argv.push(self.path.clone().into_os_string());
        match run(&argv) {
            Ok(_) => Ok(()),
            Err(ImageError::Failed { stderr, status, .. })
                if status.contains("exit status: 2") || status.contains("exit status: 3") =>
            {
                Err(ImageError::Corrupt {
                    path: self.path.clone(),
                    report: stderr,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// `qemu-img convert -f FORMAT -O TO PATH DEST`; returns the new image.
    ///
    /// # Errors
    /// [`ImageError::Failed`].
    pub fn convert(&self, to_format: &str, dest: &Path) -> Result<Image, ImageError> {
        let mut argv = self.argv(&["convert", "-f", &self.format, "-O", to_format]);
        argv.push(self.path.clone().into_os_string());
        argv.push(dest.as_os_str().to_owned());
        run(&argv)?;
        Ok(Image {
            name: format!("{}-{to_format}", self.name),
            path: dest.to_path_buf(),
            format: to_format.to_owned(),
            size: self.size.clone(),
            secret: None,
            // convert flattens the chain: the copy stands alone.
            backing: None,
            size_set: true,
            qemu_img: self.qemu_img.clone(),
        })
    }

    /// `qemu-img info --output=json`.
    ///
    /// # Errors
    /// [`ImageError::Failed`].
    pub fn info(&self) -> Result<serde_json::Value, ImageError> {
        let mut argv = self.argv(&["info", "--output=json", "-f", &self.format]);
        argv.push(self.path.clone().into_os_string());
        let text = run(&argv)?;
        serde_json::from_str(&text).map_err(|e| ImageError::Failed {
            command: render_argv(&argv),
            status: "ok".into(),
            stderr: format!("unparsable JSON: {e}"),
        })
    }

    /// `qemu-img snapshot -c NAME` (internal snapshot; qcow2).
    ///
    /// # Errors
    /// [`ImageError::Failed`].
    pub fn snapshot_create(&self, snapshot: &str) -> Result<(), ImageError> {
        let mut argv = self.argv(&["snapshot", "-c", snapshot]);
        argv.push(self.path.clone().into_os_string());
        run(&argv).map(|_| ())
    }

    /// The names of the internal snapshots (`qemu-img snapshot -l`).
    ///
    /// # Errors
    /// [`ImageError::Failed`].
    pub fn snapshot_list(&self) -> Result<Vec<String>, ImageError> {
        let info = self.info()?;
        Ok(info
            .get("snapshots")
            .and_then(|s| s.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.get("name").and_then(|n| n.as_str()).map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Removes the image file (a missing file is fine).
    ///
    /// # Errors
    /// [`ImageError::Remove`].
    pub fn remove(&self) -> Result<(), ImageError> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(ImageError::Remove {
                path: self.path.clone(),
                source,
            }),
        }
    }
}
