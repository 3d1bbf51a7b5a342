# lib_fs.sh - helpers for the daemon/mount fault tests (test/fault/fs_*.sh),
# sourced after test/integration/lib.sh (which mounts, cleans up and
# counts failures). Everything here is bash and perl-base: nothing that a
# fresh Debian 12 lacks.

. "$(dirname "${BASH_SOURCE[0]}")/../integration/lib.sh"

FS_CLEANUPS=()
# Run our cleanups, then lib.sh's teardown with the test's status.
trap 'rc_=$?; for c_ in "${FS_CLEANUPS[@]}"; do eval "$c_"; done; (exit $rc_); teardown' EXIT

# rss_kb PID / fd_count PID: what the daemon holds. Under ASan freed
# memory sits in a quarantine (256 MB by default) and RSS only grows:
# tests that measure RSS call no_quarantine before start_fs, so that
# freed memory is reused as in a release build (a release build ignores
# ASAN_OPTIONS).
no_quarantine() {
    export ASAN_OPTIONS="${ASAN_OPTIONS:-}:quarantine_size_mb=0:thread_local_quarantine_size_kb=0"
}
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
fd_count() { ls "/proc/$1/fd" | wc -l; }

# A user of our own for the permission tests, removed at exit. The mount
# point's parents must be traversable by it (mktemp dirs are 0700).
make_user() { # make_user VAR: create a user, its name in VAR
    local name=pvfs$$${RANDOM}
    name=${name:0:30}
    if ! useradd -M -N -s /bin/sh "$name" 2>"$T/useradd.err"; then
        log "useradd failed: $(cat "$T/useradd.err")"
        exit 1
    fi
    FS_CLEANUPS+=("pkill -9 -u $name 2>/dev/null; userdel $name 2>/dev/null")
    printf -v "$1" '%s' "$name"
    chmod 755 "$T"
}

# as USER COMMAND: run a shell command as USER, stdout and stderr merged.
as() { runuser -u "$1" -- bash -c "$2" 2>&1; }

# An agent of our own on a Unix socket (a second VM), started by root.
start_agent() { # start_agent SOCKETPATH
    "$AGENT_BIN" --listen "unix:$1" --spool-dir "$T/spool" 2>>"$T/agent.err" &
    PIDS+=($!)
    AGENT_PID=$!
    wait_for 5 test -S "$1"
}

# vm_add FD NAME ARGS...: `vm add` on the global ctl open on FD, waiting
# for the agent to be up.
vm_add() {
    local fd=$1 name=$2
    shift 2
    ctl_cmd "$fd" "vm add $name $*"
    [ "$STATUS" = ok ] || { log "vm add $name: $STATUS $PAYLOAD"; return 1; }
    wait_for 5 grep -q "^agent_state: up" "$MP/vms/$name/info"
}

# open_reply FD OPEN-COMMAND: write an open command to a fresh slot's ctl
# (opened on FD), read the reply into STATUS/PAYLOAD.
open_reply() {
    local fd=$1
    ID=$(cat "$MP/clone")
    eval "exec $fd<>\"\$MP/streams/\$ID/ctl\""
    ctl_cmd "$fd" "$2"
}

