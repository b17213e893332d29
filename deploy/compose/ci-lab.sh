#!/usr/bin/env bash
# Runs the compose three-cluster lab end to end on this machine (called from .ci/run).
#
#   1. installs docker.io and docker-compose from Debian if missing, starts dockerd if none runs
#   2. builds the base image with debootstrap (no registry), cached by tag across runs
#   3. builds the wheelhouse on the host and the project image from it (pip --no-index), and
#      the Prometheus image (Debian's prometheus package on the same base)
#   4. brings the lab up with the `prometheus` profile and waits until every container is healthy
#   5. the curl scenario: X-CLUSTER-SELECTOR routing to each cluster, cluster-1's page
#      (productpage only), weighted split, /user, HTTPS through Tier-1 with the lab CA as
#      issuer, 301 from a Tier-2's HTTP listener
#   6. scales cluster-2's helloworld-v1 pods from 2 to 3 and waits for the new pod to answer
#      through Tier-1 (the Tier-2 gateway re-resolves the DNS name)
#   7. asks Prometheus for Tier-1's requests by destination_cluster: all three clusters appear
#   8. tears the lab down with `down -v`, also on failure
#
# Exit status: 0 passed; 1 failed (a build, a container or a check); 3 skipped: no Docker engine
# could be started on this machine. Failing containers are failures, never a skip.
#
# Every wait prints a progress line at least every 10 s, and nothing reads the terminal: the
# script runs the same from a terminal, from a pipe and from CI.
#
# Environment (all optional): BASE_IMAGE (default gateway-base:bookworm, built here),
# GATEWAY_IMAGE, PROMETHEUS_IMAGE, DEBIAN_MIRROR, PYTHON (host Python 3.11 for the wheelhouse), LAB_PROJECT,
# LAB_*_PORT (published ports, see docker-compose.yml), LAB_READY_TIMEOUT, LAB_ROUTE_TIMEOUT,
# LAB_DNS_TIMEOUT (seconds), LAB_KEEP_DOCKERD=1 (leave a dockerd started here running).
set -euo pipefail
# Nothing here reads stdin. `timeout` runs its command in a process group of its own, which is a
# background group when the script runs from a terminal: a command that touches a terminal stdin
# there (`docker-compose exec -T` does) is stopped by SIGTTIN until its timeout kills it, which
# made the DNS diagnostic hang for 300 s. So stdin is /dev/null for the whole script.
exec </dev/null

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
COMPOSE_FILE="$HERE/docker-compose.yml"
WHEELS="$HERE/wheels"
PROJECT="${LAB_PROJECT:-gatewaylabci}"
BASE_IMAGE="${BASE_IMAGE:-gateway-base:bookworm}"
BASE_PACKAGES="python3,python3-venv,ca-certificates,curl"
BASE_LABEL="org.multicluster-gateway.base"
GATEWAY_IMAGE="${GATEWAY_IMAGE:-multicluster-gateway:lab}"
PROMETHEUS_IMAGE="${PROMETHEUS_IMAGE:-multicluster-gateway-prometheus:lab}"
READY_TIMEOUT="${LAB_READY_TIMEOUT:-240}"
ROUTE_TIMEOUT="${LAB_ROUTE_TIMEOUT:-90}"
# The Tier-2 gateway re-resolves a name after its TTL clamped to [5 s, 300 s] (ClusterSpec
# dns_refresh_min/max); Docker's DNS answers with TTL 600, so a new pod shows within 300 s.
DNS_TIMEOUT="${LAB_DNS_TIMEOUT:-330}"
SCALE_SERVICE="cluster-2-helloworld-v1"
SCALE_CLUSTER="cluster-2"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/ci-lab.XXXXXX")"
DOCKERD_LOG="${TMPDIR:-/tmp}/ci-lab-dockerd.log"
# A wait prints a progress line once this many seconds have passed since the last line printed:
# with the one-second truncation of $SECONDS and loop rounds of up to about 3 s (a loaded Docker
# answering `inspect` for 54 containers), a line comes at least every 10 s.
PROGRESS_EVERY=5

