#!/usr/bin/env python3
"""Minimal QMP client for the VM tests: qmp.py SOCKET COMMAND [JSON-ARGUMENTS].

Prints the command's "return" value as JSON; exits 1 with the error on a
QMP error, 2 when QEMU does not answer within TIMEOUT seconds (a QEMU whose
main loop is stuck must fail the test, not hang it).

COMMAND "wait-migration" with {"seconds": N} polls query-migrate on one
connection until the migration completed, failed or was cancelled, or N
seconds passed, and prints the last answer (one process instead of one per
poll: starting Python costs seconds in the busy test VM).
"""

import json
import socket
import sys
import time

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


def call(f, cmd, args):
    f.write(json.dumps({"execute": cmd, "arguments": args}) + "\n")
    f.flush()
    while True:
        r = json.loads(f.readline())
        if "event" not in r:
            break
    if "error" in r:
        print(f"{cmd}: {r['error'].get('desc')}", file=sys.stderr)
        sys.exit(1)
    return r


def talk(s, cmd, args):
    f = s.makefile("rw")
    json.loads(f.readline())  # greeting
    call(f, "qmp_capabilities", {})
    if cmd != "wait-migration":
        return call(f, cmd, args)
    end = time.monotonic() + args.get("seconds", 180)
    while True:
        r = call(f, "query-migrate", {})
        if r["return"].get("status") in ("completed", "failed", "cancelled"):
            return r
        if time.monotonic() > end:
            return r
        time.sleep(0.2)


if __name__ == "__main__":
    main()
