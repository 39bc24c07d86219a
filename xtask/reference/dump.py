#!/usr/bin/env python3
"""The reference side of kvmtest's config benches and fixture regeneration.

Runs avocado-vt's own Cartesian parser (``virttest.cartesian_config``) on a config and prints
every variant as one JSON line (keys sorted, UTF-8 written raw: the format of
``kvmtest show --json``), or only their number with ``--count``.

    dump.py [--count] [--defaults] [--expand a,b] [--only F]... [--no F]... [--assign K=V]...
            [--keep-dups] FILE.cfg [STATEMENT]...

STATEMENTs are parsed after FILE, in order (avocado-vt's ``"only x" "no y"`` arguments); then
``--only``, ``--no`` and ``--assign``, as kvmtest applies them. A parse error prints
``ERROR <class>: <message>`` on stderr and exits 2. Timing goes to stderr.
"""
import argparse
import json
import sys
import time

from virttest import cartesian_config


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cfg")
    ap.add_argument("statements", nargs="*")
    ap.add_argument("--count", action="store_true")
    ap.add_argument("--defaults", action="store_true")
    ap.add_argument("--expand", default="")
    ap.add_argument("--only", action="append", default=[])
    ap.add_argument("--no", action="append", default=[])
    ap.add_argument("--assign", action="append", default=[])
    ap.add_argument("--keep-dups", action="store_true")
    return ap.parse_intermixed_args(argv)


def main(argv):
    args = parse_args(argv)
    if args.keep_dups:
        # the module consults `options.skipdups` when `options` is set (its CLI's -s)
        cartesian_config.options = argparse.Namespace(skipdups=False)
    start = time.monotonic()
    count = 0
    try:
        expand = [e.strip() for e in args.expand.split(",") if e.strip()]
        parser = cartesian_config.Parser(defaults=args.defaults, expand_defaults=expand)
        parser.parse_file(args.cfg)
        for statement in args.statements:
            parser.parse_string(statement)
        for f in args.only:
            parser.only_filter(f)
        for f in args.no:
            parser.no_filter(f)
        for kv in args.assign:
            key, _, value = kv.partition("=")
            parser.assign(key.strip(), value.strip())
        write = sys.stdout.write
        for d in parser.get_dicts():
            count += 1
            if not args.count:
                write(json.dumps(d, sort_keys=True, ensure_ascii=False, default=str))
                write("\n")
    except Exception as e:  # noqa: BLE001 - reported like a command-line tool
        sys.stdout.flush()
        print("ERROR %s: %s" % (type(e).__name__, e), file=sys.stderr)
        return 2
    if args.count:
        print(count)
    print("# variants=%d seconds=%.3f" % (count, time.monotonic() - start), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
