#!/usr/bin/env python3
"""Find compiler and clippy warnings about our own files in a Kbuild log.

Reads the log on stdin. Prints each warning that names a file our overlay
provides (or a file a patch touches) and exits 1 if there is any. With
--objects, prints instead the Kbuild objects to delete so they rebuild.
"""

import os
import re
import sys

OUR_PREFIXES = ("drivers/vfio/pci/nvme/", "rust/kernel/vfio", "rust/kernel/nvme_lm", "drivers/nvme/host/lm",
                "include/linux/nvme-lm", "include/uapi/linux/nvme_vfio")


def tree_relative(path):
    """The path from the top of the kernel tree, however Kbuild printed it
    (relative, or absolute into the source tree)."""
    for p in OUR_PREFIXES:
        i = path.find(p)
        if i == 0 or (i > 0 and path[i - 1] == "/"):
            return path[i:]
    return None


def ours(path):
    return tree_relative(path) is not None


def main():
    objects = "--objects" in sys.argv
    lines = sys.stdin.read().splitlines()
    found = []
    i = 0
    while i < len(lines):
        line = lines[i]
        # C: "path:line:col: warning: text"
        m = re.match(r"^(\S+?):\d+:\d+: warning: ", line)
        if m and ours(m.group(1)):
            found.append((m.group(1), line))
        # Rust/clippy: "warning: text" then "  --> path:line:col" shortly after.
        if line.startswith("warning") and not re.match(r"^warning: \d+ warnings? emitted", line):
            for j in range(i + 1, min(i + 6, len(lines))):
                m2 = re.match(r"^\s*--> (\S+?):\d+:\d+", lines[j])
                if m2:
                    if ours(m2.group(1)):
                        found.append((m2.group(1), "\n".join(lines[i:j + 1])))
                    break
        i += 1
    if objects:
        # The objects built from each warning's file, to delete so that the
        # next build compiles (and reports) them again. A Rust crate is one
        # object, whatever module file warned.
        objs = {
            "drivers/vfio/pci/nvme/": "drivers/vfio/pci/nvme/*.o",
            "rust/kernel/": "rust/kernel.o",
            "drivers/nvme/host/lm": "drivers/nvme/host/*lm*.o",
            "include/": "drivers/nvme/host/*lm*.o",
        }
        for path, _ in found:
            rel = tree_relative(path)
            for prefix, obj in objs.items():
                if rel.startswith(prefix):
                    print(obj)
        return 0
    for _, text in found:
        print(text)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
