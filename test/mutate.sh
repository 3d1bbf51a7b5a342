#!/usr/bin/env bash
# mutate.sh - does the suite notice when the behaviour breaks?
#
#   test/mutate.sh [--list] [--keep] [--fuzz] [NAME...]
#
# Plants each bug below, one at a time, in a scratch copy of the source
# tree (the working tree as it is, uncommitted changes included; nothing
# in it is touched), rebuilds, and runs the tests that guard that
# behaviour. A mutant the tests do not fail on ("survived") is a hole in
# the suite; a mutant whose text no longer matches the source ("stale")
# means the list must follow the code. Exit status 1 if any mutant
# survived or was stale, else 0.
#
#   --list   print the mutants and exit
#   --keep   keep the scratch tree (its path is printed)
#   --fuzz   also run the mutants checked by a fuzz target on its corpus
#            (needs clang; builds a libFuzzer tree as well)
#   NAME...  only these mutants
#
# Needs what the guarded tests need (root, /dev/fuse; docs/testing.md).
# Takes about 5 minutes on 2 CPUs (the 30 s slot reclaim dominates); not
# run by CI: run it before a release and after changing a test.
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
jobs=$(nproc 2>/dev/null || echo 2)
KEEP= FUZZ= LIST=
ONLY=()
for a in "$@"; do
    case $a in
    --keep) KEEP=1 ;;
    --fuzz) FUZZ=1 ;;
    --list) LIST=1 ;;
    -h | --help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "mutate.sh: unknown option $a" >&2; exit 2 ;;
    *) ONLY+=("$a") ;;
    esac
done

# ---- the mutants ---------------------------------------------------
# mutant NAME FILE CHECK FROM TO WHY
#   CHECK is a ctest -R regex, or fuzz:TARGET (run on its corpus).
#   FROM must occur exactly once in FILE; it is replaced by TO.
NAMES=()
declare -A M_FILE M_CHECK M_FROM M_TO M_WHY
mutant() {
    NAMES+=("$1")
    M_FILE[$1]=$2 M_CHECK[$1]=$3 M_FROM[$1]=$4 M_TO[$1]=$5 M_WHY[$1]=$6
}

mutant park-eintr-is-eof fs/park.c '^(fs_data|fs_ctl)$' \
    'fuse_reply_err(req, EINTR);' 'fuse_reply_buf(req, NULL, 0);' \
    "an interrupted parked read is answered end of file, not EINTR"
mutant ctl-poll-always-ready fs/ctl.c '^fs_poll$' \
    'bool ready = !c->head || c->head->done || c->eof_pending;' \
    'bool ready = true;' \
    "poll on a ctl file always says readable"
mutant ctl-nonblock-ignored fs/ctl.c '^fs_poll$' \
    'if (waiting && (flags & O_NONBLOCK)) {' 'if (0) {' \
    "O_NONBLOCK ignored on ctl: the read waits instead of EAGAIN"
mutant ctl-no-eof-after-reply fs/ctl.c '^fs_ctl$' \
    $'            c->off = 0;\n            c->eof_pending = true;' \
    $'            c->off = 0;' \
    "no end of file after a reply read to its end"
mutant data-nonblock-ignored fs/data.c '^fs_poll$' \
    $'    if (flags & O_NONBLOCK) {\n        fuse_reply_err(req, EAGAIN);' \
    $'    if (0) {\n        fuse_reply_err(req, EAGAIN);' \
    "O_NONBLOCK ignored on data"
mutant data-poll-always-ready fs/data.c '^fs_poll$' \
    'bool ready = stream_reader_ready(d->rd);' 'bool ready = true;' \
    "poll on data always says readable"
mutant reclaim-3s fs/fs.h '^fs_lifetime$' \
    '#define FS_SLOT_RECLAIM (30 * USEC_PER_SEC)' \
    '#define FS_SLOT_RECLAIM (3 * USEC_PER_SEC)' \
    "an unopened clone slot is reclaimed after 3 s, not 30 s"
mutant reclaim-not-rearmed fs/slot.c '^fs_lifetime$' \
    $'    slot_clear(sl);\n    arm_reclaim(sl);' $'    slot_clear(sl);' \
    "a slot whose open failed is never reclaimed"
