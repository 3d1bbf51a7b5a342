#!/usr/bin/env bash
# startup.sh - proviumfs checks every option before it mounts (SPEC §10):
# each bad option, argument or environment exits non-zero with a message
# naming the offending value, and leaves nothing mounted or running; a
# mount point a live proviumfs serves is refused, one a dead proviumfs
# left is taken over; --help and --version answer as libfuse programs do;
# detached, the daemon's messages go to syslog.
. "$(dirname "$0")/lib.sh"

MP=$T/mnt
mkdir -p "$T/spool" "$MP"
touch "$T/file"
n=0

# bad EXPECTED-TEXT [ENV=V...] -- ARGS...: start the daemon in the
# foreground (it would stay: the test then fails) with a deadline.
bad() {
    local want=$1 rc
    shift
    local envs=()
    while [ "$1" != -- ]; do envs+=("$1"); shift; done
    shift
    n=$((n + 1))
    env "${envs[@]}" PROVIUM_AGENT="${PROVIUM_AGENT_TEST-$AGENT_BIN}" \
        timeout -s KILL 10 "$FS_BIN" -f "$@" >"$T/out" 2>"$T/bad$n.msg"
    rc=$?
    if [ $rc -eq 0 ] || [ $rc -ge 124 ]; then
        fail "$* -> rc $rc (want a refusal)"
    elif ! grep -qF -- "$want" "$T/bad$n.msg"; then
        fail "$* -> message lacks \`$want\`: $(cat "$T/bad$n.msg")"
    else
        ok "$* -> rc $rc: $(head -c 160 "$T/bad$n.msg")"
    fi
    [ -n "${LIVE:-}" ] && return # a live daemon serves $MP: checked below
    mounted "$MP" && { fail "$* left $MP mounted"; fusermount3 -u -z "$MP"; }
    if pgrep -f -- "$MP" >/dev/null; then
        fail "$* left a process: $(pgrep -af -- "$MP")"
    fi
}

S=(--spool-dir "$T/spool")
bad "--history-limit \`99999999999T\`: too large" -- "${S[@]}" --history-limit 99999999999T "$MP"
bad "\`18446744073709551616\`: too large" -- "${S[@]}" --history-limit 18446744073709551616 "$MP"
bad "--history-limit \`-5\`: not a size" -- "${S[@]}" --history-limit -5 "$MP"
bad "--history-limit \` 5\`: not a size" -- "${S[@]}" --history-limit " 5" "$MP"
bad "--history-limit \`5X\`: not a size" -- "${S[@]}" --history-limit 5X "$MP"
bad "--history-limit \`\`: not a size" -- "${S[@]}" --history-limit= "$MP"
bad "--history-limit needs a value" -- "${S[@]}" "$MP" --history-limit
bad "--spool-dir $T/nonexistent: No such file or directory" -- --spool-dir "$T/nonexistent" "$MP"
bad "--spool-dir $T/file: not a directory" -- --spool-dir "$T/file" "$MP"
bad "--spool-dir /proc: cannot create a stream history there" -- --spool-dir /proc "$MP"
bad "--agent $T/nonexistent: No such file or directory" -- "${S[@]}" --agent "$T/nonexistent" "$MP"
bad "--agent $T/file: not executable" -- "${S[@]}" --agent "$T/file" "$MP"
bad "--agent $T/spool: not a regular file" -- "${S[@]}" --agent "$T/spool" "$MP"
PROVIUM_AGENT_TEST=$T/gone bad "PROVIUM_AGENT=$T/gone" -- "${S[@]}" "$MP"
bad "--vm \`novm\`: expected NAME=ENDPOINT" -- "${S[@]}" --vm novm "$MP"
bad "--vm \`=unix:/x\`: expected NAME=ENDPOINT" -- "${S[@]}" --vm =unix:/x "$MP"
bad "--vm \`host=unix:/x\`: \`host\` is the built-in VM" -- "${S[@]}" --vm host=unix:/x "$MP"
bad "bad name \`b@d\`" -- "${S[@]}" --vm 'b@d=unix:/x' "$MP"
bad "bad endpoint \`tcp:1\`" -- "${S[@]}" --vm v=tcp:1 "$MP"
bad "unknown or bad option \`foo=1\`" -- "${S[@]}" --vm v=unix:/x,foo=1 "$MP"
bad "\`v\` exists" -- "${S[@]}" --vm v=unix:/x --vm v=unix:/y "$MP"
bad "unknown option \`--bogus\`" -- "${S[@]}" --bogus "$MP"
bad "unknown option \`-x\`" -- "${S[@]}" -x "$MP"
bad "one mount point only, got \`$MP\` and \`$T/other\`" -- "${S[@]}" "$MP" "$T/other"
bad "unknown option(s): \`-o nosuchopt'" -- "${S[@]}" -o nosuchopt "$MP"
bad "mount point $T/file/mnt: mkdir" -- "${S[@]}" "$T/file/mnt"
bad "mount point $T/file: not a directory" -- "${S[@]}" "$T/file"
check "no second mount point was created" test ! -e "$T/other"

