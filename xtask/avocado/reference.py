#!/usr/bin/env python3
"""Reference command lines from avocado-vt, for `cargo xtask compare-avocado --regenerate`.

Assembles avocado-vt's shipped config tree as `avocado vt-bootstrap` does (base.cfg,
machines.cfg, guest-os from the guest-os directory, guest-hw.cfg, a one-test subtests file of
ours), selects variants with Cartesian filters, and for each asks avocado-vt's own
`VM.make_create_command()` for the QEMU command line, probing the real QEMU binary given.
Host-touching parts are stubbed (tap creation and fds: avocado-vt adds them in `create()`, not
here; nothing is started). Writes one JSON file per variant:

    {"name": ..., "qemu": "<qemu -version first line>", "params": {...}, "cmdline": "...",
     "argv": [...]}

`params` is the variant's whole dict, as the parser gave it (so kvmtest's test needs no config
tree), `argv` the command line split as a shell would. Run with avocado-vt installed
(`pip install avocado-framework-plugin-vt`); it is a developer tool, never run by the tests.
"""
import argparse
import json
import os
import shlex
import sys
import tempfile


def build_tree(vt, work, test_cfg):
    """Writes tests.cfg assembling avocado-vt's shipped configs into `work`; returns its path."""
    from virttest import bootstrap

    cfg = os.path.join(vt, "shared", "cfg")
    with open(os.path.join(work, "guest-os.cfg"), "w") as f:
        bootstrap.get_directory_structure(os.path.join(cfg, "guest-os"), f, "Guest")
    with open(os.path.join(work, "subtests.cfg"), "w") as f:
        f.write(test_cfg)
    tests = os.path.join(work, "tests.cfg")
    with open(tests, "w") as f:
        f.write(
            "include %s/base.cfg\ninclude %s/machines.cfg\ninclude subtests.cfg\n"
            "include guest-os.cfg\ninclude %s/guest-hw.cfg\n" % (cfg, cfg, cfg)
        )
    return tests


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qemu", required=True, help="the qemu-system-x86_64 to probe")
    ap.add_argument("--out", required=True, help="directory for the JSON files")
    ap.add_argument("--filter", action="append", default=[],
                    help="a Cartesian filter line (`only ...`), repeatable")
    ap.add_argument("--limit", type=int, default=0, help="at most this many variants")
    ap.add_argument("--step", type=int, default=1, help="take every STEP-th variant")
    ap.add_argument("--list", action="store_true", help="only print the variant names")
    args = ap.parse_args()

    scratch = tempfile.mkdtemp(prefix="kvmtest-avocado-ref-")
    from virttest import data_dir
    data_dir.get_data_dir = lambda: scratch
    data_dir.get_tmp_dir = lambda public=True: scratch
    from virttest import cartesian_config, qemu_vm, utils_net
    import virttest

    vt = os.path.dirname(virttest.__file__)
    test_cfg = "variants:\n    - boot:\n        type = boot\n"
    tests = build_tree(vt, scratch, test_cfg)

    parser = cartesian_config.Parser()
    parser.parse_file(tests)
    for line in args.filter:
        parser.parse_string(line)
    # No host bridge, tap or fd is touched: make_create_command only names them.
    utils_net.find_bridge_manager = lambda *a, **k: None

    import subprocess
    version = subprocess.run([args.qemu, "-version"], capture_output=True,
                             text=True).stdout.splitlines()[0]
    os.makedirs(args.out, exist_ok=True)
    taken = 0
    for i, d in enumerate(parser.get_dicts()):
        if i % args.step:
            continue
        if args.limit and taken >= args.limit:
            break
        taken += 1
        name = d["name"]
        if args.list:
            print(name)
            continue
        params = dict(d)
        p = virttest.utils_params.Params(params)
        p["qemu_binary"] = args.qemu
        p["qemu_img_binary"] = "qemu-img"
        vm_name = p.objects("vms")[0]
        vm_params = p.object_params(vm_name)
        vm = qemu_vm.VM(vm_name, vm_params, scratch, {})
        record = {"name": name, "qemu": version, "params": params}
        try:
            devices, _spice = vm.make_create_command()
            cmdline = devices.cmdline()
            record["cmdline"] = cmdline
            record["argv"] = shlex.split(cmdline)
        except Exception as e:  # the reference refuses it: kept, with its reason
            record["error"] = "%s: %s" % (type(e).__name__, e)
        path = os.path.join(args.out, "%04d.json" % i)
        with open(path, "w") as f:
            json.dump(record, f, indent=1, sort_keys=True)
            f.write("\n")
        print(path, name, "error" in record and record["error"] or "", flush=True)


if __name__ == "__main__":
    sys.exit(main())
