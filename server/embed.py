#!/usr/bin/env python3
"""embed.py IN OUT NAME: IN as a C string constant NAME in header OUT
(the code interpreter's Python program, server/interp.py)."""
import sys

src, out, name = sys.argv[1:4]
data = open(src, "rb").read()
with open(out, "w") as f:
    f.write(f"/* generated from {src.rsplit('/', 1)[-1]} by embed.py: do not edit */\n")
    f.write(f"static const char {name}[] =\n")
    for line in data.splitlines(True):
        esc = "".join(chr(b) if 32 <= b < 127 and chr(b) not in '"\\?' else "\\%03o" % b for b in line)
        f.write(f'\t"{esc}"\n')
    f.write(";\n")
