# bash completion for proviumfs, provium and provium-vm (installed once
# per command under share/bash-completion/completions, where
# bash-completion loads it on demand).

# The mount a provium command line names: -m/--mount, else
# $PROVIUM_MOUNT, else /run/provium.
_provium_mount() {
    local i
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
        -m | --mount) echo "${COMP_WORDS[i + 1]}"; return ;;
        --mount=*) echo "${COMP_WORDS[i]#--mount=}"; return ;;
        esac
    done
    echo "${PROVIUM_MOUNT:-/run/provium}"
}

# Names of the entries of a directory under the mount.
_provium_names() {
    local d=$1 p
    for p in "$d"/*; do
        [ -e "$p" ] && printf '%s\n' "${p##*/}"
    done
}

_proviumfs() {
    local cur prev words cword
    _init_completion || return
    case $prev in
    --spool-dir) _filedir -d; return ;;
    --agent) _filedir; return ;;
    --history-limit | --vm) return ;;
    -o)
        COMPREPLY=($(compgen -W "allow_other allow_root auto_unmount
            default_permissions" -- "$cur"))
        return ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "-f -d -o --spool-dir --history-limit
            --no-host --agent --vm --help --version" -- "$cur"))
        return
    fi
    _filedir -d
}

_provium() {
    local cur prev words cword i cmd="" sub="" n=0 m
    _init_completion || return
    m=$(_provium_mount)
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in
        -m | --mount) ((i++)) ;;
        -*) ;;
        *)
            if [ -z "$cmd" ]; then cmd=${words[i]}
            else ((n++)); [ $n = 1 ] && sub=${words[i]}; fi ;;
        esac
    done
    case $prev in
    -m | --mount) _filedir -d; return ;;
    --timeout | --cwd | --env) return ;;
    esac
    if [ -z "$cmd" ]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "-m --mount --json --help --version" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "ls status info open follow close run vm
                read_until expect peek version help" -- "$cur"))
        fi
        return
    fi
    case $cmd in
    info | follow | close)
        [ $n = 0 ] && COMPREPLY=($(compgen -W "$(_provium_names "$m/streams")" -- "$cur")) ;;
    read_until | expect | peek)
        case $prev in
        --skip) COMPREPLY=($(compgen -W "printk none" -- "$cur")) ;;
        -t | --timeout | -ex | -re | -re/*) ;;
        *)
            if [ $n = 0 ]; then
                COMPREPLY=($(compgen -W "$(_provium_names "$m/streams")" -- "$cur"))
            elif [[ $cur == -* ]]; then
                COMPREPLY=($(compgen -W "-t --skip -ex -re -re/i" -- "$cur"))
            fi ;;
        esac ;;
    open)
        case $n in
        0) COMPREPLY=($(compgen -W "- $(_provium_names "$m/vms")" -- "$cur")) ;;
        1)
            if [ "$sub" = - ]; then COMPREPLY=($(compgen -W capture -- "$cur"))
            else COMPREPLY=($(compgen -W "tail_file file_tail_stream fd_stream
                proc_stdout_stream proc_stderr_stream console" -- "$cur")); fi ;;
        2) [ "$prev" = capture ] &&
            COMPREPLY=($(compgen -W "$(_provium_names /sys/class/net)" -- "$cur")) ||
            _filedir ;;
        *) COMPREPLY=($(compgen -W "start=beginning start=end site= test= kind=
                snaplen= filter=" -- "$cur")); compopt -o nospace ;;
        esac ;;
    run)
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "--timeout --cwd --env --" -- "$cur"))
        elif [ $n = 0 ]; then
            COMPREPLY=($(compgen -W "$(_provium_names "$m/vms")" -- "$cur"))
        else
            COMPREPLY=($(compgen -c -- "$cur"))
        fi ;;
    vm)
        case $n in
        0) COMPREPLY=($(compgen -W "list add del" -- "$cur")) ;;
        1) [ "$sub" = del ] &&
            COMPREPLY=($(compgen -W "$(_provium_names "$m/vms")" -- "$cur")) ;;
        *) [ "$sub" = add ] && {
            COMPREPLY=($(compgen -W "agent=unix: agent=vsock: console= nic=" -- "$cur"))
            compopt -o nospace; } ;;
        esac ;;
    ls | status)
        COMPREPLY=($(compgen -W "--json" -- "$cur")) ;;
    esac
}

_provium_vm() {
    local cur prev words cword root
    _init_completion || return
    root=${PROVIUM_VM_DIR:-/run/provium-vm}
    case $prev in
    --image | --mount) _filedir -d; return ;;
    --accel) COMPREPLY=($(compgen -W "kvm tcg" -- "$cur")); return ;;
    --mem | --bridge | --netns | --append | --wait | --grace) return ;;
    esac
    if [ "$cword" = 1 ]; then
        COMPREPLY=($(compgen -W "start stop list show dir" -- "$cur"))
    elif [ "$cword" = 2 ]; then
        case ${words[1]} in
        stop | show | dir)
            COMPREPLY=($(compgen -W "$(_provium_names "$root")" -- "$cur")) ;;
        esac
    elif [[ $cur == -* ]]; then
        case ${words[1]} in
        start) COMPREPLY=($(compgen -W "--image --mem --mount --bridge --netns
            --accel --append --serial2 --wait" -- "$cur")) ;;
        stop) COMPREPLY=($(compgen -W "--grace" -- "$cur")) ;;
        esac
    fi
}

complete -F _proviumfs proviumfs
complete -F _provium provium
complete -F _provium_vm provium-vm