# Published ports of this run: away from the defaults so a developer's lab can keep running.
export LAB_HTTP_PORT="${LAB_HTTP_PORT:-28080}" LAB_HTTPS_PORT="${LAB_HTTPS_PORT:-28443}"
export LAB_ADMIN_PORT="${LAB_ADMIN_PORT:-25000}"
export LAB_CLUSTER1_HTTP_PORT="${LAB_CLUSTER1_HTTP_PORT:-28081}"
export LAB_CLUSTER2_HTTP_PORT="${LAB_CLUSTER2_HTTP_PORT:-28082}"
export LAB_CLUSTER3_HTTP_PORT="${LAB_CLUSTER3_HTTP_PORT:-28083}"
export LAB_CLUSTER1_ADMIN_PORT="${LAB_CLUSTER1_ADMIN_PORT:-25001}"
export LAB_CLUSTER2_ADMIN_PORT="${LAB_CLUSTER2_ADMIN_PORT:-25002}"
export LAB_CLUSTER3_ADMIN_PORT="${LAB_CLUSTER3_ADMIN_PORT:-25003}"
export LAB_PROMETHEUS_PORT="${LAB_PROMETHEUS_PORT:-29090}"
export GATEWAY_IMAGE PROMETHEUS_IMAGE
# The optional Prometheus service runs too (its profile), and is checked like the rest.
export COMPOSE_PROFILES=prometheus
# The classic builder: it needs no buildx plugin and never contacts a registry for a local base.
export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0

HOSTNAME_="bookinfo.example.com"
HTTP_URL="http://$HOSTNAME_:$LAB_HTTP_PORT"
RESOLVE=(--resolve "$HOSTNAME_:$LAB_HTTP_PORT:127.0.0.1")

STARTED_AT=$SECONDS
STARTED_DOCKERD=""
SKIPPING=""
LAB_UP=""
COMPOSE=()
RESULTS=()

LAST_OUTPUT=$SECONDS
log() {
    printf '[ci-lab %4ds] %s\n' "$((SECONDS - STARTED_AT))" "$*"
    LAST_OUTPUT=$SECONDS
}
fail() {
    log "FAILED: $*"
    exit 1
}
skip() {
    SKIPPING=1
    printf '\n%s\n' "########################################################################"
    printf '%s\n' "## COMPOSE LAB SKIPPED: $*"
    printf '%s\n' "## (exit status 3: no Docker engine here; this is not a pass)"
    printf '%s\n\n' "########################################################################"
    exit 3
}
indent() { sed 's/^/    /'; }
passed() {
    RESULTS+=("PASS  $*")
    log "PASS: $*"
}

# Progress of a wait loop: tick_start before the loop, `tick WHAT` in every round (rounds of at
# most about 3 s); a line is printed once PROGRESS_EVERY seconds have passed since the last line,
# whichever wait or step printed it.
TICK_STARTED=0
tick_start() { TICK_STARTED=$SECONDS; }
tick() {
    if ((SECONDS - LAST_OUTPUT >= PROGRESS_EVERY)); then
        log "  ... $* ($((SECONDS - TICK_STARTED))s so far)"
    fi
}

# with_progress WHAT LOG CMD...: runs CMD (a command or a function; its bound is its own
# `timeout`) in the background with its output appended to LOG, and prints WHAT with LOG's last
# line every PROGRESS_EVERY seconds until it ends. Returns CMD's exit status.
WATCHED=""
with_progress() {
    local what=$1 logfile=$2 rc=0
    shift 2
    "$@" >>"$logfile" 2>&1 &
    WATCHED=$!
    tick_start
    while kill -0 "$WATCHED" 2>/dev/null; do
        tick "$what; last log line: $(tail -n 1 "$logfile" | tr -d '\r' | cut -c 1-100)"
        sleep 1
    done
    wait "$WATCHED" || rc=$?
    WATCHED=""
    return "$rc"
}

# ---- teardown ---------------------------------------------------------------------------------

compose() {
    timeout "${COMPOSE_TIMEOUT:-300}" "${COMPOSE[@]}" -p "$PROJECT" -f "$COMPOSE_FILE" "$@" </dev/null
}

