#!/usr/bin/env bash
# docs.sh - every shell and Lua example in README.md, docs/*.md and the
# man pages runs clean on a private mount: exit 0 and nothing on stderr
# (SPEC §10; "clean" catches GNU head's "cannot seek" on a ctl fd, and a
# missing /var/log/syslog, which exit 0 or go unseen otherwise).
#
# Markdown: ```sh and ```lua blocks. Man pages: the .nf/.fi blocks of
# EXAMPLES sections, roff escapes undone. A tag after the language (or a
# `.\" docs-test: TAG` line before .nf) marks what cannot run here:
#   needs-vm  needs a booted QEMU guest      -> syntax-checked (bash -n)
#   setup     builds, installs, starts units -> syntax-checked; the
#             install and package tests run the same steps
#   sketch    an API outline, not a program  -> syntax-checked (luac -p)
# Any other tag fails the test, and every block is counted, so no example
# rots unseen.
#
# Each runnable block gets a fresh mount (stream ids start at 1) with the
# host VM; /run/provium in its text is that mount; provium, proviumfs,
# provium-vm and provium-test are this tree's. A command whose comment
# says "Ctrl-C" follows a live stream: it runs under `timeout -s INT 2`,
# and exit 124 or 130 is its normal end. The block runs in its own
# session and whatever it left running is killed after it.
. "$(dirname "$0")/lib.sh"

BIN=$T/bin
mkdir -p "$BIN"
ln -s "$FS_BIN" "$BIN/proviumfs"
ln -s "$SRC/contrib/provium" "$BIN/provium"
ln -s "$SRC/contrib/provium-vm" "$BIN/provium-vm"
ln -s "$SRC/lua/provium-test" "$BIN/provium-test"
export PATH="$BIN:$PATH" PROVIUM_AGENT=$AGENT_BIN

# extract FILE: blocks as $T/blocks/NNN.{sh,lua}[.TAG], each with a
# .where file (FILE:LINE).
mkdir -p "$T/blocks"
extract() {
    awk -v out="$T/blocks" -v file="${1#"$SRC"/}" -v base="$(ls "$T/blocks" | wc -l)" '
    function start(lang, tag, line) {
        n++; name = sprintf("%s/%03d-%03d.%s%s", out, base, n, lang, tag == "" ? "" : "." tag)
        printf "" > name; print file ":" line > (name ".where"); close(name ".where")
        inblock = 1
    }
    function unroff(s) {
        gsub(/\\-/, "-", s); gsub(/\\\(dq/, "\"", s); gsub(/\\e/, "\\", s)
        gsub(/\\&/, "", s); return s
    }
    man && /^\.SH/ { examples = ($0 ~ /^\.SH +"?EXAMPLES?"?/) }
    man && /^\.\\" docs-test: / { tag = $3; next }
    man && examples && /^\.nf/ { start("sh", tag, NR); tag = ""; next }
    man && inblock && /^\.fi/ { inblock = 0; close(name); next }
    man && inblock { print unroff($0) >> name; next }
    !man && !inblock && /^```(sh|lua)( |$)/ {
        lang = substr($1, 4); start(lang, $2, NR); next
    }
    !man && inblock && /^```/ { inblock = 0; close(name); next }
    !man && inblock { print >> name }
    ' man="$2" "$1"
}
for f in "$SRC"/README.md "$SRC"/docs/*.md; do extract "$f" 0; done
for f in "$SRC"/fs/*.8 "$SRC"/guest/*.8 "$SRC"/lua/*.[17] "$SRC"/contrib/*.1; do
    extract "$f" 1
done

cat >"$T/prelude.sh" <<'SH'
set -e -o pipefail
__interactive() { # a command that follows a live stream: Ctrl-C ends it
    local rc=0
    timeout -s INT 2 "$@" || rc=$?
    [ $rc = 0 ] || [ $rc = 124 ] || [ $rc = 130 ]
}
SH

runs=0 checked=0
for b in "$T"/blocks/*; do
    case $b in *.where) continue ;; esac
    where=$(cat "$b.where")
    name=${b##*/}
    lang=${name#*.}
    tag=${lang#*.}
    [ "$tag" = "$lang" ] && tag=
    lang=${lang%%.*}
    if [ -n "$tag" ]; then
        case $tag in
        needs-vm | setup | sketch) ;;
        *) fail "$where: unknown example tag \`$tag\`"; continue ;;
        esac
        if [ "$lang" = sh ]; then
            check "$where ($tag): bash -n" bash -n "$b"
        else
            check "$where ($tag): luac -p" luac5.4 -p "$b"
        fi
        checked=$((checked + 1))
        continue
    fi
    MP=$T/mnt$runs
    start_fs "$FS_BIN" "$MP" || { fail "$where: no mount"; continue; }
    wait_for 10 grep -q "host(up)" "$MP/ctl"
    if [ "$lang" = sh ]; then
        {
            cat "$T/prelude.sh"
            sed -e "s|/run/provium|$MP|g" \
                -e '/#.*Ctrl-C/s/^\([^#]*[^ #]\) *#/__interactive \1 #/' "$b"
        } >"$T/run.sh"
        cmd=(bash "$T/run.sh")
    else
        cmd=(lua5.4 "$b")
    fi
    mkdir -p "$T/cwd$runs"
    (cd "$T/cwd$runs" && PROVIUM_MOUNT=$MP timeout -s KILL 60 setsid "${cmd[@]}" \
        >"$T/out" 2>"$T/err" </dev/null)
    rc=$?
    pkill -KILL -s "$(ps -o sid= -p $$ | tr -d ' ')" -f "$T/run.sh" 2>/dev/null
    if [ $rc -ne 0 ] || [ -s "$T/err" ]; then
        fail "$where ($lang): rc $rc, stderr: $(cat "$T/err")"
        sed 's/^/    | /' "$b" >&2
        log "    stdout: $(head -c 600 "$T/out")"
    else
        ok "$where ($lang): ran clean ($(wc -l <"$T/out") lines of output)"
    fi
    stop_fs "$FS_PID" "$MP" || fail "$where: the mount did not go"
    runs=$((runs + 1))
done
log "docs: $runs examples ran, $checked syntax-checked only"
check "examples were found and run" test "$runs" -ge 8
