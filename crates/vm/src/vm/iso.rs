//! CD-ROM ISOs checked before a start: present, and matching the checksum the spec names.

use super::*;

/// Verifies each CD-ROM ISO exists and, when the spec names a checksum (`md5sum_1m`,
/// `md5sum`, `sha1sum`), matches it.
pub(super) fn check_isos(vm: &str, spec: &VmSpec, root: &Path) -> Result<(), Error> {
    for cd in &spec.cdroms {
        let path = root.join(&cd.iso);
        let bad = |problem: String| Error::Iso {
            vm: vm.into(),
            path: path.clone(),
            problem,
        };
        if !path.exists() {
            return Err(bad("not found".into()));
        }
        let Some(sum) = &cd.checksum else { continue };
        let actual = hash_file(sum.algo, &path)
            .map_err(|e| bad(format!("computing its {}: {e}", sum.algo.key())))?;
        if !actual.eq_ignore_ascii_case(&sum.expected) {
            return Err(bad(format!(
                "{} is {actual}, expected {}",
                sum.algo.key(),
                sum.expected
            )));
        }
    }
    Ok(())
}

/// The hex digest of `path` (of its first MiB for [`ChecksumAlgo::Md5FirstMiB`]), streamed.
fn hash_file(algo: ChecksumAlgo, path: &Path) -> std::io::Result<String> {
    use md5::Digest;
    use std::io::Read;
    fn stream<D: Digest>(mut r: impl Read) -> std::io::Result<String> {
        let mut d = D::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match r.read(&mut buf)? {
                0 => break,
                n => d.update(&buf[..n]),
            }
        }
        Ok(d.finalize().iter().map(|b| format!("{b:02x}")).collect())
    }
    let file = File::open(path)?;
    match algo {
        ChecksumAlgo::Md5FirstMiB => stream::<md5::Md5>(file.take(1 << 20)),
        ChecksumAlgo::Md5 => stream::<md5::Md5>(file),
        ChecksumAlgo::Sha1 => stream::<sha1::Sha1>(file),
    }
}