dump_diagnostics() {
    local states name
    states="$(container_states || true)"
    log "diagnostics: container states (name service status health exit-code restarts)"
    indent <<<"$states"
    # Logs of the gateways and of every container that exited, restarted or is unhealthy.
    while read -r name _; do
        log "diagnostics: last log lines of $name"
        docker logs --tail 25 "$name" 2>&1 | indent || true
    done < <(awk '$2 ~ /^(tier|certs)/ || $3 != "running" || $4 == "unhealthy" || $6 > 0' \
        <<<"$states")
}

on_exit() {
    local rc=$?
    set +e
    if [[ -n "$WATCHED" ]]; then
        kill "$WATCHED" 2>/dev/null # a command still running under with_progress (Ctrl-C)
        wait "$WATCHED" 2>/dev/null
    fi
    if [[ $rc -eq 3 && -z "$SKIPPING" ]]; then
        rc=1 # a command that happened to exit 3 is a failure; 3 is reserved for "skipped"
    fi
    if [[ -n "$LAB_UP" ]]; then
        [[ $rc -eq 0 ]] || dump_diagnostics
        log "tearing down: down -v"
        # On a loaded machine Docker can still count a just-removed container as a network's
        # endpoint ("network ... has active endpoints"): then the second `down -v` removes it.
        COMPOSE_TIMEOUT=180 with_progress "down -v" "$WORK/down.log" \
            compose down -v --remove-orphans || {
            log "down -v failed ($(tail -n 1 "$WORK/down.log" | cut -c 1-120)); once more in 5 s"
            sleep 5
            COMPOSE_TIMEOUT=120 with_progress "down -v, second try" "$WORK/down.log" \
                compose down -v --remove-orphans
        } || { log "down -v failed:"; tail -20 "$WORK/down.log"; rc=1; }
        if [[ -n "$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT")" ]]; then
            log "containers of $PROJECT are still present after down -v"
            rc=1
        fi
    fi
    if [[ -n "$STARTED_DOCKERD" && -z "${LAB_KEEP_DOCKERD:-}" ]]; then
        log "stopping the dockerd started by this run (pid $STARTED_DOCKERD)"
        kill "$STARTED_DOCKERD" 2>/dev/null
        tick_start
        for _ in $(seq 30); do
            kill -0 "$STARTED_DOCKERD" 2>/dev/null || break
            tick "waiting for dockerd to stop"
            sleep 1
        done
    fi
    rm -rf "$WORK"
    if [[ ${#RESULTS[@]} -gt 0 ]]; then
        printf '\n[ci-lab] summary (%ds):\n' "$((SECONDS - STARTED_AT))"
        printf '    %s\n' "${RESULTS[@]}"
    fi
    case $rc in
        0) log "compose lab: passed" ;;
        3) log "compose lab: SKIPPED (no Docker engine)" ;;
        *) log "compose lab: FAILED (exit $rc)" ;;
    esac
    exit $rc
}
trap on_exit EXIT
# A signal ends the run through `exit`, so the EXIT trap still tears the lab down.
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- 1. Docker --------------------------------------------------------------------------------

have_compose_cli() {
    if docker compose version >/dev/null 2>&1; then
        COMPOSE=(docker compose)
    elif command -v docker-compose >/dev/null 2>&1; then
        COMPOSE=(docker-compose)
    else
        return 1
    fi
}

install_docker() {
    if command -v dockerd >/dev/null && command -v docker >/dev/null && have_compose_cli; then
        return
    fi
    [[ $(id -u) -eq 0 ]] || skip "docker.io/docker-compose are missing and this is not root"
    log "installing docker.io and docker-compose (Debian packages)"
    export DEBIAN_FRONTEND=noninteractive
    local install=(timeout 600 apt-get install -y -q docker.io docker-compose)
    if ! with_progress "apt-get install" "$WORK/apt.log" "${install[@]}"; then
        with_progress "apt-get update" "$WORK/apt.log" timeout 300 apt-get update -q || true
        with_progress "apt-get install" "$WORK/apt.log" "${install[@]}" ||
            { tail -20 "$WORK/apt.log"; skip "apt-get could not install docker.io/docker-compose"; }
    fi
    have_compose_cli || skip "no compose CLI after installing docker-compose"
}

start_dockerd() {
    if timeout 20 docker info >/dev/null 2>&1; then
        log "using the running Docker engine"
        return
    fi
    [[ $(id -u) -eq 0 ]] || skip "no Docker engine runs and this is not root (cannot start dockerd)"
    log "starting dockerd (log: $DOCKERD_LOG)"
    dockerd >"$DOCKERD_LOG" 2>&1 &
    STARTED_DOCKERD=$!
    tick_start
    for _ in $(seq 60); do
        if timeout 5 docker info >/dev/null 2>&1; then
            log "dockerd is up (pid $STARTED_DOCKERD)"
            return
        fi
        kill -0 "$STARTED_DOCKERD" 2>/dev/null || break
        tick "waiting for dockerd to answer"
        sleep 1
    done
    local why="gave no answer within 60 s"
    kill -0 "$STARTED_DOCKERD" 2>/dev/null || why="exited"
    echo "---- last lines of $DOCKERD_LOG ----"
    tail -25 "$DOCKERD_LOG" || true
    kill "$STARTED_DOCKERD" 2>/dev/null || true
    STARTED_DOCKERD=""
    skip "dockerd could not be started on this machine (it $why)"
}

# ---- 2. base image ----------------------------------------------------------------------------

debian_mirror() {
    if [[ -n "${DEBIAN_MIRROR:-}" ]]; then
        echo "$DEBIAN_MIRROR"
        return
    fi
    local found=""
    if compgen -G "/etc/apt/sources.list.d/*.sources" >/dev/null; then
        # deb822 stanzas: the URIs of the first stanza whose Suites include bookworm.
        found="$(awk '/^URIs:/ {u=$2} /^Suites:/ && / bookworm( |$)/ {print u; exit}' \
            /etc/apt/sources.list.d/*.sources)"
    fi
    if [[ -z "$found" && -f /etc/apt/sources.list ]]; then
        found="$(awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' /etc/apt/sources.list)"
    fi
    echo "${found:-http://deb.debian.org/debian}"
}

build_base_image() {
    local spec="bookworm minbase $BASE_PACKAGES"
    local have
    have="$(docker image inspect -f "{{index .Config.Labels \"$BASE_LABEL\"}}" "$BASE_IMAGE" \
        2>/dev/null || true)"
    if [[ "$have" == "$spec" ]]; then
        log "base image $BASE_IMAGE is cached ($spec)"
        return
    fi
    if [[ "$BASE_IMAGE" != gateway-base:* ]]; then
        docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 ||
            fail "BASE_IMAGE=$BASE_IMAGE is not present and only gateway-base:* is built here"
        log "using base image $BASE_IMAGE"
        return
    fi
    command -v debootstrap >/dev/null ||
        with_progress "apt-get install debootstrap" "$WORK/apt-debootstrap.log" \
            timeout 300 apt-get install -y -q debootstrap ||
        fail "debootstrap is missing and could not be installed"
    local mirror rootfs="$WORK/rootfs"
    mirror="$(debian_mirror)"
    log "building $BASE_IMAGE: debootstrap --variant=minbase --include=$BASE_PACKAGES bookworm ($mirror)"
    with_progress debootstrap "$WORK/debootstrap.log" \
        timeout 900 debootstrap --variant=minbase --include="$BASE_PACKAGES" bookworm "$rootfs" \
        "$mirror" || { tail -20 "$WORK/debootstrap.log"; fail "debootstrap failed"; }
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    import_rootfs() {
        tar -C "$rootfs" -c . | timeout 600 docker import \
            -c "LABEL $BASE_LABEL=\"$spec\"" -c "ENV LANG=C.UTF-8" - "$BASE_IMAGE"
    }
    with_progress "docker import" "$WORK/import.log" import_rootfs ||
        { tail -20 "$WORK/import.log"; fail "docker import failed"; }
    rm -rf "$rootfs"
    log "base image $BASE_IMAGE built"
}

# ---- 3. wheelhouse and image ------------------------------------------------------------------

host_python() {
    if [[ -n "${PYTHON:-}" ]]; then
        echo "$PYTHON"
    elif [[ -x "$ROOT/.venv/bin/python" ]]; then
        echo "$ROOT/.venv/bin/python"
    else
        command -v python3
    fi
}

build_wheelhouse() {
    local py want have
    py="$(host_python)"
    want="$(timeout 120 docker run --rm --entrypoint python3 "$BASE_IMAGE" -c \
        'import sys; print("%d.%d" % sys.version_info[:2])')"
    have="$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    [[ "$want" == "$have" ]] ||
        fail "the base image has Python $want but $py is $have: wheels would not match"
    # Build requirements come from pyproject.toml so the image builds the project offline.
    local build_reqs
    mapfile -t build_reqs < <("$py" -c 'import sys, tomllib
print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["build-system"]["requires"]))' \
        "$ROOT/pyproject.toml")
    log "building the wheelhouse with $py (Python $have): the project's dependencies and ${build_reqs[*]}"
    find "$WHEELS" -name '*.whl' -delete
    pip_wheels() {
        cd "$ROOT" && timeout 900 "$py" -m pip wheel --quiet --disable-pip-version-check \
            -w "$WHEELS" . "${build_reqs[@]}"
    }
    with_progress "pip wheel" "$WORK/wheels.log" pip_wheels ||
        { tail -30 "$WORK/wheels.log"; fail "pip wheel failed"; }
    # The project itself is built inside the image from source; its wheel would change on every
    # commit and defeat the cached dependency layer.
    rm -f "$WHEELS"/multicluster_gateway-*.whl
    log "wheelhouse: $(find "$WHEELS" -name '*.whl' | wc -l) wheels in ${WHEELS#"$ROOT"/}"
}

build_image() {
    log "building $GATEWAY_IMAGE from the wheelhouse (BASE_IMAGE=$BASE_IMAGE, INSTALL_FROM=wheels)"
    # The context is streamed as a tar without the venv, git data and generated keys.
    build_from_tar() {
        tar -C "$ROOT" -c \
            --exclude=./.git --exclude=./.venv --exclude=./.lab --exclude=./.notes \
            --exclude=./certs/lab --exclude=./build --exclude=./dist --exclude='*.egg-info' \
            --exclude='__pycache__' --exclude='.*_cache' . |
            timeout 1200 docker build -f deploy/compose/Dockerfile \
                --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg INSTALL_FROM=wheels \
                -t "$GATEWAY_IMAGE" -
    }
    with_progress "docker build" "$WORK/build.log" build_from_tar ||
        { tail -40 "$WORK/build.log"; fail "docker build failed"; }
    local steps cached
    steps="$(grep -c '^Step ' "$WORK/build.log" || true)"
    cached="$(grep -c 'Using cache' "$WORK/build.log" || true)"
    log "image built: $steps steps, $cached from the layer cache"
}

build_prometheus_image() {
    log "building $PROMETHEUS_IMAGE (Debian's prometheus package on $BASE_IMAGE)"
    build_prometheus() {
        tar -C "$ROOT" -c deploy/compose/prometheus |
            timeout 900 docker build -f deploy/compose/prometheus/Dockerfile \
                --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$PROMETHEUS_IMAGE" -
    }
    with_progress "docker build (prometheus)" "$WORK/build-prometheus.log" build_prometheus ||
        { tail -40 "$WORK/build-prometheus.log"; fail "docker build of the Prometheus image failed"; }
    log "image built: $(timeout 60 docker run --rm --entrypoint /usr/bin/prometheus "$PROMETHEUS_IMAGE" \
        --version 2>&1 | head -n 1)"
}

# ---- 4. up and readiness ----------------------------------------------------------------------

yaml_python() {
    # The project venv has PyYAML; Debian's docker-compose depends on python3-yaml otherwise.
    local py
    py="$(host_python)"
    if "$py" -c 'import yaml' 2>/dev/null; then echo "$py"; else echo /usr/bin/python3; fi
}

expected_containers() {
    "$(yaml_python)" -c 'import sys, yaml
services = yaml.safe_load(open(sys.argv[1]))["services"]
print(sum((s.get("deploy") or {}).get("replicas", 1) for s in services.values()))' "$COMPOSE_FILE"
}

container_states() {
    local ids
    ids="$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT")"
    [[ -n "$ids" ]] || return 0
    # name service status health exit-code restarts
    # shellcheck disable=SC2086
    docker inspect -f '{{.Name}} {{index .Config.Labels "com.docker.compose.service"}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}-{{end}} {{.State.ExitCode}} {{.RestartCount}}' \
        $ids | sed 's#^/##' | sort
}

