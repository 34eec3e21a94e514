#!/usr/bin/env python3
"""Check the KTAP output of one test VM boot; count its results.

  ktap-check.py [--suites FILE --boot NAME] [--exit-status N] [--no-skips] <LOG
  ktap-check.py --self-test

Reads a stream of KTAP documents on stdin (one after another; lines outside
them are ignored) and fails, naming the document and the case, when:

- a case is "not ok" (a summary line that is "not ok" while every case
  under it passed counts as one failure too);
- a document or subtest has no plan, fewer or more results than its plan,
  results numbered out of sequence, or never ends;
- a result line stands outside any document;
- with --suites: a document that FILE pins for this boot is missing (each
  of its pinned cases counts as failed), appears more than once, or has
  another plan than pinned; a document FILE does not pin appears;
- with --no-skips (CI=true): a case is skipped (filtered or not);
- --exit-status is 124 (the guest timed out), 125 (it died), or any other
  non-zero value while no case failed.

Only leaf results count as passed, failed or skipped: a result line that
closes a subtest is that subtest's summary. Prints "failed: WHAT" for each
failure, then "PASSED FAILED SKIPPED" as the last line. Exit status: 0 if
nothing failed, 1 if something did, 2 on bad usage or a bad FILE.

FILE (tests/vm/suites.txt) has one line per document: BOOT NAME CASES,
where CASES is the document's plan; '#' starts a comment.
"""

import argparse
import io
import re
import sys

VERSION = re.compile(r"^(K?TAP) version \d+\s*$")
SUBTEST = re.compile(r"^# Subtest: (\S+)")
PLAN = re.compile(r"^1\.\.(\d+)\s*$")
RESULT = re.compile(r"^(not ok|ok)\s+(\d+)\b\s*(?:-\s*)?([^#]*?)\s*(?:#\s*(.*))?$")


class Node:
    """A document or subtest: its name, plan and result lines."""

    def __init__(self, indent, name=None):
        self.indent = indent
        self.name = name
        self.plan = None
        self.results = []  # [ok, number, name, directive, child Node or None]
        self.errors = []  # structural failures found while parsing
        self.pending = None  # a finished subtest waiting for its result line


class Report:
    def __init__(self, no_skips):
        self.no_skips = no_skips
        self.passed = self.failed = self.skipped = 0
        self.failures = []

    def fail(self, what, count=1):
        self.failed += count
        self.failures.append(what)


def parse(lines):
    """Documents (top-level Nodes) and stray result lines of a stream."""
    docs, stray = [], []
    stack = []  # open nodes, outermost first

    def close_to(indent, why):
        # Close the open nodes deeper than indent that no result line ended.
        while stack and stack[-1].indent > indent:
            n = stack.pop()
            if stack:
                stack[-1].errors.append(f"subtest {n.name or '(unnamed)'} {why}")
                # Its results still count, as a subtest of no result line.
                stack[-1].results.append([None, None, n.name or "(unnamed)", None, n])

    for raw in lines:
        line = raw.rstrip("\n").rstrip("\r")
        body = line.lstrip(" \t")
        indent = len(line[: len(line) - len(body)].expandtabs(8))
        if VERSION.match(body):
            if indent == 0:
                close_to(0, "has no result line")
                stack.clear()
                doc = Node(0)
                docs.append(doc)
                stack.append(doc)
            elif stack:
                close_to(indent - 1, "has no result line")
                stack.append(Node(indent))
            continue
        if not stack:
            if RESULT.match(body):
                stray.append(line)
            continue
        m = SUBTEST.match(body)
        if m:
            if indent > stack[-1].indent:
                stack.append(Node(indent, m.group(1)))
            elif indent == stack[-1].indent and stack[-1].name is None:
                stack[-1].name = m.group(1)
            continue
        m = PLAN.match(body)
        if m:
            if indent > stack[-1].indent:
                stack.append(Node(indent))
            close_to(indent, "has no result line")
            top = stack[-1]
            if top.plan is not None or top.results:
                top.errors.append(f"plan '{body}' after the plan or results")
            else:
                top.plan = int(m.group(1))
            continue
        m = RESULT.match(body)
        if m:
            child = None
            if indent > stack[-1].indent:
                # Results of a subtest that printed no header or plan.
                stack.append(Node(indent))
            # Deeper nodes: the one right under this result's level is the
            # subtest it closes; any deeper never got a result line.
            while len(stack) > 1 and stack[-1].indent > indent:
                if stack[-2].indent <= indent:
                    child = stack.pop()
                    break
                close_to(stack[-2].indent, "has no result line")
            top = stack[-1]
            if top.indent != indent:
                top.errors.append(f"result '{body}' at a depth no document opened")
            ok, num, name, directive = m.group(1) == "ok", int(m.group(2)), m.group(3), m.group(4)
            top.results.append([ok, num, name, directive, child])
    close_to(0, "has no result line")
    return docs, stray


