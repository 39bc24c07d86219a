//! The keys of `qemu_img`: tp-qemu's, each with what it does here.

use spec::KeyDoc;

/// Every key the test reads ([`super::SPEC`]'s params), the per-image ones read through each
/// image's object view too.
pub(super) const KEYS: &[KeyDoc] = &[
    KeyDoc::required(
        "subcommand",
        "check, create, convert, snapshot, info, rebase, commit or amend",
    ),
    KeyDoc::with_default(
        "qemu_img_binary",
        "qemu-img",
        "the qemu-img to run (a bare name is looked up on PATH)",
    ),
    KeyDoc::optional(
        "image_name",
        "an image's file without its format extension; without VMs, relative to the test's \
         directory",
    ),
    KeyDoc::with_default("image_format", "qcow2", "an image's format"),
    KeyDoc::with_default(
        "image_size",
        "10G",
        "an image's virtual size (info checks it)",
    ),
    KeyDoc::optional(
        "image_extra_params",
        "`-o` options (comma separated) of an image this test creates without VMs \
         (`image_extra_params_stg = \"compat=0.10,\"`)",
    ),
    KeyDoc::with_default(
        "create_image",
        "no",
        "without VMs: create the image before the test when its file is missing",
    ),
    KeyDoc::with_default(
        "force_create_image",
        "no",
        "without VMs: create the image before the test even when it exists",
    ),
    KeyDoc::with_default(
        "remove_image",
        "yes",
        "without VMs: remove the image after the test",
    ),
    KeyDoc::with_default(
        "check_image",
        "no",
        "without VMs: `qemu-img check` the image after a test that passed",
    ),
    // check
    KeyDoc::optional("image_name_dd", "check: the file create_image_cmd makes"),
    KeyDoc::with_default(
        "force_create_image_dd",
        "no",
        "check: read for tp-qemu's cfg; create_image_cmd always makes the file",
    ),
    KeyDoc::with_default(
        "remove_image_dd",
        "yes",
        "check: remove the created file at the end",
    ),
    KeyDoc::optional(
        "create_image_cmd",
        "check: the command creating the file, `%s` its path, run as an argv (no shell: \
         `dd if=/dev/zero of=%s bs=1M count=64`)",
    ),
    KeyDoc::optional(
        "supported_image_formats",
        "check: formats the created file is converted to and checked in",
    ),
    // create
    KeyDoc::optional("image_name_large", "create: the image created"),
    KeyDoc::optional("image_size_large", "create: its size"),
    KeyDoc::optional(
        "image_cluster_size",
        "create: `-o cluster_size=`; `qemu-img info` must report it",
    ),
    KeyDoc::with_default(
        "preallocated",
        "off",
        "create: `-o preallocation=` unless off (metadata, falloc, full)",
    ),
    // convert, and the options of convert and amend
    KeyDoc::optional("dest_image_format", "convert: the output format (`-O`)"),
    KeyDoc::with_default("compressed", "no", "convert: yes adds `-c`"),
    KeyDoc::with_default(
        "encrypted",
        "no",
        "convert: yes (qemu-img's old `-e`, gone from qemu-img) is refused",
    ),
    KeyDoc::optional(
        "show_progress",
        "convert, rebase: on adds `-p`; off sends the running qemu-img SIGUSR1 (progress on \
         stderr)",
    ),
    KeyDoc::with_default(
        "check_output",
        "exit_status",
        "convert, rebase, amend: what is judged — exit_status (must be 0), stdout or stderr \
         (command_result_pattern must match it)",
    ),
    KeyDoc::optional(
        "command_result_pattern",
        "the regular expression the stream of check_output must match",
    ),
    KeyDoc::optional(
        "qemu_img_options",
        "convert, amend: names of `-o` options, each one's value in the key of its name",
    ),
    KeyDoc::optional(
        "cluster_size",
        "`-o cluster_size=` when qemu_img_options names it",
    ),
    KeyDoc::optional("compat", "`-o compat=` when qemu_img_options names it"),
    KeyDoc::optional(
        "refcount_bits",
        "`-o refcount_bits=` when qemu_img_options names it",
    ),
    KeyDoc::optional(
        "lazy_refcounts",
        "`-o lazy_refcounts=` when qemu_img_options names it",
    ),
    KeyDoc::optional(
        "preallocation",
        "`-o preallocation=` when qemu_img_options names it",
    ),
    // rebase
    KeyDoc::optional("image_name_snapshot1", "rebase: the first overlay"),
    KeyDoc::optional(
        "image_name_snapshot2",
        "rebase: the overlay that is rebased",
    ),
    KeyDoc::with_default("snapshot_format", "qcow2", "rebase: the overlays' format"),
    KeyDoc::with_default(
        "rebase_mode",
        "safe",
        "rebase: safe, or unsafe (`-u`, the first overlay removed before)",
    ),
    // commit
    KeyDoc::with_default(
        "file_create_cmd",
        "touch /commit_testfile",
        "commit: run in the guest on the overlay",
    ),
    KeyDoc::with_default(
        "file_info_cmd",
        "ls / | grep commit_testfile",
        "commit: run in the guest after file_create_cmd",
    ),
    KeyDoc::with_default(
        "file_exist_chk_cmd",
        "[ -e /commit_testfile ] && echo $?",
        "commit: must succeed in the guest booted from the base after the commit",
    ),
    KeyDoc::with_default(
        "file_del_cmd",
        "rm -f /commit_testfile",
        "commit: run in the guest at the end",
    ),
    // amend
    KeyDoc::optional(
        "image_name_stg",
        "amend: the image amended (created as an image of `images`)",
    ),
    KeyDoc::with_default("image_format_stg", "qcow2", "amend: its format"),
    KeyDoc::optional("cache_mode", "amend: `-t`"),
    // booting
    KeyDoc::with_default(
        "qemu_img_boot",
        "yes",
        "kvmtest: no runs convert and rebase without booting their images",
    ),
    KeyDoc::with_default(
        "serial_login",
        "no",
        "a boot logs in on the serial console (yes) or over the VM's shell_client (no)",
    ),
    KeyDoc::with_default("os_type", "linux", "a boot runs dd in a linux guest"),
    KeyDoc::with_default(
        "dd_file_size",
        "1000",
        "a boot's `dd … bs=dd_file_size count=1000` in the guest",
    ),
    KeyDoc::with_default("dd_timeout", "60", "seconds the guest's dd may take"),
];
