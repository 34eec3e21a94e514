#!/usr/bin/env python3
"""Minimal QMP client for the VM tests: qmp.py SOCKET COMMAND [JSON-ARGUMENTS].

Prints the command's "return" value as JSON; exits 1 with the error on a
QMP error, 2 when QEMU does not answer within TIMEOUT seconds (a QEMU whose
main loop is stuck must fail the test, not hang it).
"""

import json
import socket
import sys

TIMEOUT = 60


def main():
    path, cmd = sys.argv[1], sys.argv[2]
    args = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(TIMEOUT)
    try:
        s.connect(path)
        r = talk(s, cmd, args)
    except (OSError, ValueError) as e:
        print(f"{cmd}: no answer from QEMU ({path}): {e}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(r["return"]))


def talk(s, cmd, args):
    f = s.makefile("rw")
    json.loads(f.readline())  # greeting
    for c in ({"execute": "qmp_capabilities"}, {"execute": cmd, "arguments": args}):
        f.write(json.dumps(c) + "\n")
        f.flush()
        while True:
            r = json.loads(f.readline())
            if "event" not in r:
                break
        if "error" in r:
            print(f"{cmd}: {r['error'].get('desc')}", file=sys.stderr)
            sys.exit(1)
    return r


if __name__ == "__main__":
    main()
