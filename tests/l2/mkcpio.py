#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Write the L2 guest's initramfs: a newc cpio archive with /init (the
given static binary), /dev/console (so init has a console before devtmpfs
is mounted), and the mount points /dev, /proc, /sys.

  mkcpio.py INIT OUT
"""

import stat
import sys


def entry(ino, name, mode, data=b"", rdev=(0, 0)):
    fields = [ino, mode, 0, 0, 2 if stat.S_ISDIR(mode) else 1, 0, len(data),
              0, 0, rdev[0], rdev[1], len(name) + 1, 0]
    hdr = b"070701" + b"".join(b"%08x" % f for f in fields)
    out = hdr + name.encode() + b"\0"
    out += b"\0" * (-len(out) % 4)
    out += data + b"\0" * (-len(data) % 4)
    return out


def main():
    init, dest = sys.argv[1:3]
    with open(init, "rb") as f:
        binary = f.read()
    parts = [
        entry(1, ".", stat.S_IFDIR | 0o755),
        entry(2, "dev", stat.S_IFDIR | 0o755),
        entry(3, "dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1)),
        entry(4, "proc", stat.S_IFDIR | 0o755),
        entry(5, "sys", stat.S_IFDIR | 0o755),
        entry(6, "init", stat.S_IFREG | 0o755, binary),
        entry(0, "TRAILER!!!", 0),
    ]
    with open(dest, "wb") as f:
        f.write(b"".join(parts))


if __name__ == "__main__":
    main()
