#!/usr/bin/env python3
"""Reference command lines from avocado-vt, for `cargo xtask compare-avocado --regenerate`.

Assembles avocado-vt's shipped config tree as `avocado vt-bootstrap` does (base.cfg,
machines.cfg, guest-os from the guest-os directory, guest-hw.cfg, a one-test subtests file of
ours), selects variants with Cartesian filters, and for each asks avocado-vt's own
`VM.make_create_command()` for the QEMU command line, probing the real QEMU binary given.
Host-touching parts are stubbed (tap creation and fds: avocado-vt adds them in `create()`, not
here; nothing is started). Writes one JSON file per variant:

    {"name": ..., "qemu": "<qemu -version first line>", "params": {...}, "cmdline": "...",
     "argv": [...], "data_dir": "..."}

`params` is the variant's whole dict, as the parser gave it (so kvmtest's test needs no config
tree), `argv` the command line split as a shell would, `data_dir` avocado-vt's data dir (a fixed
path, which the comparison maps to `@ROOT@`); `error` instead of `cmdline`/`argv` when avocado-vt
refuses the variant. `--sample` picks the committed sample (fixtures/avocado/README.md): each value
of each guest-hw.cfg dimension once per machine type (the image backends on the first machine type
only, their servers' keys from BACKEND_PARAMS), in files named MACHINE-VALUE.json; `--block B`
limits it to one dimension.
avocado-vt's QEMU probes are asked once per run (~10 s each otherwise). Run with avocado-vt installed
(`pip install avocado-framework-plugin-vt`); it is a developer tool, never run by the tests.
"""
import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

# avocado-vt's data dir while generating: a fixed path, so regenerated files differ only where
# avocado-vt's output does (kvmtest's comparison maps it to `@ROOT@`).
SCRATCH = "/tmp/kvmtest-avocado-ref"

# The machine types sampled (machines.cfg's x86 variants) and the guest: fixed, so the sample
# varies the hardware only.
MACHINES = ["i440fx", "q35"]
GUEST = "only JeOS.27..x86_64"

# guest-hw.cfg blocks left out of `--sample` (none: the image backends are sampled on the first
# machine type only, with BACKEND_PARAMS standing in for the servers the cfg leaves commented out).
SKIP_BLOCKS = set()
# Blocks sampled on the first machine type only (the choice does not depend on the machine).
FIRST_MACHINE_ONLY = {"image_backend"}
# The server side of each image backend: guest-hw.cfg leaves these commented out (the user's
# servers). Example hosts and keys; nothing is contacted (avocado-vt only names them in the
# command line; the secrets it writes go to the scratch data dir).
BACKEND_PARAMS = {
    "gluster": [
        "gluster_server = gluster.example.org",
    ],
    "gluster_direct": [
        "gluster_server = gluster.example.org",
        "gluster_port = 24007",
        "gluster_volume_name = vol_test",
        'gluster_peers = [{"host": "peer1.example.org", "port": 24008}, '
        '{"path": "/run/glusterd.socket"}]',
        "gluster_debug = 9",
        "gluster_logfile = /var/log/gfapi.log",
    ],
    "nbd": [
        "nbd_server = nbd.example.org",
        "nbd_port = 10810",
        "nbd_export_name = disk1",
        "nbd_reconnect_delay = 10",
        "nbd_client_tls_creds = /etc/pki/qemu-nbd",
    ],
    "libcurl": [
        "curl_protocol = https",
        "curl_server = images.example.org:8443",
        "curl_path = jeos/disk.qcow2",
        "curl_username = bob",
        "curl_password = pa55",
        "curl_sslverify = off",
        "curl_readahead = 1M",
        "curl_timeout = 30",
        "curl_cookie_secret = session=1",
    ],
    "ceph": [
        "rbd_pool_name = rbd",
        "rbd_namespace_name = ns1",
        "ceph_conf = /etc/ceph/ceph.conf",
        "ceph_monitor = 192.0.2.10",
        "ceph_key = QVFCQUFBQUFBQUFBQUE9PQ==",
    ],
    "iscsi_direct": [
        "portal_ip = 192.0.2.20",
        "target = iqn.2001-05.com.example:kvm",
        "lun = 1",
        "chap_user = alice",
        "chap_passwd = s3cret",
        "initiator = iqn.2010-07.com.example:kvmtest",
    ],
    "nvme_direct": [
        "nvme_pci_address = 0000:44:00.0",
        "nvme_namespace = 2",
    ],
    "libssh": [
        "image_ssh_host = ssh.example.org",
        "image_ssh_path = /srv/images/disk.qcow2",
        "image_ssh_user = root",
        "image_ssh_port = 2222",
        "image_ssh_host_key_check = no",
    ],
}
# Feature samples: each `features/NAME.cfg` beside this script is cfg text appended after the
# filters (keys the shipped tree leaves unset: `display = spice`, `tpms = tpm0`…), sampled once
# per machine type as MACHINE-feature-NAME.json. A first line `# machines: q35` limits the machine
# types; `--feature NAME` (repeatable) samples only those.
FEATURES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "features")


