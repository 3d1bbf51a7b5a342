#!/usr/bin/env bash
# criterion.sh PROGRAM [ARGS...] - run a Criterion test program for ctest.
#
# Criterion 2.4.1 exits 0 when tests were skipped (cr_skip_test), so a
# skip would show as a pass. This runs the program with a TAP report and
# maps its exit status:
#   - the program failed (any failing or crashing test, or a warning
#     logged with cr_log_warn, which Criterion counts as a failure): 1;
#   - it passed but skipped tests, or exited 77 itself (the e2e programs
#     when QEMU is missing): 77, ctest's SKIP_RETURN_CODE, the skipped
#     tests and their reasons listed; a failure with PROVIUM_REQUIRE_ALL=1;
#   - everything ran and passed: 0.
# Like every test it runs in a session of its own, registered for the
# sweep (test/sweep.sh): nothing it starts outlives it.
set -u
. "$(dirname "${BASH_SOURCE[0]}")/sweep.sh"
session_enter "$@"
[ $# -ge 1 ] || { echo "usage: criterion.sh PROGRAM [ARGS...]" >&2; exit 2; }

reg_begin "$(basename "$1")"
tap=$(mktemp /tmp/provium-tap.XXXXXX)
register dir "$tap"
"$@" --tap="$tap"
rc=$?
skips=$(grep -E '^ok .* # SKIP' "$tap")
# Tests left out by --filter are reported as skipped too: not ours.
case " $* " in *" --filter"*)
    skips=$(grep -v '# SKIP test was skipped$' <<<"$skips") ;;
esac
rm -f "$tap"
reg_end || { echo "criterion.sh: cleanup after $1 failed" >&2; rc=1; }

if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
    exit 1
fi
if [ $rc -eq 77 ] || [ -n "$skips" ]; then
    [ -n "$skips" ] && printf '%s\n' "$skips" | sed 's/^ok - /skipped: /' >&2
    if [ "${PROVIUM_REQUIRE_ALL:-0}" = 1 ]; then
        echo "FAIL: tests were skipped, but PROVIUM_REQUIRE_ALL=1" >&2
        exit 1
    fi
    exit 77
fi
exit 0
