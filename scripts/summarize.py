#!/usr/bin/env python3
"""Sums the results of every test run (meson JSON logs, pytest JUnit XML,
fuzz smoke JSON) in a log directory and prints "N passed, N failed" last."""
import json
import os
import sys
import xml.etree.ElementTree as ET

logs = sys.argv[1]
passed = failed = 0
failures = []
for name in sorted(os.listdir(logs)):
    path = os.path.join(logs, name)
    if name.endswith(".json"):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                t = json.loads(line)
                if t.get("result") in ("OK", "EXPECTEDFAIL", "SKIP"):
                    passed += 1
                else:
                    failed += 1
                    failures.append(f"{name}: {t.get('name')} {t.get('result')}")
    elif name.endswith(".xml"):
        root = ET.parse(path).getroot()
        for case in root.iter("testcase"):
            bad = [c for c in case if c.tag in ("failure", "error")]
            if bad:
                failed += 1
                failures.append(f"{name}: {case.get('classname')}::{case.get('name')}")
            else:
                passed += 1
for f in failures:
    print("FAILED", f)
expected = {"unit.json", "unit-asan.json", "e2e.xml", "e2e-asan.xml", "security.xml", "security-asan.xml",
            "security-rootless.xml", "valgrind.json"}
for missing in sorted(expected - set(os.listdir(logs))):
    print("FAILED: no results from", missing)
    failed += 1
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