container_ok() {
    docker inspect -f '{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}' \
        "$1" 2>/dev/null | grep -qx 'running healthy'
}

wait_ready() {
    local want deadline=$((SECONDS + READY_TIMEOUT)) states healthy bad
    want="$(expected_containers)"
    log "waiting up to ${READY_TIMEOUT}s for $want containers (certs one-shot included)"
    tick_start
    while :; do
        states="$(container_states)"
        # The one-shot certs service must exit 0; every other container must be running.
        bad="$(awk '($2 == "certs" && $3 == "exited" && $5 != 0) ||
                    ($2 != "certs" && ($3 == "exited" || $3 == "dead" || $6 > 0 || $4 == "unhealthy"))' \
            <<<"$states")"
        if [[ -n "$bad" ]]; then
            indent <<<"$bad"
            fail "containers failed while starting"
        fi
        healthy="$(awk '($2 == "certs" && $3 == "exited") || $4 == "healthy"' <<<"$states" | wc -l)"
        if [[ "$healthy" -eq "$want" ]]; then
            log "all $want containers are up: $((want - 1)) healthy, certs exited 0"
            return
        fi
        if ((SECONDS >= deadline)); then
            fail "only $healthy of $want containers healthy after ${READY_TIMEOUT}s"
        fi
        tick "$healthy of $want containers healthy"
        sleep 1
    done
}