def doc_name(doc):
    """The name a document is known by, and the node that holds its cases.

    A KUnit debugfs document has no name of its own: it holds one result,
    the summary of its one suite, so it is known by that suite.
    """
    if doc.name:
        return doc.name, doc
    if len(doc.results) == 1 and doc.results[0][4] is not None and doc.results[0][4].name:
        return doc.results[0][4].name, doc.results[0][4]
    return None, doc


def evaluate(node, path, rep, depth=0):
    """Counts the leaves under node; returns the number of failures found."""
    before = rep.failed
    for e in node.errors:
        rep.fail(f"{path}: {e}")
    # Documents and suites have a plan. KUnit prints none for the cases of
    # a test with generated parameters (their number is not known first):
    # only there, below a suite's case, may it lack.
    if node.plan is None and depth < 2:
        rep.fail(f"{path}: no plan")
    expect = 1
    for ok, num, name, directive, child in node.results:
        # A KUnit debugfs document is known by its one suite: no "x.x".
        label = path if child is not None and child.name == path else f"{path}.{name or num}"
        if num is not None:
            if num != expect:
                rep.fail(f"{path}: result '{name}' numbered {num}, expected {expect}")
            expect = num + 1
        if child is not None:
            child_failed = evaluate(child, label, rep, depth + 1)
            if ok is False and child_failed == 0:
                rep.fail(f"{label}: not ok{' # ' + directive if directive else ''} "
                         "(every case under it passed)")
            continue
        if directive and re.match(r"skip\b", directive, re.I):
            if rep.no_skips:
                rep.fail(f"{label}: skipped under CI=true ({directive})")
            else:
                rep.skipped += 1
        elif ok:
            rep.passed += 1
        else:
            rep.fail(f"{label}: not ok{' # ' + directive if directive else ''}")
    if node.plan is not None:
        n = sum(1 for r in node.results if r[1] is not None)
        if n < node.plan:
            rep.fail(f"{path}: {n} results, plan {node.plan}: {node.plan - n} missing", node.plan - n)
        elif n > node.plan:
            rep.fail(f"{path}: {n} results, more than its plan {node.plan}")
    return rep.failed - before


def read_suites(path, boot):
    pinned = {}
    boots = set()
    with open(path) as f:
        for i, raw in enumerate(f, 1):
            line = raw.split("#", 1)[0].split()
            if not line:
                continue
            if len(line) != 3 or not line[2].isdigit():
                raise ValueError(f"{path}:{i}: expected 'BOOT NAME CASES', got '{raw.strip()}'")
            boots.add(line[0])
            if line[0] != boot:
                continue
            if line[1] in pinned:
                raise ValueError(f"{path}:{i}: {line[1]} pinned twice for boot {boot}")
            pinned[line[1]] = int(line[2])
    if boot not in boots:
        raise ValueError(f"{path}: no document pinned for boot '{boot}' (boots: {' '.join(sorted(boots))})")
    return pinned


