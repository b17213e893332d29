#!/bin/sh
# HEALTHCHECK of the multicluster-gateway image: GET $HEALTH_URL (default the gateway admin
# /ready, 200 only while serving and not draining); any other answer or no answer is unhealthy.
# curl is cheaper to start than Python, but slim base images lack it, so Python is the fallback.
# grpc://HOST:PORT (gRPC demo pods) asks grpc.health.v1 instead: healthy only when SERVING.
set -eu
url="${HEALTH_URL:-http://127.0.0.1:15000/ready}"
case "$url" in
    grpc://*) exec gateway-lab grpc health "${url#grpc://}" ;;
esac
if command -v curl >/dev/null 2>&1; then
    exec curl --fail --silent --show-error --max-time 2 --output /dev/null "$url"
fi
exec python -c '
import sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=2).close()
except (OSError, urllib.error.URLError) as exc:
    sys.exit(f"unhealthy: {exc}")
' "$url"
