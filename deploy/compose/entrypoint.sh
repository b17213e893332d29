#!/bin/sh
# Entrypoint of the multicluster-gateway image: the first argument picks the program.
#   tier1 ARGS...   tier1-gateway (subcommand run by default; `tier1 validate --config ...` works)
#   tier2 ARGS...   tier2-gateway
#   pod ARGS...     a demo pod (python -m gateway_lab.demo_pod); --pod defaults to the hostname,
#                   so every replica of a scaled service has its own name
#   certs ARGS...   the lab certificate generator (python -m certs.generate)
#   help            this text
# Anything else is executed as given.
# For a gateway's run subcommand: without --locality in ARGS, GATEWAY_LOCALITY (REGION/ZONE) or
# else GATEWAY_REGION and GATEWAY_ZONE (Kubernetes fills them from the node's topology labels)
# become --locality; GATEWAY_EXTRA_ARGS (split on spaces) is appended.
set -eu

usage() {
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
}

has_flag() {
    flag=$1
    shift
    for arg in "$@"; do
        case "$arg" in "$flag" | "$flag"=*) return 0 ;; esac
    done
    return 1
}

role="${1:-help}"
[ "$#" -eq 0 ] || shift

case "$role" in
    tier1 | tier2)
        case "${1:-run}" in
            validate | explain | -h | --help | --version) exec "${role}-gateway" "$@" ;;
        esac
        if ! has_flag --locality "$@"; then
            locality="${GATEWAY_LOCALITY:-}"
            if [ -z "$locality" ] && [ -n "${GATEWAY_REGION:-}" ]; then
                locality="${GATEWAY_REGION}/${GATEWAY_ZONE:-}"
            fi
            [ -z "$locality" ] || set -- "$@" --locality "$locality"
        fi
        # Word splitting of GATEWAY_EXTRA_ARGS is intended: it carries several flags.
        # shellcheck disable=SC2086
        exec "${role}-gateway" "$@" ${GATEWAY_EXTRA_ARGS:-}
        ;;
    pod)
        if has_flag --pod "$@"; then
            exec python -m gateway_lab.demo_pod "$@"
        fi
        exec python -m gateway_lab.demo_pod "$@" --pod "$(hostname)"
        ;;
    certs)
        exec python -m certs.generate "$@"
        ;;
    help | -h | --help)
        usage
        ;;
    *)
        exec "$role" "$@"
        ;;
esac
