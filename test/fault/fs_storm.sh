#!/usr/bin/env bash
# fs_storm.sh - open/close storms leave the daemon as they found it: the
# same fd count (/proc/PID/fd) and RSS within a small bound, no parked
# request left behind (issue 10: "open/close storms with fd count and RSS
# checked before and after"). Each storm runs once to warm up (allocator
# pools, the remembered processes) and is measured on its second run.
. "$(dirname "$0")/lib_fs.sh"

N=1000
no_quarantine
start_fs
: >"$T/f.log"
echo hello >"$T/h.txt"

# A stream per iteration: clone, open it, read the reply, open and close
# its data and log, close the ctl (which closes the stream).
stream_storm() {
    perl -e '
        my ($mp, $file, $n) = @ARGV;
        for (1 .. $n) {
            open(my $c, "<", "$mp/clone") or die "clone: $!\n";
            my $id = <$c>; chomp $id; close $c;
            open(my $ctl, "+<", "$mp/streams/$id/ctl") or die "ctl: $!\n";
            syswrite($ctl, "tail_file host $file start=beginning\n");
            sysread($ctl, my $r, 64);
            $r =~ /^ok 0/ or die "open: $r\n";
            sysread($ctl, $r, 64); # the end of file after the reply
            open(my $d, "<", "$mp/streams/$id/data") or die "data: $!\n";
            open(my $l, "<", "$mp/streams/$id/log") or die "log: $!\n";
            close $d; close $l; close $ctl;
        }' "$MP" "$T/f.log" "$N"
}

# VM commands: exec (remembered processes are capped at 256 per VM),
# agent file handles opened and closed.
vm_storm() {
    perl -e '
        my ($mp, $file, $n) = @ARGV;
        open(my $ctl, "+<", "$mp/vms/host/ctl") or die "ctl: $!\n";
        sub cmd {
            syswrite($ctl, "$_[0]\n");
            my $r = "";
            while (sysread($ctl, my $b, 4096)) { $r .= $b }
            return $r;
        }
        for (1 .. $n) {
            cmd("exec -- true") =~ /^ok \d+\n(\d+)/ or die "exec\n";
            cmd("wait $1") =~ /^ok/ or die "wait\n";
            cmd("open $file read") =~ /^ok \d+\n(\d+)/ or die "open\n";
            my $h = $1;
            cmd("read $h 10") =~ /^ok/ or die "read\n";
            cmd("close $h") =~ /^ok/ or die "close\n";
        }' "$MP" "$T/h.txt" 300
}

# Readers killed while parked on a quiet stream's data.
reader_storm() {
    local i p
    for i in $(seq 1 50); do
        cat "$MP/streams/$KEEP/data" >/dev/null 2>&1 &
        p=$!
        wait_for 5 eval 'grep -q "^parked: [1-9]" "$MP/ctl"' || return 1
        kill -9 "$p"
        wait "$p" 2>/dev/null
    done
    wait_for 5 eval 'grep -q "^parked: 0$" "$MP/ctl"'
}

measure() { # measure LABEL COMMAND...
    local label=$1 rss0 fds0 rss1 fds1
    shift
    "$@" || fail "$label: warm-up run failed"
    rss0=$(rss_kb "$FS_PID")
    fds0=$(fd_count "$FS_PID")
    "$@" || fail "$label: run failed"
    check "$label: no request left parked" \
        wait_for 5 eval 'grep -q "^parked: 0$" "$MP/ctl"'
    rss1=$(rss_kb "$FS_PID")
    fds1=$(fd_count "$FS_PID")
    log "$label: RSS $rss0 -> $rss1 kB, fds $fds0 -> $fds1"
    check "$label: fd count back to $fds0 ($fds1)" test "$fds1" -eq "$fds0"
    check "$label: RSS grew < 2 MB ($rss0 -> $rss1 kB)" \
        test $((rss1 - rss0)) -lt 2048
}

measure "$N streams opened and closed" stream_storm
check "no stream left" grep -q "^streams: 0$" "$MP/ctl"
measure "300 execs and 300 handles" vm_storm
check "at most 256 processes remembered" \
    test "$(ls "$MP/vms/host/procs" | wc -l)" -le 256
check "no handle left open" grep -q "^handles: 0$" "$MP/vms/host/info"
new_stream 4 "tail_file host $T/f.log keep" || exit 1
KEEP=$ID
measure "50 readers killed while parked" reader_storm
exec 4>&-