# ---- 5. the curl scenario ---------------------------------------------------------------------

# retry SECONDS DESCRIPTION FUNCTION ARGS...: FUNCTION must succeed within SECONDS (Tier-1 marks
# each Tier-2 healthy only after two active health checks, so the first requests may see 503).
retry() {
    local limit=$1 what=$2 deadline
    shift 2
    deadline=$((SECONDS + limit))
    tick_start
    until "$@" >"$WORK/last.out" 2>&1; do
        if ((SECONDS >= deadline)); then
            indent <"$WORK/last.out" | tail -20
            fail "$what (not within ${limit}s)"
        fi
        tick "not yet, retrying up to ${limit}s: $what"
        sleep 1
    done
    passed "$what"
}

page() { curl -sS -m 5 "${RESOLVE[@]}" "$@"; }

productpage_of() {
    local cluster=$1 body
    shift
    body="$(page -f -H "X-CLUSTER-SELECTOR: $cluster" "$HTTP_URL/productpage")" || return 1
    grep -q "productpage served by cluster $cluster," <<<"$body" || {
        echo "$body"
        return 1
    }
    local want
    for want in "$@"; do
        grep -qF -- "$want" <<<"$body" || {
            echo "missing: $want"
            echo "$body"
            return 1
        }
    done
    grep 'served by' <<<"$body"
}

