//! The subcommands that need no VM: `check`, `create`, `info`, `snapshot` and `amend`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde_json::Value;
use spec::{Keys, ProblemKind};

use super::{boot, in_dir, need, parent_dirs, remove, ByteSize, CheckOutput, ImageFile, Tool};
use crate::command;
use crate::registry::TestContext;
use crate::verdict::{TestError, TestResult};

/// `check`'s keys.
pub(super) struct CheckKeys {
    dd_name: String,
    command: Vec<String>,
    formats: Vec<String>,
    remove: bool,
}

impl CheckKeys {
    pub(super) fn read(k: &mut Keys<'_>) -> Self {
        let dd_name = need(k, "image_name_dd", "check");
        let text = need(k, "create_image_cmd", "check");
        let command = if text.is_empty() {
            Vec::new()
        } else {
            parse_command(&text).unwrap_or_else(|expected| {
                k.problem("create_image_cmd", ProblemKind::Invalid { expected });
                Vec::new()
            })
        };
        let formats = need(k, "supported_image_formats", "check")
            .split_whitespace()
            .map(str::to_string)
            .collect();
        // tp-qemu's cfg sets it; the command always makes the file.
        let _ = k.bool("force_create_image_dd");
        CheckKeys {
            dd_name,
            command,
            formats,
            remove: k.bool("remove_image_dd"),
        }
    }
}

/// Characters that mean a shell is needed (pipes, redirections, quoting, expansions…).
const SHELL_SYNTAX: &[char] = &[
    '|', '&', ';', '<', '>', '(', ')', '$', '`', '\\', '"', '\'', '*', '?', '[', ']', '{', '}',
    '~', '!', '#',
];

/// `create_image_cmd` as an argv template: words split at blanks, `%s` (the file) in one of
/// them at least, `%%` a literal `%`. Shell syntax is refused: kvmtest runs no shell strings.
fn parse_command(text: &str) -> Result<Vec<String>, String> {
    const EXPECTED: &str = "a command without shell syntax, `%s` for the file \
                            (`dd if=/dev/zero of=%s bs=1M count=64`)";
    if let Some(c) = text.chars().find(|c| SHELL_SYNTAX.contains(c)) {
        return Err(format!("{EXPECTED}; {c:?} needs a shell"));
    }
    let words: Vec<String> = text.split_whitespace().map(str::to_string).collect();
    let mut has_file = false;
    for w in &words {
        let mut chars = w.chars();
        while let Some(c) = chars.next() {
            if c == '%' {
                match chars.next() {
                    Some('s') => has_file = true,
                    Some('%') => {}
                    _ => return Err(format!("{EXPECTED}; `%` is followed by neither s nor %")),
                }
            }
        }
    }
    if has_file {
        Ok(words)
    } else {
        Err(format!("{EXPECTED}; it has no `%s`"))
    }
}

/// A word of [`parse_command`] with `%s` replaced by `file` and `%%` by `%`.
fn fill(word: &str, file: &Path) -> OsString {
    let mut out = OsString::new();
    let mut chars = word.chars();
    while let Some(c) = chars.next() {
        match (c, c == '%') {
            (_, true) => match chars.next() {
                Some('s') => out.push(file),
                _ => out.push("%"),
            },
            (c, false) => out.push(c.encode_utf8(&mut [0; 4])),
        }
    }
    out
}

