#!/usr/bin/env python3
"""build_go_peers.py — build every Go peer under tests/peers/ (stdlib only) at test time.

Usage: build_go_peers.py SRC_DIR OUT_DIR. Each subdirectory with a go.mod is
built with Debian's golang-go into OUT_DIR/<name>. Exits non-zero, printing the
compiler output, if any build fails.
"""
import os
import subprocess
import sys


def main() -> int:
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    failed = 0
    for name in sorted(os.listdir(src)):
        d = os.path.join(src, name)
        if not os.path.isfile(os.path.join(d, "go.mod")):
            continue
        target = os.path.join(out, name)
        r = subprocess.run(["go", "build", "-o", target, "."], cwd=d,
                           capture_output=True, text=True)
        if r.returncode != 0:
            print(f"go build {name} failed:\n{r.stdout}{r.stderr}")
            failed += 1
        else:
            print(f"built {target}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