mutant slot-timeout-ignored fs/slot.c '^fs_lifetime$' \
    $'    if (reactor_timer_start(fs->r, &sl->reclaim,\n                            clock_now() + fs->opt->slot_timeout,' \
    $'    if (reactor_timer_start(fs->r, &sl->reclaim,\n                            clock_now() + FS_SLOT_RECLAIM,' \
    "--slot-timeout ignored for new slots"
mutant owner-release-keeps-stream fs/slot.c '^fs_lifetime$' \
    $'        if (!sl->keep)\n            slot_close(sl);' $'        (void)0;' \
    "the owner's close (or death) does not close its stream"
mutant history-limit-ignored fs/slot.c '^fs_limit$' \
    '.history_limit = fs->opt->history_limit,' '.history_limit = 0,' \
    "--history-limit ignored for streams opened through the mount"
mutant usage-line-dropped streams/command.c '^(engine|fs_usage)$' \
    'command_usage(e, "too many arguments", err);' \
    'snprintf(err, COMMAND_ERR_LEN, "%s: too many arguments", e->name);' \
    "a wrong argument count is refused without the command's usage line"
mutant keep-reaches-the-engine streams/engine.c '^(engine|fs_lifetime)$' \
    '        } else if (word_is(w, "keep")) {' \
    '        } else if (0 && word_is(w, "keep")) {' \
    "keep is handed to the engine instead of the slot"
mutant reader-error-swallowed streams/stream.c '^fs_limit$' \
    'if (s->end_err && !rd->err_reported) {' 'if (0) {' \
    "a data reader of a stream that ended with an error gets a clean EOF"
mutant ended-stream-no-eof streams/stream.c '^(fs_data|lua)$' \
    'return rd->off < spool_size(s->sp) || s->state != STREAM_LIVE;' \
    'return rd->off < spool_size(s->sp) || s->state == STREAM_CLOSED;' \
    "readers waiting when a stream ends (not closed) never get end of file"
mutant reader-skips-a-byte streams/stream.c '^fs_data$' \
    $'        if (n > 0)\n            rd->off += (uint64_t)n;' \
    $'        if (n > 1)\n            rd->off += (uint64_t)n + 1;\n        else if (n > 0)\n            rd->off += (uint64_t)n;' \
    "a data reader loses a byte after each read of more than one"
mutant eof-ignores-pending streams/stream.c '^(lua|stream)$' \
    'bool eof = s->state != STREAM_LIVE && s->cur == size;' \
    'bool eof = s->state != STREAM_LIVE;' \
    "eof is true while bytes are still pending"
mutant next-repeats-a-byte streams/stream.c '^(fs_ctl|fs_data|lua)$' \
    '(rc = reply_new_range(s, s->cur, end, &rp)) < 0) {' \
    '(rc = reply_new_range(s, s->cur - (s->cur > 0), end, &rp)) < 0) {' \
    "next returns one byte before the pending ones (status ok, bytes wrong)"
mutant ties-to-the-higher-index streams/scan.c '^(scan|stream|lua)$' \
    '(to == sc->best_to && id < sc->best)' \
    '(to == sc->best_to && id > sc->best)' \
    "two alternatives ending at the same byte: the higher index wins"
mutant peek-consumes streams/stream.c '^(stream|lua|fs_match)$' \
    'if (rc == 0 && op->kind != STREAM_OP_PEEK)' 'if (rc == 0)' \
    "peek moves the cursor past the match"
mutant printk-end-unmapped streams/scan.c '^(stream|fs_match)$' \
    '    m->end = (last == PATTERN_UNKNOWN ? sc->best_to - 1 + sc->delta : last) + 1;' \
    '    m->end = sc->best_to + 0 * last;' \
    "with skip=printk the op consumes up to the filtered offset, not the raw one"
mutant skip-printk-dropped streams/stream.c '^(stream|fs_match|lua)$' \
    '        op->scan_opts = spec->scan_opts;' '        op->scan_opts = 0;' \
    "skip=printk parsed but not handed to the op's scanner"
mutant append-feed-drops-the-frame streams/stream.c '^stream$' \
    '    rc = scan_feed(op->sc, buf, len, &op->m);' '    rc = 0;' \
    "a frame appended while the op waits is not fed to its scanner"