/// `path` with `.ext` appended.
fn with_ext(path: &Path, ext: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

/// `check`: the file `create_image_cmd` makes is checked, then converted to each of
/// `supported_image_formats` and each copy checked.
pub(super) async fn check(ctx: &TestContext, tool: &Tool, c: &CheckKeys) -> TestResult {
    let img = in_dir(ctx, &c.dd_name, None);
    parent_dirs(&img)?;
    let argv: Vec<OsString> = c.command.iter().map(|w| fill(w, &img)).collect();
    let out = command::run(ctx, &argv).await?;
    if !out.success() {
        return Err(TestError::error(format!(
            "create_image_cmd: {}",
            out.describe()
        )));
    }
    tool.check(ctx, &img, None).await?;
    for fmt in &c.formats {
        let copy = ImageFile {
            path: with_ext(&img, fmt),
            format: fmt.clone(),
        };
        tool.convert(ctx, &img, None, &copy, false).await?;
        tool.check(ctx, &copy.path, None).await?;
        remove(ctx, &copy.path);
    }
    if c.remove {
        remove(ctx, &img);
    }
    Ok(())
}

/// `create`'s keys.
pub(super) struct CreateKeys {
    name: String,
    size: String,
    format: String,
    cluster: Option<String>,
    preallocated: String,
}

impl CreateKeys {
    pub(super) fn read(k: &mut Keys<'_>) -> Self {
        let size = need(k, "image_size_large", "create");
        if !size.is_empty() && size.parse::<ByteSize>().is_err() {
            k.problem(
                "image_size_large",
                ProblemKind::Invalid {
                    expected: "a size such as 2G".into(),
                },
            );
        }
        let cluster = k.opt("image_cluster_size");
        if cluster
            .as_deref()
            .is_some_and(|c| c.parse::<ByteSize>().is_err())
        {
            k.problem(
                "image_cluster_size",
                ProblemKind::Invalid {
                    expected: "a size such as 512, 64K or 2M".into(),
                },
            );
        }
        CreateKeys {
            name: need(k, "image_name_large", "create"),
            size,
            format: k.text("image_format"),
            cluster,
            preallocated: k.text("preallocated"),
        }
    }
}

/// `create`: `image_name_large` created with `preallocated` and `image_cluster_size`, checked,
/// and (kvmtest's addition) its virtual size and cluster size read back from `qemu-img info`.
pub(super) async fn create(ctx: &TestContext, tool: &Tool, c: &CreateKeys) -> TestResult {
    let img = ImageFile {
        path: in_dir(ctx, &c.name, Some(&c.format)),
        format: c.format.clone(),
    };
    let mut opts = Vec::new();
    if c.preallocated != "off" {
        opts.push(format!("preallocation={}", c.preallocated));
    }
    if let Some(cs) = &c.cluster {
        opts.push(format!("cluster_size={cs}"));
    }
    tool.create(ctx, &img, None, &opts, Some(&c.size)).await?;
    tool.check(ctx, &img.path, Some(&img.format)).await?;
    let info = tool.info(ctx, &img).await?;
    let want = c.size.parse::<ByteSize>().map(|s| s.0).ok();
    let got = info.get("virtual-size").and_then(Value::as_u64);
    if got != want {
        return Err(TestError::fail(format!(
            "{}: asked for {} ({want:?} bytes), qemu-img info says virtual-size {got:?}",
            img.path.display(),
            c.size
        )));
    }
    if let Some(cs) = &c.cluster {
        let want = cs.parse::<ByteSize>().map(|s| s.0).ok();
        let got = info.get("cluster-size").and_then(Value::as_u64);
        if got != want {
            return Err(TestError::fail(format!(
                "{}: asked for cluster_size={cs}, qemu-img info says cluster-size {got:?}",
                img.path.display()
            )));
        }
    }
    ctx.log.info(format_args!(
        "created as asked: {} bytes, cluster size {:?}, preallocation {}, {} bytes on disk",
        want.unwrap_or_default(),
        info.get("cluster-size").and_then(Value::as_u64),
        c.preallocated,
        info.get("actual-size").and_then(Value::as_u64).unwrap_or(0)
    ));
    remove(ctx, &img.path);
    Ok(())
}

/// `info`: `qemu-img info` of the main image (its format probed, as tp-qemu runs it) names
/// `image_format` and `image_size` in bytes.
pub(super) async fn info(ctx: &TestContext, tool: &Tool) -> TestResult {
    let img = boot::main_image(ctx, tool).await?;
    let out = tool
        .must(
            ctx,
            tool.argv([OsString::from("info"), img.path.clone().into()]),
        )
        .await?;
    let format = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("file format:"))
        .map(str::trim);
    if format != Some(img.format.as_str()) {
        return Err(TestError::fail(format!(
            "qemu-img info of {}: expected file format {}, it printed {:?}",
            img.path.display(),
            img.format,
            out.stdout.trim()
        )));
    }
    let Some(size) = tool.size else {
        return Err(TestError::error("image_size is not a size"));
    };
    if !out.stdout.contains(&format!("({size} bytes)")) {
        return Err(TestError::fail(format!(
            "qemu-img info of {}: expected a virtual size of {size} bytes, it printed {:?}",
            img.path.display(),
            out.stdout.trim()
        )));
    }
    Ok(())
}

