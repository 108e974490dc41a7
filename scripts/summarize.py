#!/usr/bin/env python3
"""Add one meson test run (its testlog*.json) to a running tally.

Each TAP line ('ok N' / 'not ok N', '# SKIP' noted) is one test; a test
without TAP output counts once by its result.
Usage: summarize.py TESTLOG LABEL TALLY
"""
import json
import re
import sys

testlog, label, tally = sys.argv[1:4]
passed = failed = skipped = 0
try:
    with open(testlog) as f:
        for line in f:
            t = json.loads(line)
            out = t.get("stdout") or ""
            skip = len(re.findall(r"^ok \d+.*# skip", out, re.M | re.I))
            ok = len(re.findall(r"^ok \d+", out, re.M)) - skip
            bad = len(re.findall(r"^not ok \d+", out, re.M))
            skipped += skip
            if ok + bad + skip == 0:
                ok, bad = (1, 0) if t["result"] in ("OK", "EXPECTEDFAIL", "SKIP") else (0, 1)
            elif t["result"] not in ("OK", "EXPECTEDFAIL") and bad == 0:
                bad = 1  # crashed, timed out or failed after its TAP lines
            passed += ok
            failed += bad
except FileNotFoundError:
    failed = 1
print(f"{label}: {passed} passed, {failed} failed, {skipped} skipped")
with open(tally, "a") as f:
    f.write(f"{passed} {failed} {skipped}\n")
