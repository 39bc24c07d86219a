//! CD-ROM ISOs checked before a start: present, and matching the checksum the spec names.
//!
//! Hashing streams the file on a blocking thread (a DVD image takes seconds, and the runtime's
//! other VMs keep going meanwhile). A file of [`PROGRESS_FROM`] or more reports its progress
//! as `kvmtest::progress` info events (`task`, `done`, `total` in bytes): at the start, at
//! every 5 %, and at the end, for a progress display to show (kvmtest's draws a bar).

use super::*;

/// Files this big or bigger report their hashing progress.
pub const PROGRESS_FROM: u64 = 64 << 20;

/// Verifies each CD-ROM ISO exists and, when the spec names a checksum (`md5sum_1m`,
/// `md5sum`, `sha1sum`), matches it.
pub(super) async fn check_isos(vm: &str, spec: &VmSpec, root: &Path) -> Result<(), Error> {
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
        let algo = sum.algo;
        let task = format!(
            "{vm}: {} of {}",
            algo.key(),
            path.file_name().unwrap_or_default().to_string_lossy()
        );
        let file = path.clone();
        let span = tracing::Span::current();
        let actual = tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            hash_file(algo, &file, &task)
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r)
        .map_err(|e| bad(format!("computing its {}: {e}", algo.key())))?;
        if !actual.eq_ignore_ascii_case(&sum.expected) {
            return Err(bad(format!(
                "{} is {actual}, expected {}",
                algo.key(),
                sum.expected
            )));
        }
    }
    Ok(())
}

/// Progress events of one hashing task, at every 5 % of `total` (when big enough to report).
struct Reporter<'a> {
    task: &'a str,
    total: u64,
    done: u64,
    next: u64,
}

impl<'a> Reporter<'a> {
    fn new(task: &'a str, total: u64) -> Self {
        let r = Reporter {
            task,
            total,
            done: 0,
            next: total / 20,
        };
        r.emit();
        r
    }

    fn add(&mut self, n: usize) {
        self.done += n as u64;
        if self.done >= self.next && self.done < self.total {
            self.emit();
            self.next = self.done + self.total / 20;
        }
    }

    fn emit(&self) {
        if self.total >= PROGRESS_FROM {
            tracing::info!(
                target: "kvmtest::progress",
                task = self.task,
                done = self.done,
                total = self.total
            );
        }
    }
}

impl Drop for Reporter<'_> {
    /// The end, whether hashing finished or failed: a display removes the task.
    fn drop(&mut self) {
        self.done = self.total;
        self.emit();
    }
}

