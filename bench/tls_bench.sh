#!/usr/bin/env bash
# Cost of an https:// upstream, on loopback. One mock-upstream behind one nginx with two
# listeners, plain HTTP and TLS, both proxy_pass to the mock over a keep-alive pool, so the only
# difference between the two paths is TLS between the caller and nginx:
#   router-http   wrk -> semrouter -> http://nginx  -> mock-upstream
#   router-https  wrk -> semrouter -> https://nginx -> mock-upstream  (tls.ca_file, pooled)
#   nginx-http    wrk -> http://nginx  -> mock-upstream               (baseline without the router)
#   nginx-https   wrk -> https://nginx -> mock-upstream
# A throwaway CA and a server certificate for 127.0.0.1 (ECDSA P-256) are made with the openssl
# CLI in a temp dir. The four paths run in interleaved rounds (the http/https order alternating
# from round to round), at CONNECTIONS and then at LIGHT_CONNECTIONS, with the CPU time semrouter
# and the nginx worker spent per request (from /proc/PID/stat).
# Usage: bench/tls_bench.sh [DURATION_S] [CONNECTIONS]   (markdown on stdout; progress on stderr)
#   env: ROUNDS (3), LIGHT_CONNECTIONS (4)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/build/bin
DURATION=${1:-10}
CONNS=${2:-64}
ROUNDS=${ROUNDS:-3}
LIGHT_CONNS=${LIGHT_CONNECTIONS:-4}
. "$ROOT/bench/lib.sh"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # utime + stime, all threads
CLK_TCK=$(getconf CLK_TCK)

# ---- certificates: a CA, and a server certificate for IP 127.0.0.1 signed by it ----
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj "/CN=semrouter tls_bench CA" -keyout "$WORK/ca.key" -out "$WORK/ca.pem" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -subj "/CN=127.0.0.1" -keyout "$WORK/server.key" -out "$WORK/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' >"$WORK/server.ext"
openssl x509 -req -in "$WORK/server.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -CAcreateserial \
  -days 2 -extfile "$WORK/server.ext" -out "$WORK/server.pem" 2>/dev/null

# ---- mock-upstream, nginx with a plain and a TLS listener in front of it ----
"$BIN/mock-upstream" --port 0 --ready-file "$WORK/mock.json" --name bench 2>/dev/null &
PIDS+=($!)
wait_file "$WORK/mock.json"
MOCK=$(port_of "$WORK/mock.json")