check_weighted() {
    local counts
    counts="$(for _ in $(seq 40); do
        page -f "$HTTP_URL/productpage" | grep -o 'productpage served by cluster [a-z0-9-]*' || true
    done | awk '{print $NF}' | sort | uniq -c)"
    echo "$counts"
    [[ "$(wc -l <<<"$counts")" -eq 3 ]] && ! grep -q '^ *$' <<<"$counts"
}

check_user() {
    local body
    body="$(page -f "$HTTP_URL/user")" || return 1
    echo "$body"
    "$(host_python)" -c 'import json, sys; sys.exit(json.loads(sys.argv[1])["cluster"] != "cluster-1")' \
        "$body"
}

check_https() {
    local ca="$WORK/ca.crt" out
    docker cp "$(compose ps -q tier1):/certs/ca.crt" "$ca" >/dev/null || return 1
    out="$(curl -sS -v -m 5 --cacert "$ca" \
        --resolve "$HOSTNAME_:$LAB_HTTPS_PORT:127.0.0.1" -H 'X-CLUSTER-SELECTOR: cluster-2' \
        "https://$HOSTNAME_:$LAB_HTTPS_PORT/productpage" 2>&1)" || {
        echo "$out"
        return 1
    }
    grep -E '^\* +(issuer|subject):' <<<"$out"
    grep -q 'productpage served by cluster cluster-2,' <<<"$out" &&
        grep -Eq '^\* +issuer: .*CN ?= ?Gateway Lab Root CA' <<<"$out"
}