mutant alternative-off-by-one streams/stream.c '^(stream|fs_match|lua)$' \
    'fprintf(f, "%u ", m->index + 1);' 'fprintf(f, "%u ", m->index);' \
    "the reply names the alternative 0-based"
mutant compile-on-the-reactor streams/pattern.c '^stream$' \
    $'    if (!set_has_regex(ps))\n        goto at_once; /* literals build in milliseconds */' \
    $'    if (1)\n        goto at_once;' \
    "regex sets are compiled on the reactor thread, stalling the daemon"
mutant creation-site-off-by-one lua/provium.lua '^lua$' \
    'return { file = src, line = info.currentline }' \
    'return { file = src, line = info.currentline + 1 }' \
    "creation_site() one line off"
mutant agent-output-unbounded guest/host.c '^agent$' \
    $'if (TAILQ_EMPTY(&s->queue) || outq_high(&s->out))\n            break;\n        while (!TAILQ_EMPTY(&s->queue) && !outq_high(&s->out)) {' \
    $'if (TAILQ_EMPTY(&s->queue))\n            break;\n        while (!TAILQ_EMPTY(&s->queue)) {' \
    "the agent reads its sources for a host that does not read"
mutant agent-send-loop-ignores-mark guest/host.c '^agent$' \
    'while (!TAILQ_EMPTY(&s->queue) && !outq_high(&s->out)) {' \
    'while (!TAILQ_EMPTY(&s->queue)) {' \
    "the agent's send loop ignores its output mark"
mutant table-takes-trailing-bytes streams/proto.c '^proto$' \
    $'    if (proto_get_done(&r) < 0)\n        return -EPROTO;\n    return bad;' \
    $'    return bad;' \
    "a body with bytes after its last field is taken (the message table)"
# Checked by a fuzz target on its corpus (--fuzz).
mutant decoder-resume-overwrites streams/proto.c fuzz:proto \
    'memcpy(d->body + d->body_have, in + pos, n);' \
    'memcpy(d->body, in + pos, n);' \
    "a body split across reads is reassembled wrongly"
mutant agent-credit-ignored guest/host.c fuzz:agent \
    'size_t n = ch->credit < PROTO_MAX_DATA ? ch->credit : PROTO_MAX_DATA;' \
    'size_t n = ch->credit ? PROTO_MAX_DATA : 0;' \
    "the agent sends data beyond the host's credit"
mutant ctl-ties-to-the-higher-index streams/scan.c fuzz:ctl \
    '(to == sc->best_to && id < sc->best)' \
    '(to == sc->best_to && id > sc->best)' \
    "two alternatives ending at the same byte: the higher index wins (the ctl model)"
mutant ctl-eof-ignores-pending streams/stream.c fuzz:ctl \
    'bool eof = s->state != STREAM_LIVE && s->cur == size;' \
    'bool eof = s->state != STREAM_LIVE;' \
    "eof is true while bytes are still pending (the ctl model)"

if [ -n "$LIST" ]; then
    for n in "${NAMES[@]}"; do
        printf '%-28s %-18s %-22s %s\n' "$n" "${M_FILE[$n]}" "${M_CHECK[$n]}" \
            "${M_WHY[$n]}"
    done
    exit 0
fi