def feature_filters(only=None):
    """`--sample`'s feature samples (see FEATURES_DIR). Yields (label, filter lines)."""
    if not os.path.isdir(FEATURES_DIR):
        return
    for fname in sorted(os.listdir(FEATURES_DIR)):
        if not fname.endswith(".cfg"):
            continue
        name = fname[: -len(".cfg")]
        if only and name not in only:
            continue
        with open(os.path.join(FEATURES_DIR, fname)) as f:
            text = f.read()
        machines = MACHINES
        m = re.match(r"#\s*machines:\s*(.*)", text)
        if m:
            machines = m.group(1).split()
        for machine in machines:
            yield "%s-feature-%s" % (machine, name), [GUEST, "only %s" % machine, text]


# Placeholders, not hardware: xen's NIC and disk, and "something different" for the NIC.
SKIP_VALUES = {"xennet", "xenblk", "nic_custom"}


def dimensions(cfg_dir):
    """The values of guest-hw.cfg's top-level `variants:` blocks, one list per block, in file
    order (nested variants such as virtio_rng's back ends are listed under their parent, as
    `parent..child` filters)."""
    out = []
    block = None
    parent = None
    with open(os.path.join(cfg_dir, "guest-hw.cfg")) as f:
        for line in f:
            m = re.match(r"^variants(?:\s+(\w+))?\s*:", line)
            if m:
                block = {"name": m.group(1) or "", "values": []}
                out.append(block)
                continue
            m = re.match(r"^    - @?([\w.-]+)\s*:", line)
            if m and block is not None:
                parent = m.group(1)
                block["values"].append(parent)
                continue
            m = re.match(r"^ {9,}- @?([\w.-]+)\s*:", line)
            if m and block is not None and parent:
                block["values"].append("%s..%s" % (parent, m.group(1)))
    return out


def sample_filters(cfg_dir, only_block=None):
    """`--sample`: each value of each guest-hw.cfg dimension once per machine type, the other
    dimensions left at their first value (`only_block`: that block's values only). Yields
    (label, filter lines)."""
    for machine in MACHINES:
        if only_block is None:
            yield "%s-first" % machine, [GUEST, "only %s" % machine]
        for block in dimensions(cfg_dir):
            if block["name"] in SKIP_BLOCKS:
                continue
            if only_block is not None and block["name"] != only_block:
                continue
            if block["name"] in FIRST_MACHINE_ONLY and machine != MACHINES[0]:
                continue
            for value in block["values"]:
                if value in SKIP_VALUES:
                    continue
                label = "%s-%s" % (machine, value.replace("..", "-"))
                extra = BACKEND_PARAMS.get(value, []) if block["name"] == "image_backend" else []
                yield label, [GUEST, "only %s" % machine, "only %s" % value] + extra