check_redirect() {
    local port=$1 out
    out="$(curl -sS -i -m 5 --resolve "$HOSTNAME_:$port:127.0.0.1" \
        "http://$HOSTNAME_:$port/productpage")" || return 1
    grep -iE '^(HTTP/|location:)' <<<"$out"
    grep -Eq '^HTTP/1\.1 301' <<<"$out" && grep -iq "^location: https://$HOSTNAME_" <<<"$out"
}

run_scenario() {
    log "curl scenario through Tier-1 at 127.0.0.1:$LAB_HTTP_PORT (Host $HOSTNAME_)"
    retry "$ROUTE_TIMEOUT" "X-CLUSTER-SELECTOR: cluster-1 -> cluster-1's page (productpage only)" \
        productpage_of cluster-1 "Error fetching product details!" "Error fetching product reviews!"
    retry "$ROUTE_TIMEOUT" "X-CLUSTER-SELECTOR: cluster-2 -> bookinfo with details and reviews v1" \
        productpage_of cluster-2 "Book Details" "served by cluster cluster-2, pod" "version v1"
    retry "$ROUTE_TIMEOUT" "X-CLUSTER-SELECTOR: cluster-3 -> reviews v3 with red stars" \
        productpage_of cluster-3 "Book Details" "version v3" '<font color="red">'
    retry 30 "no selector: the 50/25/25 weighted split reaches all three clusters" check_weighted
    indent <"$WORK/last.out"
    retry 30 "/user -> the nearest healthy cluster (cluster-1)" check_user
    retry 30 "HTTPS through Tier-1: verified with the lab CA, issuer Gateway Lab Root CA" check_https
    indent <"$WORK/last.out" | grep -E 'issuer|subject'
    retry 30 "HTTP at Tier-2 cluster-1 (127.0.0.1:$LAB_CLUSTER1_HTTP_PORT) -> 301 to HTTPS" \
        check_redirect "$LAB_CLUSTER1_HTTP_PORT"
    indent <"$WORK/last.out"
}

check_prometheus() {
    local url="http://127.0.0.1:$LAB_PROMETHEUS_PORT/api/v1/query" out
    out="$(curl -sS -f -m 5 -G "$url" \
        --data-urlencode 'query=sum by (destination_cluster) (istio_requests_total{job="tier1"})')" ||
        return 1
    echo "$out"
    "$(host_python)" -c 'import json, sys
result = json.loads(sys.argv[1])["data"]["result"]
clusters = {r["metric"].get("destination_cluster") for r in result}
sys.exit(not {"cluster-1", "cluster-2", "cluster-3"} <= clusters)' "$out"
}

# ---- 6. scaling -------------------------------------------------------------------------------

hello_instances() {
    local _
    for _ in $(seq 30); do
        page -f -H "X-CLUSTER-SELECTOR: $SCALE_CLUSTER" "$HTTP_URL/hello" || true
    done | sed -n 's/^Hello version: v1, instance: //p' | sort -u
}

scale_up() {
    local before id
    before="$(compose ps -q "$SCALE_SERVICE")"
    [[ "$(wc -w <<<"$before")" -eq 2 ]] || fail "$SCALE_SERVICE has $before containers, expected 2"
    log "scaling $SCALE_SERVICE from 2 to 3 replicas"
    with_progress "scaling $SCALE_SERVICE" "$WORK/scale.log" \
        compose up -d --no-deps --no-recreate --no-build --scale "$SCALE_SERVICE=3" \
        "$SCALE_SERVICE" || { cat "$WORK/scale.log"; fail "scale failed"; }
    SCALED_AT=$SECONDS
    for id in $(compose ps -q "$SCALE_SERVICE"); do
        grep -q "$id" <<<"$before" || NEW_ID="$id"
    done
    [[ -n "${NEW_ID:-}" ]] || fail "no new container appeared for $SCALE_SERVICE"
    NEW_POD="$(docker inspect -f '{{.Config.Hostname}}' "$NEW_ID")"
    log "new pod $NEW_POD started ($(compose ps -q "$SCALE_SERVICE" | wc -l) replicas)"
}

