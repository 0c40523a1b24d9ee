"""Generates docs/errors.md from the DBT_ERRORS X-macro in src/base/err.h (the one error list).

Run: /usr/bin/python3 scripts/gen-errors.py > docs/errors.md ; the unit suite checks it is current.
"""
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parents[1]
text = (root / "src/base/err.h").read_text()
rows = re.findall(r'X\((\w+),\s*(\d+),\s*"([^"]*)"\)', text)
out = ["# dbtls error codes", "",
       "Generated from `src/base/err.h` by `scripts/gen-errors.py`; do not edit by hand.", "",
       "Every failure carries one of these codes and a one-line message naming what failed and why.",
       "The `dbtls` command exits with the code's exit status.", "",
       "| code | exit status | meaning |", "|---|---|---|"]
for name, code, desc in rows:
    out.append(f"| `DBT_E_{name}` | {code} | {desc} |")
sys.stdout.write("\n".join(out) + "\n")