def first_or_none(dicts, seconds=10):
    """The first of the parser's `dicts`, or None when there is none. A value excluded by
    another filter (`e1000e` has `only q35`) makes the parser walk the whole empty product,
    which takes hours: no first variant within `seconds` means none."""
    import signal

    class Timeout(Exception):
        pass

    def alarm(*_):
        raise Timeout()

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        return next(iter(dicts), None)
    except Timeout:
        return None
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def cache_qemu_probes(qemu):
    """avocado-vt probes the QEMU binary (`-help`, `-device help`, QMP…) for every VM, ~10 s
    each: the same command gives the same answer, so it is asked once per generation."""
    from avocado.utils import process

    real = process.run
    memo = {}

    def run(cmd, *a, **k):
        if qemu not in str(cmd):
            return real(cmd, *a, **k)
        key = (str(cmd), repr(sorted(k.items())))
        if key not in memo:
            memo[key] = real(cmd, *a, **k)
        return memo[key]

    process.run = run


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
    ap.add_argument("--sample", action="store_true",
                    help="the hardware sample: each guest-hw.cfg value once per machine type "
                    "(files named MACHINE-VALUE.json); --filter lines are added to each")
    ap.add_argument("--feature", action="append", default=[],
                    help="with --sample: only the feature samples named (features/NAME.cfg), "
                    "repeatable")
    ap.add_argument("--block", default=None,
                    help="with --sample: only the values of this guest-hw.cfg block "
                    "(such as image_backend)")
    args = ap.parse_args()

    scratch = SCRATCH
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)
    from virttest import data_dir
    data_dir.get_data_dir = lambda: scratch
    data_dir.get_tmp_dir = lambda public=True: scratch
    from virttest import cartesian_config, qemu_vm, utils_net
    import virttest
    import virttest.utils_params  # noqa: F401 (reference() uses it)

    vt = os.path.dirname(virttest.__file__)
    test_cfg = "variants:\n    - boot:\n        type = boot\n"
    tests = build_tree(vt, scratch, test_cfg)

    # No host bridge, tap or fd is touched: make_create_command only names them.
    utils_net.find_bridge_manager = lambda *a, **k: None
    # `vsocks`: avocado-vt loads vhost_vsock and probes /dev/vhost-vsock for a free guest CID
    # (from 3 up); the recording host need not have the device, so the probe answers its first
    # candidate (what an idle host answers).
    from virttest import utils_vsock
    utils_vsock.get_guest_cid = lambda guest_cid: guest_cid
    qemu_vm.linux_modules.load_module = lambda *a, **k: True
    cache_qemu_probes(args.qemu)

    version = subprocess.run([args.qemu, "-version"], capture_output=True,
                             text=True).stdout.splitlines()[0]
    os.makedirs(args.out, exist_ok=True)

    def variants(filters):
        parser = cartesian_config.Parser()
        parser.parse_file(tests)
        for line in filters:
            parser.parse_string(line)
        return parser.get_dicts()

    if args.sample:
        jobs = []
        if args.feature:
            samples = feature_filters(set(args.feature))
        else:
            import itertools
            samples = sample_filters(os.path.join(vt, "shared", "cfg"), args.block)
            if args.block is None:
                samples = itertools.chain(samples, feature_filters())
        for label, filters in samples:
            d = first_or_none(variants(filters + args.filter))
            if d is None:
                print("no variant:", label, file=sys.stderr, flush=True)
            else:
                jobs.append((label, d))
    else:
        jobs = []
        for i, d in enumerate(variants(args.filter)):
            if i % args.step:
                continue
            if args.limit and len(jobs) >= args.limit:
                break
            jobs.append(("%04d" % i, d))

    seen = set()
    for label, d in jobs:
        name = d["name"]
        # A hardware sample's first value is the same variant as the machine's `-first`: once.
        # Feature samples share that variant's name but not its params: each is kept.
        key = label if "-feature-" in label else name
        if key in seen:
            continue
        seen.add(key)
        if args.list:
            print(label, name)
            continue
        record = reference(d, name, version, args.qemu, scratch)
        path = os.path.join(args.out, "%s.json" % label)
        with open(path, "w") as f:
            json.dump(record, f, indent=None, sort_keys=True)
            f.write("\n")
        print(path, name, record.get("error", ""), flush=True)


def reference(d, name, version, qemu, scratch):
    """avocado-vt's command line for the variant `d` (or its refusal), as a JSON record."""
    from virttest import qemu_vm, utils_params

    params = dict(d)
    p = utils_params.Params(params)
    p["qemu_binary"] = qemu
    p["qemu_img_binary"] = "qemu-img"
    vm_name = p.objects("vms")[0]
    vm_params = p.object_params(vm_name)
    record = {"name": name, "qemu": version, "params": params, "data_dir": scratch}
    try:
        vm = qemu_vm.VM(vm_name, vm_params, scratch, {})
        devices, _spice = vm.make_create_command()
        cmdline = devices.cmdline()
        record["cmdline"] = cmdline
        record["argv"] = shlex.split(cmdline)
    except Exception as e:  # the reference refuses it: kept, with its reason
        record["error"] = "%s: %s" % (type(e).__name__, e)
    return record


if __name__ == "__main__":
    sys.exit(main())