PLAIN=$(free_port)
TLS=$(free_port)
mkdir -p "$WORK/nginx"
# keepalive_requests and keepalive_timeout raised so that no connection is closed (and no TLS
# handshake redone) during the benchmark: what is measured is pooled TLS. nginx 1.22 leaves
# TLS 1.3 out by default, hence ssl_protocols. A request carrying x-request-id: tls-probe
# (forwarded by the router) is logged with the TLS version and cipher, for the report.
cat >"$WORK/nginx/nginx.conf" <<NGX
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx;
  proxy_temp_path $WORK/nginx;
  keepalive_requests 1000000;
  keepalive_timeout 600s;
  log_format probe '\$server_port \$ssl_protocol \$ssl_cipher';
  map \$http_x_request_id \$probe { tls-probe 1; default 0; }
  upstream mock { server 127.0.0.1:$MOCK; keepalive 128; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:$PLAIN;
    access_log $WORK/nginx/probe.log probe if=\$probe;
    location / { proxy_pass http://mock; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; }
  }
  server {
    listen 127.0.0.1:$TLS ssl;
    ssl_certificate $WORK/server.pem;
    ssl_certificate_key $WORK/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    access_log $WORK/nginx/probe.log probe if=\$probe;
    location / { proxy_pass http://mock; proxy_http_version 1.1; proxy_set_header Connection ""; proxy_buffering off; }
  }
}
NGX
nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" -g 'daemon off;' &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PLAIN/health" >/dev/null && break; sleep 0.05; done
NGINX_WORKER=$(pgrep -P "$NGINX_PID" | head -n1)
[[ -n $NGINX_WORKER ]] || { echo "nginx did not start:" >&2; cat "$WORK/nginx/error.log" >&2; exit 1; }

# ---- semrouter: one model per listener ----
cat >"$WORK/router.yaml" <<YAML
server: {workers: 1, reload_poll_ms: 0, log_level: warn}
backends:
  - {name: plain, url: "http://127.0.0.1:$PLAIN/v1", max_idle_connections: 256}
  - {name: secure, url: "https://127.0.0.1:$TLS/v1", max_idle_connections: 256, tls: {ca_file: "$WORK/ca.pem"}}
models:
  - {name: via-http, backends: [plain]}
  - {name: via-https, backends: [secure]}
default_model: via-http
YAML
"$BIN/semrouter" serve --config "$WORK/router.yaml" --port 0 --admin-port 0 --ready-file "$WORK/router.json" 2>"$WORK/router.log" &
ROUTER_PID=$!
PIDS+=("$ROUTER_PID")
wait_file "$WORK/router.json"
ROUTER=$(port_of "$WORK/router.json")

# Sanity: every path answers 200 before we measure; one probe through each router model.
body() { printf '{"model":"%s","messages":[{"role":"user","content":"hello"}]}' "$1"; }
check() { # url model
  local code
  code=$(curl -s --cacert "$WORK/ca.pem" -o "$WORK/answer.json" -w '%{http_code}' -H 'content-type: application/json' \
    -H 'x-request-id: tls-probe' -d "$(body "$2")" "$1/v1/chat/completions")
  [[ $code == 200 ]] || { echo "sanity check failed for $1 ($2): HTTP $code" >&2; cat "$WORK/answer.json" "$WORK/router.log" >&2; exit 1; }
}
check "http://127.0.0.1:$ROUTER" via-http
check "http://127.0.0.1:$ROUTER" via-https
check "http://127.0.0.1:$PLAIN" m
check "https://127.0.0.1:$TLS" m
sleep 0.2 # the probe log line is written at the end of the request
ROUTER_TLS=$(awk -v p="$TLS" '$1 == p {print $2 " " $3; exit}' "$WORK/nginx/probe.log")

to_ms() { # wrk prints 1.23ms / 456.00us / 1.02s
  awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us$/,"",v); printf "%.3f", v/1000 } else if (v ~ /ms$/) { sub(/ms$/,"",v); printf "%.3f", v } else if (v ~ /s$/) { sub(/s$/,"",v); printf "%.3f", v*1000 } else print v }'
}
# One wrk run: prints "req/s p50_ms p99_ms errors router_cpu_us_per_req nginx_cpu_us_per_req".
run_wrk() { # conns url model
  local out r0 n0 r1 n1
  r0=$(cpu_ticks "$ROUTER_PID"); n0=$(cpu_ticks "$NGINX_WORKER")
  out=$(wrk -t1 -c"$1" -d"${DURATION}s" --latency -s "$ROOT/bench/post_model.lua" "$2/v1/chat/completions" -- "$3")
  r1=$(cpu_ticks "$ROUTER_PID"); n1=$(cpu_ticks "$NGINX_WORKER")
  local rps p50 p99 reqs errs
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(to_ms "$(awk '$1=="50%" {print $2}' <<<"$out")")
  p99=$(to_ms "$(awk '$1=="99%" {print $2}' <<<"$out")")
  reqs=$(awk '/requests in/ {print $1}' <<<"$out")
  errs=$(awk '/Non-2xx/ {n += $5} /Socket errors/ {gsub(",", ""); n += $4 + $6 + $8 + $10} END {print n + 0}' <<<"$out")
  awk -v rps="$rps" -v p50="$p50" -v p99="$p99" -v e="$errs" -v n="$reqs" -v r=$((r1 - r0)) -v g=$((n1 - n0)) -v hz="$CLK_TCK" \
    'BEGIN { printf "%s %s %s %s %.1f %.1f\n", rps, p50, p99, e, r / hz * 1e6 / n, g / hz * 1e6 / n }'
}

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

declare -A URL=([router-http]="http://127.0.0.1:$ROUTER" [router-https]="http://127.0.0.1:$ROUTER"
                [nginx-http]="http://127.0.0.1:$PLAIN" [nginx-https]="https://127.0.0.1:$TLS")
declare -A MODEL=([router-http]=via-http [router-https]=via-https [nginx-http]=m [nginx-https]=m)
PATHS=(router-http router-https nginx-http nginx-https)

