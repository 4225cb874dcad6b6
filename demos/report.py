# # One pass/fail table of every demo's checks
#
# `make demos` runs every demo (each writes `out/demo_<name>/results.json` with its checks)
# and then this script, which prints one table of all the checks and exits with 1 if a check
# failed, a demo exited with an error, or a demo wrote no results.
#
# Run: `python demos/report.py fe2_plate=0 graded=0 ...` (a demo's name, `=` its exit code;
# a name alone: the exit code is not known) or `python demos/report.py` (every demo found
# under `--root`).

# +
import argparse
import json
import sys
from pathlib import Path


def checks_of(folder):
    """The checks of ``folder/results.json``, or None if the file is missing or unreadable."""
    try:
        return json.loads((folder / "results.json").read_text())["checks"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def compared(check):
    """What a check compared: value vs reference (error ≤ tolerance) or value in [low, high]."""
    if "reference" in check:
        return (
            f"{check['value']:.6g} vs {check['reference']:.6g}",
            f"{check['error']:.1e} ≤ {check['tolerance']:.0e}",
        )
    low, high = check.get("low"), check.get("high")
    if high is None:  # a one-sided bound
        return f"{check['value']:.6g} ≥ {low:.6g}", ""
    if low is None:
        return f"{check['value']:.6g} ≤ {high:.6g}", ""
    return f"{check['value']:.6g} in [{low:.6g}, {high:.6g}]", ""


def table(demos, root):
    """The table's lines and the number of problems (failed checks, errors, missing results)."""
    rows = [("demo", "check", "compared", "error", "result")]
    problems = 0
    for name, code in demos.items():
        checks = checks_of(root / f"demo_{name}")
        if code not in (None, 0):
            rows.append((name, f"(the demo exited with code {code})", "", "", "FAIL"))
            problems += 1
        if checks is None:
            rows.append((name, "(no results.json: the demo did not finish)", "", "", "MISSING"))
            problems += 1
            continue
        for check in checks:
            what, error = compared(check)
            rows.append((name, check["name"], what, error, "ok" if check["passed"] else "FAIL"))
            problems += not check["passed"]
    widths = [min(max(len(r[i]) for r in rows), cap) for i, cap in enumerate((18, 64, 36, 18, 7))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines, problems


def main(argv=None):
    parser = argparse.ArgumentParser(description="One pass/fail table of the demos' checks.")
    parser.add_argument(
        "demos", nargs="*", help="NAME or NAME=EXIT_CODE (default: every demo found)"
    )
    parser.add_argument("--root", default="out", help="folder of the demo_<name> outputs")
    args = parser.parse_args(argv)
    root = Path(args.root)
    demos = {}
    for item in args.demos:
        name, _, code = item.partition("=")
        demos[name] = int(code) if code else None
    if not demos:
        demos = {p.name.removeprefix("demo_"): None for p in sorted(root.glob("demo_*"))}
    lines, problems = table(demos, root)
    count = len(lines) - 2
    print("\n".join(["", *lines, ""]))
    if problems:
        print(f"demos: {problems} problem(s) in {count} rows of {len(demos)} demos")
        return 1
    print(f"demos: all {count} checks of {len(demos)} demos passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
# -