# --help and --version, as libfuse's programs: exit 0, on stdout.
check "--help: our options" eval '"$FS_BIN" --help | grep -q -- "--history-limit BYTES"'
check "--help: libfuse's mount options" eval '"$FS_BIN" -h | grep -q "allow_other"'
check "--version: ours and libfuse's" eval \
    '"$FS_BIN" --version | grep -qx "proviumfs [0-9.]*" && "$FS_BIN" -V | grep -q "FUSE library version"'

# A mount point a live proviumfs serves is refused; the first keeps serving.
start_fs "$FS_BIN" "$MP" || exit 1
first=$FS_PID
LIVE=1 bad "mount point $MP already holds a provium mount" -- "${S[@]}" "$MP"
check "the refused daemon is gone" eval '[ "$(pgrep -f -- "$MP" | grep -cvx "$first")" = 0 ]'
check "the first daemon still serves" grep -q "^pid: $first$" "$MP/ctl"
check "one provium mount on $MP" test "$(grep -c " $MP fuse.provium" /proc/mounts)" = 1

# One a dead proviumfs left is detached and mounted again.
kill -9 "$first"
wait "$first" 2>/dev/null
check "dead mount left behind" eval "! stat $MP >/dev/null 2>&1"
start_fs "$FS_BIN" "$MP" || exit 1
check "a new daemon took over the dead mount" grep -q "^pid: $FS_PID$" "$MP/ctl"
check "it said so" grep -q "stale mount of a dead proviumfs" "$T/mnt.err"
check "one provium mount after the takeover" test "$(grep -c " $MP fuse.provium" /proc/mounts)" = 1
check "SIGTERM unmounts" stop_fs "$FS_PID" "$MP"

# Relative paths survive the detach (it changes to /): a relative spool
# dir and agent are made absolute.
(cd "$T" && PROVIUM_AGENT= "$FS_BIN" --spool-dir spool --agent "$(realpath --relative-to="$T" "$AGENT_BIN")" mnt 2>"$T/rel.err")
check "detached daemon with relative paths mounted" wait_for 10 test -f "$MP/README"
MOUNTS+=("$MP")
pid=$(sed -n 's/^pid: //p' "$MP/ctl")
PIDS+=("$pid")
check "its spool dir is absolute" grep -qx "spool_dir: $T/spool" "$MP/ctl"
check "its host agent is up" wait_for 10 grep -q "host(up)" "$MP/ctl"
check "fusermount3 -u ends it" eval 'fusermount3 -u "$MP" && wait_for 10 eval "! kill -0 $pid 2>/dev/null"'

# Detached, messages go to syslog. No syslog daemon runs here, so run one
# (busybox syslogd) on a private /dev/log, in a private mount namespace
# where the daemon mounts too.
if ! command -v busybox >/dev/null || ! command -v unshare >/dev/null; then
    fail "busybox and unshare are needed for the syslog check"
else
    cat >"$T/syslog.sh" <<'SH'
set -u
mount --make-rprivate /
mount -t tmpfs none /dev
for n in "fuse 10 229" "null 1 3" "zero 1 5" "urandom 1 9"; do
    set -- $n; mknod -m 666 "/dev/$1" c "$2" "$3"
done
busybox syslogd -n -O "$T/messages" &
sl=$!
for _ in $(seq 100); do [ -S /dev/log ] && break; sleep 0.05; done
"$FS_BIN" --spool-dir "$T/spool" --agent "$AGENT_BIN" "$MP" || exit 1
for _ in $(seq 200); do [ -f "$MP/README" ] && break; sleep 0.05; done
pid=$(sed -n 's/^pid: //p' "$MP/ctl")
kill -TERM "$pid"
for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
for _ in $(seq 100); do grep -q "unmounting" "$T/messages" 2>/dev/null && break; sleep 0.05; done
kill "$sl"
SH
    T=$T MP=$MP FS_BIN=$FS_BIN AGENT_BIN=$AGENT_BIN timeout -s KILL 60 \
        unshare -m bash "$T/syslog.sh" 2>"$T/syslog.err"
    check "syslog: the mount is logged by a detached daemon" \
        grep -qE "proviumfs\[[0-9]+\]: mounted $MP " "$T/messages"
    check "syslog: so is the unmount" grep -qE "proviumfs\[[0-9]+\]: unmounting $MP" "$T/messages"
    check "syslog: nothing on the terminal once detached" test ! -s "$T/syslog.err"
fi
check "nothing left mounted" eval '! mounted "$MP"'