def check(stream, pinned=None, suites_file="suites", exit_status=None, no_skips=False):
    docs, stray = parse(stream)
    rep = Report(no_skips)
    for s in stray:
        rep.fail(f"result outside a KTAP document: '{s.strip()}'")
    seen = {}
    for i, doc in enumerate(docs):
        name, cases = doc_name(doc)
        path = name or f"document {i + 1} (unnamed)"
        if name is None:
            rep.fail(f"{path}: no '# Subtest:' name")
        evaluate(doc, path, rep)
        if name:
            seen.setdefault(name, []).append(cases)
    if pinned is not None:
        for name, count in pinned.items():
            got = seen.get(name, [])
            if not got:
                rep.fail(f"{name}: missing ({count} cases pinned in {suites_file})", count)
                continue
            if len(got) > 1:
                rep.fail(f"{name}: {len(got)} documents, {suites_file} pins one")
            if got[0].plan is not None and got[0].plan != count:
                rep.fail(f"{name}: plan {got[0].plan}, {suites_file} pins {count}")
        for name in seen:
            if name not in pinned:
                rep.fail(f"{name}: not pinned in {suites_file}")
    if exit_status:
        last = doc_name(docs[-1])[0] if docs else None
        where = f" (last document begun: {last or 'none'})"
        if exit_status == 124:
            rep.fail(f"guest timed out (exit 124){where}")
        elif exit_status == 125:
            rep.fail(f"guest died without an exit status (exit 125){where}")
        elif rep.failed == 0:
            rep.fail(f"guest exit status {exit_status} with no failing case{where}")
    return rep


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--suites", help="the pinned list (tests/vm/suites.txt)")
    ap.add_argument("--boot", help="which boot of the pinned list this log is")
    ap.add_argument("--exit-status", type=int, default=None)
    ap.add_argument("--no-skips", action="store_true", help="a skipped case fails (CI=true)")
    ap.add_argument("--self-test", action="store_true")
    a = ap.parse_args(argv)
    if a.self_test:
        return self_test()
    pinned = None
    if a.suites or a.boot:
        if not (a.suites and a.boot):
            print("ktap-check: --suites and --boot go together", file=sys.stderr)
            return 2
        try:
            pinned = read_suites(a.suites, a.boot)
        except (OSError, ValueError) as e:
            print(f"ktap-check: {e}", file=sys.stderr)
            return 2
    rep = check(sys.stdin, pinned, a.suites, a.exit_status, a.no_skips)
    for f in rep.failures:
        print(f"failed: {f}")
    print(rep.passed, rep.failed, rep.skipped)
    return 1 if rep.failed else 0


# --- self-test: one synthetic stream per failure class ---------------------

GOOD = """\
KTAP version 1
# Subtest: alpha
1..2
ok 1 one
# a diagnostic
ok 2 two # SKIP not here
KTAP version 1
1..1
    KTAP version 1
    # Subtest: kunit_suite
    # module: m
    1..2
    ok 1 case_a
    ok 2 case_b
ok 1 kunit_suite
"""
PINS = {"alpha": 2, "kunit_suite": 2}
PARAMS = GOOD.replace("    ok 2 case_b", """        KTAP version 1
        # Subtest: case_b
        ok 1 case_b.p0
        ok 2 case_b.p1
    ok 2 case_b""")

