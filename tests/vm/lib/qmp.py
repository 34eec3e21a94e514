#!/usr/bin/env python3
"""Minimal QMP client for the VM tests:
qmp.py SOCKET COMMAND [JSON-ARGUMENTS] [COMMAND [JSON-ARGUMENTS]]...

Runs the commands in order on one connection and prints the last one's
"return" value as JSON; exits 1 with the error on a
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


def commands(argv):
    """[(COMMAND, ARGUMENTS)] from the command line: a JSON object after a
    command is its arguments."""
    cmds = []
    for a in argv:
        if a.startswith("{") and cmds:
            cmds[-1] = (cmds[-1][0], json.loads(a))
        else:
            cmds.append((a, {}))
    return cmds


def main():
    path = sys.argv[1]
    cmd = "?"
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(TIMEOUT)
    try:
        s.connect(path)
        f = s.makefile("rw")
        json.loads(f.readline())  # greeting
        call(f, "qmp_capabilities", {})
        for cmd, args in commands(sys.argv[2:]):
            r = run(f, cmd, args)
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


def run(f, cmd, args):
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
