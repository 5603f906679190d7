"""checks.py — the pass/fail tally of the Python test suites that drive real processes.

check(name, cond, detail) prints one `ok`/`FAIL` line and counts it; summary(suite) prints
the closing `SUITE: N passed, M failed` line that CI reads and returns the exit status.
(tests/diff keeps its own Tally in common.py, which also loads PyTorch.)
"""

passed = 0
failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print(f"  ok   {name}")
    else:
        failed += 1
        print(f"  FAIL {name} {str(detail)[:600]}")
    return cond


def summary(suite):
    """Print the closing line; 1 if anything failed, else 0."""
    print(f"{suite}: {passed} passed, {failed} failed")
    return 1 if failed else 0