/// The hex digest of `path` (of its first MiB for [`ChecksumAlgo::Md5FirstMiB`]), streamed.
fn hash_file(algo: ChecksumAlgo, path: &Path, task: &str) -> std::io::Result<String> {
    use md5::Digest;
    use std::io::Read;
    fn stream<D: Digest>(mut r: impl Read, progress: &mut Reporter<'_>) -> std::io::Result<String> {
        let mut d = D::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match r.read(&mut buf)? {
                0 => break,
                n => {
                    d.update(&buf[..n]);
                    progress.add(n);
                }
            }
        }
        Ok(d.finalize().iter().map(|b| format!("{b:02x}")).collect())
    }
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    match algo {
        ChecksumAlgo::Md5FirstMiB => {
            let mut progress = Reporter::new(task, len.min(1 << 20));
            stream::<md5::Md5>(file.take(1 << 20), &mut progress)
        }
        ChecksumAlgo::Md5 => stream::<md5::Md5>(file, &mut Reporter::new(task, len)),
        ChecksumAlgo::Sha1 => stream::<sha1::Sha1>(file, &mut Reporter::new(task, len)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_match_the_reference_tools() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.iso");
        let mut f = File::create(&path).expect("create");
        // 1 MiB + 3 bytes: the first-MiB digest differs from the whole file's.
        let data: Vec<u8> = (0..(1u32 << 20) + 3).map(|i| (i % 251) as u8).collect();
        f.write_all(&data).expect("write");
        drop(f);
        let md5_all = hash_file(ChecksumAlgo::Md5, &path, "t").expect("md5");
        let md5_1m = hash_file(ChecksumAlgo::Md5FirstMiB, &path, "t").expect("md5_1m");
        let sha1 = hash_file(ChecksumAlgo::Sha1, &path, "t").expect("sha1");
        // What md5sum, `head -c 1048576 | md5sum` and sha1sum print for these bytes.
        assert_eq!(md5_all, "2c46272cdfd54a611e6cfd612805b2be");
        assert_eq!(md5_1m, "8f293a2f6c19b345152f7a49bb4c643c");
        assert_eq!(sha1, "f1877fc75b687b904b3444014cb4d40cd260da47");
    }

    /// A spec with CD-ROM `a.iso` and `key = value` (a checksum key).
    fn cdrom_spec(key: &str, value: &str) -> VmSpec {
        let mut p = Params::new();
        for (k, v) in [("cdroms", "cd1"), ("cdrom_cd1", "a.iso"), (key, value)] {
            p.insert(k, v);
        }
        VmSpec::new(&p, "vm1").unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn isos_are_checked_off_the_runtime_and_a_mismatch_names_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = check_isos("vm1", &cdrom_spec("md5sum", &"0".repeat(32)), dir.path()).await;
        assert!(
            matches!(&missing, Err(Error::Iso { problem, .. }) if problem == "not found"),
            "{missing:?}"
        );
        std::fs::write(dir.path().join("a.iso"), b"abc").expect("write");
        // md5sum and sha1sum of `abc`.
        let md5 = "900150983cd24fb0d6963f7d28e17f72";
        let sha1 = "a9993e364706816aba3e25717850c26c9cd0d89d";
        for (key, sum) in [("md5sum", md5), ("md5sum_1m", md5), ("sha1sum", sha1)] {
            check_isos("vm1", &cdrom_spec(key, sum), dir.path())
                .await
                .unwrap_or_else(|e| panic!("{key}: {e}"));
        }
        let wrong = check_isos("vm1", &cdrom_spec("sha1sum", &"0".repeat(40)), dir.path()).await;
        match wrong {
            Err(Error::Iso { path, problem, .. }) => {
                assert_eq!(path, dir.path().join("a.iso"));
                assert_eq!(
                    problem,
                    format!("sha1sum is {sha1}, expected {}", "0".repeat(40))
                );
            }
            other => panic!("a wrong sha1sum must be Error::Iso: {other:?}"),
        }
    }

    #[test]
    fn large_files_report_their_progress_every_5_percent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let big = dir.path().join("big.iso");
        let small = dir.path().join("small.iso");
        File::create(&big)
            .expect("create")
            .set_len(PROGRESS_FROM)
            .expect("set_len");
        File::create(&small)
            .expect("create")
            .set_len(PROGRESS_FROM - 1)
            .expect("set_len");
        let events = crate::test_events::record(|| {
            hash_file(ChecksumAlgo::Sha1, &small, "small").expect("sha1");
            hash_file(ChecksumAlgo::Md5, &big, "big").expect("md5");
        });
        let number = |e: &crate::test_events::Seen, k: &str| -> u64 {
            e.fields.get(k).and_then(|v| v.parse().ok()).expect(k)
        };
        let seen: Vec<(String, u64, u64)> = events
            .iter()
            .filter(|e| e.target == "kvmtest::progress")
            .map(|e| {
                (
                    e.fields["task"].clone(),
                    number(e, "done"),
                    number(e, "total"),
                )
            })
            .collect();
        assert!(
            seen.iter()
                .all(|(t, _, total)| t == "big" && *total == PROGRESS_FROM),
            "{seen:?}"
        );
        let done: Vec<u64> = seen.iter().map(|(_, d, _)| *d).collect();
        assert_eq!(done.first(), Some(&0));
        assert_eq!(done.last(), Some(&PROGRESS_FROM));
        assert!(done.windows(2).all(|w| w[0] < w[1]), "{done:?}");
        // 0, each 5 % step (the reads are 64 KiB, the steps 3.2 MiB), the end.
        assert_eq!(done.len(), 21, "{done:?}");
    }
}
