#!/usr/bin/env python3
"""Count test results in a stream of KTAP documents.

Reads KTAP on stdin (several documents may follow one another; other lines
are ignored) and prints "passed failed skipped". Only leaf results count: a
result line that closes a subtest (its children, more deeply indented,
reported since the previous result at its level) is a summary and is not
counted again.
"""

import re
import sys

RESULT = re.compile(r"^(\s*)(not ok|ok) \d+\b(.*)$")


def main():
    passed = failed = skipped = 0
    recent = []  # indentation of each result line of the current document
    for line in sys.stdin:
        line = line.rstrip("\n")
        if line.startswith("KTAP version"):
            recent = []
            continue
        m = RESULT.match(line)
        if not m:
            continue
        indent = len(m.group(1).expandtabs(8))
        summary = False
        for r in reversed(recent):
            if r <= indent:
                break
            summary = True
        recent.append(indent)
        if summary:
            continue
        if re.search(r"#\s*SKIP", m.group(3), re.I):
            skipped += 1
        elif m.group(2) == "ok":
            passed += 1
        else:
            failed += 1
    print(passed, failed, skipped)


if __name__ == "__main__":
    main()