new_pod_answers() {
    local seen
    seen="$(hello_instances)"
    echo "$seen"
    grep -qx "$NEW_POD" <<<"$seen"
}

show_dns() {
    # A diagnostic only: bounded to 30 s, and its failure is printed, not fatal.
    COMPOSE_TIMEOUT=30 compose exec -T "tier2-$SCALE_CLUSTER" python -c 'import sys, dns.resolver
answer = dns.resolver.resolve(sys.argv[1], "A")
print(f"{sys.argv[1]}: {len(answer)} addresses, TTL {answer.rrset.ttl}s")' \
        "helloworld-v1.$SCALE_CLUSTER.lab" </dev/null 2>&1 || echo "no answer (exit $?)"
}

await_new_pod() {
    container_ok "$NEW_ID" || retry 60 "new pod $NEW_POD is healthy" container_ok "$NEW_ID"
    log "Docker DNS as seen by tier2-$SCALE_CLUSTER: $(show_dns)"
    log "waiting up to ${DNS_TIMEOUT}s for tier2-$SCALE_CLUSTER to re-resolve and use $NEW_POD"
    local deadline=$((SCALED_AT + DNS_TIMEOUT))
    tick_start
    until new_pod_answers >"$WORK/last.out" 2>&1; do
        ((SECONDS < deadline)) || {
            cat "$WORK/last.out"
            fail "new pod $NEW_POD got no traffic within ${DNS_TIMEOUT}s of scaling"
        }
        tick "$NEW_POD not answering yet ($((SECONDS - SCALED_AT))s after scaling," \
            "bound ${DNS_TIMEOUT}s)"
        sleep 1
    done
    passed "scaled $SCALE_SERVICE 2 -> 3: new pod $NEW_POD answers /hello through Tier-1" \
        "$((SECONDS - SCALED_AT))s after scaling"
    sed 's/^/    instance /' "$WORK/last.out"
}

final_health() {
    local bad
    bad="$(container_states | awk '$2 != "certs" && ($3 != "running" || $4 != "healthy" || $6 > 0)')"
    [[ -z "$bad" ]] || {
        indent <<<"$bad"
        fail "containers were not all healthy at the end"
    }
    passed "every container still running and healthy, no restarts"
}

# ---- main -------------------------------------------------------------------------------------

main() {
    log "compose three-cluster lab: $COMPOSE_FILE (project $PROJECT)"
    install_docker
    start_dockerd
    log "compose CLI: ${COMPOSE[*]} ($("${COMPOSE[@]}" version 2>/dev/null | head -1))"
    local t=$SECONDS
    build_base_image
    build_wheelhouse
    build_image
    build_prometheus_image
    log "images ready in $((SECONDS - t))s"

    with_progress "removing a previous run's lab" "$WORK/down-before.log" \
        compose down -v --remove-orphans || true
    LAB_UP=1
    log "docker compose up -d (ports: Tier-1 $LAB_HTTP_PORT/$LAB_HTTPS_PORT, admin $LAB_ADMIN_PORT)"
    t=$SECONDS
    with_progress "up -d" "$WORK/up.log" compose up -d --no-build ||
        { tail -30 "$WORK/up.log"; fail "up failed"; }
    wait_ready
    log "lab ready in $((SECONDS - t))s"

    # Scale first: the Tier-2 gateway picks the pod up at its next DNS refresh, and the rest of
    # the scenario runs meanwhile.
    scale_up
    run_scenario
    await_new_pod
    retry 60 "Prometheus (127.0.0.1:$LAB_PROMETHEUS_PORT) has Tier-1's requests by destination_cluster for all three clusters" \
        check_prometheus
    final_health
}

main "$@"