# ---- the scratch tree ------------------------------------------------
S=$(mktemp -d /tmp/provium-mutate.XXXXXX)
CHILD=
cleanup() {
    # Interrupted: stop the tests running in the scratch tree first.
    [ -n "$CHILD" ] && kill "$CHILD" 2>/dev/null
    [ -d "$S/build/test-run" ] &&
        bash "$S/src/test/sweep.sh" "$S/build/test-run" --all 2>/dev/null
    if [ -n "$KEEP" ]; then
        echo "mutate.sh: scratch tree kept in $S"
    else
        rm -rf --one-file-system "$S"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# in_scratch DIR CMD...: run CMD in DIR as a child the cleanup can stop.
in_scratch() {
    local dir=$1 rc
    shift
    (cd "$dir" && exec "$@") &
    CHILD=$!
    wait "$CHILD"
    rc=$?
    CHILD=
    return $rc
}
log() { printf 'mutate: %s\n' "$*" >&2; }

log "copying the tree to $S/src"
mkdir -p "$S/src"
tar -C "$top" --exclude=./build --exclude=./.git -cf - . | tar -C "$S/src" -xf - ||
    exit 1
log "building $S/build"
cmake -S "$S/src" -B "$S/build" >/dev/null || exit 1
cmake --build "$S/build" -j "$jobs" >"$S/build.log" 2>&1 ||
    { log "the unmutated tree does not build (see $S/build.log)"; KEEP=1; exit 1; }
if [ -n "$FUZZ" ]; then
    log "building $S/fuzz (clang, libFuzzer)"
    CC=clang cmake -S "$S/src" -B "$S/fuzz" -DPROVIUM_FUZZ=ON \
        -DCMAKE_C_COMPILER=clang >/dev/null || exit 1
fi

selected() { [ ${#ONLY[@]} -eq 0 ] || [[ " ${ONLY[*]} " == *" $1 "* ]]; }

# Every guarded test passes unmutated: otherwise a kill proves nothing.
checks=()
for n in "${NAMES[@]}"; do
    selected "$n" && [[ "${M_CHECK[$n]}" != fuzz:* ]] &&
        checks+=("${M_CHECK[$n]}")
done
all=$(printf '%s|' "${checks[@]}")
all=${all%|}
log "baseline: the guarded tests pass on the unmutated tree"
if [ -n "$all" ] && ! PROVIUM_REQUIRE_ALL=0 in_scratch "$S/build" ctest -R "$all" \
    --output-on-failure >"$S/baseline.log" 2>&1; then
    log "baseline failed (see $S/baseline.log): fix the suite first"
    KEEP=1
    exit 1
fi

# ---- one mutant at a time ----------------------------------------------
killed=() survived=() stale=() skipped=()
for n in "${NAMES[@]}"; do
    selected "$n" || continue
    check=${M_CHECK[$n]}
    if [[ "$check" == fuzz:* ]] && [ -z "$FUZZ" ]; then
        skipped+=("$n")
        continue
    fi
    f=$S/src/${M_FILE[$n]}
    cp "$f" "$S/orig"
    if ! FROM=${M_FROM[$n]} TO=${M_TO[$n]} perl -0777 -i -pe \
        'BEGIN { $c = 0 } $c += s/\Q$ENV{FROM}\E/$ENV{TO}/g; END { exit($c == 1 ? 0 : 3) }' \
        "$f"; then
        log "$n: STALE (its text is not in ${M_FILE[$n]} exactly once)"
        stale+=("$n")
        cp "$S/orig" "$f"
        continue
    fi
    t0=$(date +%s)
    if [[ "$check" == fuzz:* ]]; then
        target=fuzz_${check#fuzz:}
        if ! cmake --build "$S/fuzz" -j "$jobs" --target "$target" \
            >"$S/$n.build.log" 2>&1; then
            log "$n: STALE (does not build, see $S/$n.build.log)"
            stale+=("$n")
            cp "$S/orig" "$f"
            continue
        fi
        "$S/fuzz/test/$target" -runs=0 -artifact_prefix="$S/$n." \
            "$S/src/test/fuzz/corpus/${check#fuzz:}" >"$S/$n.log" 2>&1
        rc=$?
    else
        if ! cmake --build "$S/build" -j "$jobs" >"$S/$n.build.log" 2>&1; then
            log "$n: STALE (does not build, see $S/$n.build.log)"
            stale+=("$n")
            cp "$S/orig" "$f"
            continue
        fi
        PROVIUM_REQUIRE_ALL=0 in_scratch "$S/build" ctest -R "$check" \
            --output-on-failure >"$S/$n.log" 2>&1
        rc=$?
    fi
    dt=$(($(date +%s) - t0))
    if [ $rc -ne 0 ]; then
        log "$n: killed by $check in ${dt} s"
        killed+=("$n")
    else
        log "$n: SURVIVED $check (${M_WHY[$n]}; see $S/$n.log)"
        survived+=("$n")
        KEEP=1
    fi
    cp "$S/orig" "$f"
done
# Leave the build matching the source (for --keep).
cmake --build "$S/build" -j "$jobs" >/dev/null 2>&1

log "${#killed[@]} killed, ${#survived[@]} survived, ${#stale[@]} stale${skipped:+, ${#skipped[@]} not run (--fuzz)}"
[ ${#survived[@]} -eq 0 ] && [ ${#stale[@]} -eq 0 ]