# ctl_cmd1 FD COMMAND: as ctl_cmd, but the command goes in one write(2)
# whatever its size (bash's printf splits writes at 56 KiB).
ctl_cmd1() {
    local fd=$1 line len
    perl -e 'defined syswrite(STDOUT, "$ARGV[0]\n") or exit 1' "$2" >&"$fd" ||
        { STATUS=write-failed; PAYLOAD=; return 1; }
    IFS= read -r line <&"$fd"
    STATUS=${line% *}
    len=${line##* }
    PAYLOAD=$(head -c "$len" <&"$fd")
    read_eof "$fd"
}

# write_errno FD COMMAND: one write(2); prints "ok" or the errno text.
write_errno() {
    perl -e 'print STDERR defined syswrite(STDOUT, "$ARGV[0]\n") ? "ok\n"
                                                                 : "$!\n"' \
        "$2" 2>&1 >&"$1"
}

# write_count FILE SIZE: one write(2) of SIZE bytes; prints the count
# the kernel returned, or the errno text.
write_count() {
    perl -e 'open(my $f, ">>", $ARGV[0]) or die "$!\n";
             my $n = syswrite($f, "w" x $ARGV[1]);
             print defined $n ? "$n\n" : "$!\n"' "$1" "$2"
}

# A console peer: a Unix socket server that accepts one client and reads
# nothing until the test opens the FIFO $T/drain for writing (release_peer),
# then reads everything into $T/console.in until the client goes.
start_console_peer() { # start_console_peer SOCKETPATH
    rm -f "$T/drain"
    mkfifo "$T/drain"
    perl -MIO::Socket::UNIX -e '
        my ($path, $drain, $out) = @ARGV;
        unlink $path;
        my $srv = IO::Socket::UNIX->new(Local => $path, Listen => 1)
            or die "listen: $!\n";
        my $c = $srv->accept or die "accept: $!\n";
        open(my $g, "<", $drain) or die "$drain: $!\n"; # blocks: the signal
        open(my $f, ">", $out) or die "$!\n";
        binmode $f;
        $| = 1;
        while (1) {
            my $n = sysread($c, my $buf, 65536);
            last unless $n;
            syswrite($f, $buf);
        }' "$1" "$T/drain" "$T/console.in" 2>>"$T/peer.err" &
    PIDS+=($!)
    PEER_PID=$!
    wait_for 5 test -S "$1"
}
release_peer() { : >"$T/drain"; }

# A relay between the daemon and an agent: listens on $1, connects each
# client to the agent socket $2. Killing it breaks the host's connection
# while the agent lives on (the agent then accepts the next host).
start_relay() { # start_relay LISTENPATH AGENTPATH
    perl -MIO::Socket::UNIX -MIO::Select -e '
        my ($path, $target) = @ARGV;
        unlink $path;
        my $srv = IO::Socket::UNIX->new(Local => $path, Listen => 1)
            or die "listen: $!\n";
        while (my $c = $srv->accept) {
            my $t = IO::Socket::UNIX->new(Peer => $target) or die "$!\n";
            my $sel = IO::Select->new($c, $t);
            LOOP: while (1) {
                for my $fh ($sel->can_read) {
                    my $n = sysread($fh, my $buf, 65536);
                    last LOOP unless $n;
                    my $to = $fh == $c ? $t : $c;
                    for (my $o = 0; $o < $n;) {
                        my $w = syswrite($to, $buf, $n - $o, $o);
                        last LOOP unless $w;
                        $o += $w;
                    }
                }
            }
            close $c;
            close $t;
        }' "$1" "$2" 2>>"$T/relay.err" &
    PIDS+=($!)
    RELAY_PID=$!
    wait_for 5 test -S "$1"
}

# A fake agent speaking protocol version $PROTO_VERSION: its hello_ok
# names the kernel $2 (any bytes: a hostile guest), exec gets the error
# "exec: too many processes (max 1024)" (an agent that prefixes its own
# messages), every other request an error "fake agent".
PROTO_VERSION=2
start_fake_agent() { # start_fake_agent SOCKETPATH KERNEL
    perl -MIO::Socket::UNIX -e '
        my ($path, $kernel, $version) = @ARGV;
        unlink $path;
        my $srv = IO::Socket::UNIX->new(Local => $path, Listen => 1)
            or die "listen: $!\n";
        sub rd {
            my ($fh, $n) = @_;
            my $b = "";
            while (length($b) < $n) {
                my $r = sysread($fh, $b, $n - length($b), length($b));
                return undef unless $r;
            }
            return $b;
        }
        sub frame {
            my ($fh, $type, $ch, $body) = @_;
            syswrite($fh, pack("VCV", length($body), $type, $ch) . $body);
        }
        sub str { pack("v", length($_[0])) . $_[0] }
        while (my $c = $srv->accept) {
            while (defined(my $h = rd($c, 9))) {
                my ($len, $type, $ch) = unpack("VCV", $h);
                my $body = $len ? rd($c, $len) : "";
                last unless defined $body;
                if ($type == 1) {
                    frame($c, 64, 0, pack("VV", 0x4d565250, $version)
                        . str("Linux") . str($kernel) . str("fake")
                        . pack("Q<", 7));
                } elsif ($type == 7) {
                    frame($c, 69, $ch, pack("V", 11)
                        . str("exec: too many processes (max 1024)"));
                } elsif ($type >= 8 && $type <= 17) {
                    frame($c, 69, $ch, pack("V", 5) . str("fake agent"));
                }
            }
        }' "$1" "$2" "$PROTO_VERSION" 2>>"$T/fake.err" &
    PIDS+=($!)
    FAKE_PID=$!
    wait_for 5 test -S "$1"
}

# The host agent's pid (the daemon's provium-agent child).
host_agent_pid() { pgrep -P "$FS_PID" -x provium-agent; }

# as_open USER OPEN-COMMAND: USER clones a slot and writes the open
# command; prints "<status>: <payload>".
as_open() {
    runuser -u "$1" -- bash -c '
        id=$(cat "$0/clone") || exit 1
        exec 3<>"$0/streams/$id/ctl" || exit 1
        printf "%s\n" "$1" >&3
        IFS= read -r l <&3 || exit 1
        printf "%s: %s\n" "${l% *}" "$(head -c "${l##* }" <&3)"' \
        "$MP" "$2" 2>&1
}

# as_vmctl USER VM COMMAND: USER writes COMMAND to vms/VM/ctl; prints
# "<status>: <payload>", or the open's error.
as_vmctl() {
    runuser -u "$1" -- bash -c '
        exec 3<>"$0/vms/$1/ctl" || exit 1
        printf "%s\n" "$2" >&3
        IFS= read -r l <&3 || exit 1
        printf "%s: %s\n" "${l% *}" "$(head -c "${l##* }" <&3)"' \
        "$MP" "$2" "$3" 2>&1
}
