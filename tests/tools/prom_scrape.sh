#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Scrapes a /metrics endpoint with a real Prometheus server (Debian's `prometheus`) and prints
# the JSON answer of its HTTP API to one PromQL query: what a user's Prometheus would see.
#
#   tests/tools/prom_scrape.sh TARGET [QUERY] [MIN_SCRAPES]
#     TARGET       127.0.0.1:PORT or [::1]:PORT (loopback only) serving /metrics
#     QUERY        PromQL, default 'up{job="tardy"}'
#     MIN_SCRAPES  successful scrapes to wait for before the query (default 1; 2 or more for
#                  rate() and increase())
#   env PROM_SCRAPE_TIMEOUT  seconds to wait for them (default 30)
#   env PROMETHEUS           the server binary (default /usr/bin/prometheus)
#
# Prometheus runs on 127.0.0.1 with a port the kernel picks, scraping TARGET every second
# (job "tardy"), with its configuration and storage in a temporary directory; it is stopped
# and the directory removed however this script ends. stdout: the API's JSON, one line.
# Exits 0 when the query succeeded, 1 when it failed or no scrape did in time (Prometheus's
# log and target state then go to stderr), 2 on bad arguments or a missing tool.
set -uo pipefail

target=${1:-}
query=${2:-'up{job="tardy"}'}
min_scrapes=${3:-1}
timeout=${PROM_SCRAPE_TIMEOUT:-30}
prometheus=${PROMETHEUS:-/usr/bin/prometheus}

die() { echo "prom_scrape: $*" >&2; exit 2; }
[[ $target =~ ^(127\.[0-9]+\.[0-9]+\.[0-9]+|\[::1\]):[0-9]+$ ]] ||
    die "target '$target' is not 127.x.y.z:PORT or [::1]:PORT (loopback only)"
[[ $min_scrapes =~ ^[1-9][0-9]*$ ]] || die "MIN_SCRAPES '$min_scrapes' is not a positive number"
[[ $timeout =~ ^[1-9][0-9]*$ ]] || die "PROM_SCRAPE_TIMEOUT '$timeout' is not a positive number of seconds"
[[ -x $prometheus ]] || die "no Prometheus server at $prometheus (apt-get install prometheus)"
for tool in curl ss; do command -v "$tool" >/dev/null || die "$tool is missing"; done

api=
dir=$(mktemp -d "${TMPDIR:-/tmp}/tardy-prom-XXXXXX") || die "mktemp failed"
pid=
# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
    if [[ -n $pid ]]; then
        kill "$pid" 2>/dev/null
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    fi
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

cat >"$dir/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: tardy
    metrics_path: /metrics
    static_configs:
      - targets: ['$target']
EOF

fail() {
    echo "prom_scrape: $*" >&2
    if [[ -n $api ]]; then
        echo "--- targets:" >&2
        curl -sS --max-time 5 "$api/api/v1/targets" >&2
        echo >&2
    fi
    echo "--- prometheus log (last 30 lines):" >&2
    tail -n 30 "$dir/log" >&2
    exit 1
}

"$prometheus" --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
    --web.listen-address=127.0.0.1:0 --log.level=warn >"$dir/log" 2>&1 &
pid=$!

deadline=$((SECONDS + timeout))
# The port the kernel gave it, from its listening socket.
while [[ -z $api ]]; do
    kill -0 "$pid" 2>/dev/null || fail "prometheus exited at start"
    ((SECONDS < deadline)) || fail "prometheus did not listen within ${timeout}s"
    port=$(ss -Hltnp 2>/dev/null | grep -F "pid=$pid," | awk '{print $4}' | sed -n 's/^127\.0\.0\.1:\([0-9]*\)$/\1/p' | head -n 1)
    if [[ -n $port ]]; then api=http://127.0.0.1:$port; else sleep 0.1; fi
done

# The first value of an instant query's vector result, empty when there is none.
value_of() {
    curl -sS --max-time 5 --get --data-urlencode "query=$1" "$api/api/v1/query" 2>/dev/null |
        sed -n 's/.*"value":\[[^,]*,"\([^"]*\)"\].*/\1/p'
}

# Scrapes that succeeded so far: the sum of `up` over the run (1 per good scrape).
while :; do
    kill -0 "$pid" 2>/dev/null || fail "prometheus exited"
    good=$(value_of "sum_over_time(up{job=\"tardy\"}[10m])")
    [[ -n $good && ${good%%.*} -ge $min_scrapes ]] 2>/dev/null && break
    ((SECONDS < deadline)) || fail "no ${min_scrapes} successful scrape(s) of $target within ${timeout}s (got ${good:-0})"
    sleep 0.2
done

out=$(curl -sS --max-time 10 --get --data-urlencode "query=$query" "$api/api/v1/query") || fail "query failed: $query"
echo "$out"
[[ $out == *'"status":"success"'* ]] || fail "query did not succeed: $query"
exit 0