/// The names of the internal snapshots `info` lists.
fn snapshot_names(info: &Value) -> Vec<String> {
    info.get("snapshots")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.get("name").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `snapshot`: `snapshot0` and `snapshot1` created in the main image, listed by `-l`, deleted
/// (and, kvmtest's addition, gone from `qemu-img info`).
pub(super) async fn snapshot(ctx: &TestContext, tool: &Tool) -> TestResult {
    let img = boot::main_image(ctx, tool).await?;
    let names = ["snapshot0", "snapshot1"];
    let image: OsString = img.path.clone().into();
    for n in names {
        tool.must(
            ctx,
            tool.argv([
                OsString::from("snapshot"),
                "-c".into(),
                n.into(),
                image.clone(),
            ]),
        )
        .await?;
    }
    let list = tool
        .must(
            ctx,
            tool.argv([OsString::from("snapshot"), "-l".into(), image.clone()]),
        )
        .await?;
    if let Some(n) = names.iter().find(|n| !list.stdout.contains(*n)) {
        return Err(TestError::fail(format!(
            "snapshot {n} was created but `{}` does not list it: {:?}",
            list.display,
            list.stdout.trim()
        )));
    }
    for n in names {
        tool.must(
            ctx,
            tool.argv([
                OsString::from("snapshot"),
                "-d".into(),
                n.into(),
                image.clone(),
            ]),
        )
        .await?;
    }
    let left = snapshot_names(&tool.info(ctx, &img).await?);
    if let Some(n) = names.iter().find(|n| left.iter().any(|l| l == *n)) {
        return Err(TestError::fail(format!(
            "snapshot {n} was deleted but qemu-img info still lists it: {left:?}"
        )));
    }
    Ok(())
}

/// `amend`'s keys.
pub(super) struct AmendKeys {
    img: ImageFile,
    cache: Option<String>,
}

impl AmendKeys {
    pub(super) fn read(ctx: &TestContext, k: &mut Keys<'_>) -> Self {
        let name = need(k, "image_name_stg", "amend");
        let format = k.text("image_format_stg");
        AmendKeys {
            img: ImageFile {
                path: in_dir(ctx, &name, Some(&format)),
                format,
            },
            cache: k.opt("cache_mode"),
        }
    }
}

/// Whether `info`'s `actual` value is the `expected` cfg text (`on`/`yes` for true, sizes
/// with suffixes).
fn same(actual: &Value, expected: &str) -> bool {
    match actual {
        Value::String(s) => s == expected,
        Value::Bool(b) => {
            let e = matches!(expected, "on" | "yes" | "true");
            let known = matches!(expected, "on" | "yes" | "true" | "off" | "no" | "false");
            known && e == *b
        }
        Value::Number(n) => {
            n.as_u64().is_some() && expected.parse::<ByteSize>().ok().map(|s| s.0) == n.as_u64()
        }
        _ => false,
    }
}

/// `amend`: `qemu-img amend -o` of `qemu_img_options` on `image_name_stg` (made, with its
/// `image_extra_params`, as an image of `images`), judged by `check_output`; with
/// `exit_status`, `qemu-img info` must show each option's new value. Then the image is checked.
pub(super) async fn amend(ctx: &TestContext, tool: &Tool, a: &AmendKeys) -> TestResult {
    if !a.img.path.exists() {
        return Err(TestError::error(format!(
            "amend: {} does not exist: it is made as image `stg` of `images` \
             (`force_create_image_stg = yes`) by this test when the variant has no VMs \
             (`vms = ''`, as tp-qemu's cfg); kvmtest's VM image processing does not apply \
             image_extra_params",
            a.img.path.display()
        )));
    }
    let mut args: Vec<OsString> = vec!["amend".into(), "-f".into(), a.img.format.clone().into()];
    if let Some(t) = &a.cache {
        args.extend(["-t".into(), t.into()]);
    }
    args.extend(tool.option_args());
    args.push(a.img.path.clone().into());
    let out = tool.run(ctx, tool.argv(args), false).await?;
    tool.judge(&out)?;
    if tool.check_output == CheckOutput::ExitStatus {
        let info = tool.info(ctx, &a.img).await?;
        let data = info.pointer("/format-specific/data");
        for (opt, want) in &tool.options {
            let field = match opt.as_str() {
                "size" => "virtual-size".to_string(),
                o => o.replace('_', "-"),
            };
            let got = data
                .and_then(|d| d.get(&field))
                .or_else(|| info.get(&field));
            match got {
                Some(v) if same(v, want) => {
                    ctx.log.info(format_args!("{opt} is now {v}, as asked"));
                }
                Some(v) => {
                    return Err(TestError::fail(format!(
                        "after amending {opt}={want}, qemu-img info says {field} = {v}"
                    )))
                }
                None => ctx.log.info(format_args!(
                    "qemu-img info does not report {opt}: not verified"
                )),
            }
        }
    }
    tool.check(ctx, &a.img.path, Some(&a.img.format)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tp_qemus_create_image_cmd_is_an_argv() {
        let words = parse_command("dd if=/dev/zero of=%s bs=1G count=1").unwrap_or_default();
        assert_eq!(words, ["dd", "if=/dev/zero", "of=%s", "bs=1G", "count=1"]);
        let filled: Vec<OsString> = words.iter().map(|w| fill(w, Path::new("/t/x"))).collect();
        assert_eq!(filled[2], "of=/t/x");
        assert_eq!(fill("100%%", Path::new("/t/x")), "100%");
    }

    #[test]
    fn shell_syntax_and_a_missing_file_are_refused() {
        for bad in [
            "dd if=/dev/zero of=%s bs=1M count=1 && sync",
            "truncate -s 1G %s; true",
            "dd if=/dev/zero bs=1M count=1 > %s",
            "echo $HOME %s",
            "qemu-img create -f raw \"%s\" 1G",
        ] {
            let e = parse_command(bad).err().unwrap_or_default();
            assert!(e.contains("needs a shell"), "{bad}: {e}");
        }
        let e = parse_command("dd if=/dev/zero of=x")
            .err()
            .unwrap_or_default();
        assert!(e.contains("no `%s`"), "{e}");
        let e = parse_command("dd of=%s count=%d").err().unwrap_or_default();
        assert!(e.contains("neither"), "{e}");
    }

    #[test]
    fn info_values_compare_as_cfg_text() {
        assert!(same(&Value::from("1.1"), "1.1"));
        assert!(same(&Value::from(16), "16"));
        assert!(same(&Value::from(2048), "2K"));
        assert!(same(&Value::from(true), "on"));
        assert!(!same(&Value::from(false), "on"));
        assert!(!same(&Value::from(false), "maybe"));
        assert!(!same(&Value::from("0.10"), "1.1"));
    }
}
