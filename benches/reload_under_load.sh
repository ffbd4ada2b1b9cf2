#!/usr/bin/env bash
# Load test: wrk traffic through the gateway while the plugin set is reloaded 100 times
# through the admin API. Reports failed requests (non-2xx plus socket errors; must be 0)
# and the latency distribution during the reloads.
#
# Needs: wrk and nginx (apt-get install wrk nginx). Everything listens on 127.0.0.1.
# Usage: benches/reload_under_load.sh [reloads] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
RELOADS=${1:-100}
CONNS=${2:-32}
for tool in wrk nginx curl; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install wrk nginx curl)" >&2; exit 1; }
done

echo "== building release binaries" >&2
cargo build --release --locked --bin microgateway --bin mg-plugin-header-enricher >&2

WORK=$(mktemp -d)
cleanup() {
  [ -n "${GW_PID:-}" ] && kill "$GW_PID" 2>/dev/null || true
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP=$(free_port); PROXY=$(free_port); ADMIN=$(free_port)

cat > "$WORK/nginx.conf" <<NGINX
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK; proxy_temp_path $WORK; fastcgi_temp_path $WORK; uwsgi_temp_path $WORK; scgi_temp_path $WORK;
  server { listen 127.0.0.1:$UP; location / { return 200 "ok\n"; } }
}
NGINX
nginx -c "$WORK/nginx.conf"

TOKEN=load-test-token-$$
echo "$TOKEN" > "$WORK/token"
cat > "$WORK/gateway.toml" <<TOML
[server]
listen = "127.0.0.1:$PROXY"
[admin]
listen = "127.0.0.1:$ADMIN"
token_file = "$WORK/token"
data_dir = "$WORK/data"
[log]
level = "warn"
[[upstreams]]
name = "nginx"
targets = ["http://127.0.0.1:$UP"]
[[routes]]
name = "all"
upstream = "nginx"
TOML
./target/release/microgateway --config "$WORK/gateway.toml" 2> "$WORK/gateway.log" &
GW_PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$ADMIN/healthz" >/dev/null && break; sleep 0.1; done

api() { curl -sf -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' "$@"; }
api -X POST "http://127.0.0.1:$ADMIN/api/v1/plugins" -d "{
  \"name\": \"enricher\", \"hook_type\": \"pre_auth\", \"timeout\": \"2s\",
  \"command\": \"file://$PWD/target/release/mg-plugin-header-enricher\"
}" >/dev/null

# Reloads are spread over the whole run (one every 250 ms), so the latency figures are
# measured while reloads happen.
DURATION=$(( RELOADS / 4 + 4 ))
echo "== wrk -t2 -c$CONNS -d${DURATION}s while reloading $RELOADS times" >&2
wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency "http://127.0.0.1:$PROXY/" > "$WORK/wrk.txt" &
WRK_PID=$!
sleep 2
start=$(date +%s.%N)
failed_reloads=0
for i in $(seq "$RELOADS"); do
  api -X POST "http://127.0.0.1:$ADMIN/api/v1/plugins/enricher/reload" >/dev/null || failed_reloads=$((failed_reloads + 1))
  sleep 0.25
done
end=$(date +%s.%N)
wait "$WRK_PID"

cat "$WORK/wrk.txt" >&2
requests=$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")
non2xx=$(awk '/Non-2xx or 3xx responses/ {print $NF}' "$WORK/wrk.txt"); non2xx=${non2xx:-0}
socket=$(awk -F'[ ,]+' '/Socket errors/ {print $4+$6+$8+$10}' "$WORK/wrk.txt"); socket=${socket:-0}
p99=$(awk '$1=="99%" {print $2}' "$WORK/wrk.txt")
rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.txt")
echo
echo "reloads:          $RELOADS in $(python3 -c "print(round($end-$start,2))") s ($failed_reloads failed)"
echo "requests:         $requests ($rps req/s)"
echo "failed requests:  $((non2xx + socket)) (non-2xx $non2xx, socket errors $socket)"
echo "latency p99:      $p99"
[ "$((non2xx + socket + failed_reloads))" -eq 0 ]