SELF_TESTS = [
    # name, stream, pinned, exit status, no_skips, (p, f, s), substrings of the failures
    ("all good", GOOD, PINS, 0, False, (3, 0, 1), []),
    ("generated parameters, no plan", PARAMS, PINS, 0, False, (4, 0, 1), []),
    ("a not ok parameter", PARAMS.replace("ok 2 case_b.p1", "not ok 2 case_b.p1"), PINS, 0, False, (3, 1, 1),
     ["kunit_suite.case_b.case_b.p1: not ok"]),
    ("a not ok case", GOOD.replace("ok 1 one", "not ok 1 one # broke"), PINS, 1, False,
     (2, 1, 1), ["alpha.one: not ok # broke"]),
    ("fewer results than the plan", GOOD.replace("ok 1 one\n", ""), PINS, 0, False,
     (2, 2, 1), ["alpha: result 'two' numbered 2, expected 1", "alpha: 1 results, plan 2: 1 missing"]),
    ("truncated stream", GOOD[:GOOD.index("    ok 2 case_b")], PINS, 0, False,
     (2, 3, 1), ["kunit_suite: subtest kunit_suite has no result line", "kunit_suite: 1 results, plan 2: 1 missing",
                 "kunit_suite: 0 results, plan 1: 1 missing"]),
    ("no plan", GOOD.replace("1..2\nok 1 one", "ok 1 one"), {"kunit_suite": 2, "alpha": 2}, 0, False,
     (3, 1, 1), ["alpha: no plan"]),
    ("more results than the plan", GOOD.replace("ok 2 two # SKIP not here", "ok 2 two\nok 3 three"), PINS, 0,
     False, (5, 1, 0), ["alpha: 3 results, more than its plan 2"]),
    ("a pinned document missing", GOOD, dict(PINS, gamma=5), 0, False, (3, 5, 1),
     ["gamma: missing (5 cases pinned in suites)"]),
    ("a document not pinned", GOOD, {"alpha": 2}, 0, False, (3, 1, 1), ["kunit_suite: not pinned in suites"]),
    ("plan differs from the pin", GOOD, {"alpha": 3, "kunit_suite": 2}, 0, False, (3, 1, 1),
     ["alpha: plan 2, suites pins 3"]),
    ("a document twice", GOOD + GOOD[:GOOD.index("KTAP version 1\n1..1")], PINS, 0, False, (4, 1, 2),
     ["alpha: 2 documents, suites pins one"]),
    ("a skip under CI", GOOD, PINS, 0, True, (3, 1, 0), ["alpha.two: skipped under CI=true (SKIP not here)"]),
    ("summary not ok over passing cases", GOOD.replace("ok 1 kunit_suite", "not ok 1 kunit_suite"), PINS, 1,
     False, (3, 1, 1), ["kunit_suite: not ok (every case under it passed)"]),
    ("exit status non-zero, all ok", GOOD, PINS, 1, False, (3, 1, 1),
     ["guest exit status 1 with no failing case (last document begun: kunit_suite)"]),
    ("guest timed out", GOOD, PINS, 124, False, (3, 1, 1), ["guest timed out (exit 124)"]),
    ("guest died", GOOD, PINS, 125, False, (3, 1, 1), ["guest died without an exit status"]),
    ("result outside a document", "ok 1 loose\n" + GOOD, PINS, 0, False, (3, 1, 1),
     ["result outside a KTAP document: 'ok 1 loose'"]),
    ("unnamed document", "KTAP version 1\n1..1\nok 1 x\n", None, 0, False, (1, 1, 0),
     ["document 1 (unnamed): no '# Subtest:' name"]),
    ("suite_exit of a suite that failed after all ok",
     "KTAP version 1\n# Subtest: suite_exit\n1..2\nok 1 smoke\nnot ok 2 variant_migratable # exit status 1\n",
     {"suite_exit": 2}, 1, False, (1, 1, 0), ["suite_exit.variant_migratable: not ok # exit status 1"]),
    ("kernel_health of a suite that warned",
     "KTAP version 1\n# Subtest: kernel_health\n1..2\nok 1 boot\n"
     "# WARNING: CPU: 0 PID: 1 at drivers/nvme/host/lm.c:10\nnot ok 2 pf_service_ops # kernel log: WARNING\n",
     {"kernel_health": 2}, 1, False, (1, 1, 0), ["kernel_health.pf_service_ops: not ok # kernel log: WARNING"]),
]


def self_test():
    print("KTAP version 1")
    print("# Subtest: ktap_check_self_test")
    print(f"1..{len(SELF_TESTS)}")
    bad = 0
    for i, (name, stream, pins, status, no_skips, counts, want) in enumerate(SELF_TESTS, 1):
        rep = check(io.StringIO(stream), pins, "suites", status, no_skips)
        got = (rep.passed, rep.failed, rep.skipped)
        problems = []
        if got != counts:
            problems.append(f"counts {got}, expected {counts}")
        for w in want:
            if not any(w in f for f in rep.failures):
                problems.append(f"no failure naming '{w}'")
        if not want and rep.failures:
            problems.append("unexpected failures")
        for f in rep.failures:
            print(f"# {f}")
        if problems:
            bad += 1
            print(f"not ok {i} {name} # {'; '.join(problems)}")
        else:
            print(f"ok {i} {name}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