measure() { # conns label
  local conns=$1
  declare -A RPS P50 P99 ERR RCPU NCPU
  # Warm-up, not reported: fills the router's pools (the TLS handshakes happen here) at this
  # connection count.
  for p in "${PATHS[@]}"; do
    wrk -t1 -c"$conns" -d1s -s "$ROOT/bench/post_model.lua" "${URL[$p]}/v1/chat/completions" -- "${MODEL[$p]}" >/dev/null
  done
  for round in $(seq "$ROUNDS"); do
    local order
    if ((round % 2)); then order="router-http router-https nginx-http nginx-https"
    else order="router-https router-http nginx-https nginx-http"; fi
    for p in $order; do
      echo "  $2, round $round: $p" >&2
      read -r "RPS[$p,$round]" "P50[$p,$round]" "P99[$p,$round]" "ERR[$p,$round]" "RCPU[$p,$round]" "NCPU[$p,$round]" \
        < <(run_wrk "$conns" "${URL[$p]}" "${MODEL[$p]}")
    done
  done

  echo "Every round (req/s; p50 / p99 ms; CPU µs per request of semrouter / of the nginx worker; errors = non-2xx + socket errors):"
  echo
  echo "| round | path | req/s | p50 ms | p99 ms | semrouter CPU µs/req | nginx CPU µs/req | errors |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|"
  for round in $(seq "$ROUNDS"); do
    for p in "${PATHS[@]}"; do
      local rc="${RCPU[$p,$round]}"
      [[ $p == nginx-* ]] && rc="—"
      echo "| $round | $p | ${RPS[$p,$round]} | ${P50[$p,$round]} | ${P99[$p,$round]} | $rc | ${NCPU[$p,$round]} | ${ERR[$p,$round]} |"
    done
  done
  echo
  echo "Medians over the rounds; the ratio and the added latency are taken inside each round (https against the http run next to it), then their median:"
  echo
  echo "| via | http req/s | https req/s | https / http req/s | http p50 ms | https p50 ms | added p50 ms | http p99 ms | https p99 ms | added p99 ms |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for via in router nginx; do
    local h="$via-http" s="$via-https" ratios="" dp50="" dp99="" hr="" sr="" h50="" s50="" h99="" s99=""
    for round in $(seq "$ROUNDS"); do
      ratios+=" $(awk -v a="${RPS[$s,$round]}" -v b="${RPS[$h,$round]}" 'BEGIN{printf "%.3f", a/b}')"
      dp50+=" $(awk -v a="${P50[$s,$round]}" -v b="${P50[$h,$round]}" 'BEGIN{printf "%.3f", a-b}')"
      dp99+=" $(awk -v a="${P99[$s,$round]}" -v b="${P99[$h,$round]}" 'BEGIN{printf "%.3f", a-b}')"
      hr+=" ${RPS[$h,$round]}"; sr+=" ${RPS[$s,$round]}"
      h50+=" ${P50[$h,$round]}"; s50+=" ${P50[$s,$round]}"
      h99+=" ${P99[$h,$round]}"; s99+=" ${P99[$s,$round]}"
    done
    local name="nginx only (wrk → nginx)"
    [[ $via == router ]] && name="semrouter → nginx"
    echo "| $name | $(median <<<"$hr") | $(median <<<"$sr") | **$(median <<<"$ratios")** ($(xargs <<<"$ratios")) | $(median <<<"$h50") | $(median <<<"$s50") | $(median <<<"$dp50") | $(median <<<"$h99") | $(median <<<"$s99") | **$(median <<<"$dp99")** |"
  done
  local rh="" rs="" nh="" ns=""
  for round in $(seq "$ROUNDS"); do
    rh+=" ${RCPU[router-http,$round]}"; rs+=" ${RCPU[router-https,$round]}"
    nh+=" ${NCPU[router-http,$round]}"; ns+=" ${NCPU[router-https,$round]}"
  done
  echo
  echo "CPU per request through semrouter (median): semrouter $(median <<<"$rh") µs (http) → $(median <<<"$rs") µs (https); the nginx worker $(median <<<"$nh") µs → $(median <<<"$ns") µs."
  echo
}

echo "## https:// upstream vs http:// ($(date -u +%F), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
echo
echo "Kernel $(uname -r), $(nginx -v 2>&1 | sed 's/^nginx version: //'), $(wrk -v 2>&1 | head -n1 | awk '{print "wrk " $2}'), $(openssl version | awk '{print $1 " " $2}')."
echo "semrouter → nginx TLS: ${ROUTER_TLS:-unknown} (ECDSA P-256 certificate). wrk -t1 -d${DURATION}s, $ROUNDS interleaved rounds; semrouter 1 worker, nginx 1 worker, mock-upstream and wrk share the machine."
echo
echo "### $CONNS connections"
echo
measure "$CONNS" "c$CONNS"
echo "### $LIGHT_CONNS connections (light load)"
echo
measure "$LIGHT_CONNS" "c$LIGHT_CONNS"
grep -v '^$' "$WORK/router.log" >&2 || true
