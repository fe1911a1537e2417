# Sourced by the benchmark scripts after they set ROOT: a scratch folder ($WORK), the servers they
# start ($PIDS, stopped with the folder removed when the script exits), and the helpers each of
# them used to define for itself.
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT
# wait_file FILE [SECONDS]: until a server has written its ready file (10 s unless told).
wait_file() {
  local tries=$(( ${2:-10} * 20 ))
  for _ in $(seq "$tries"); do [[ -s $1 ]] && return 0; sleep 0.05; done
  echo "timeout waiting for $1" >&2; exit 1
}
# The port in a ready file ({"port":N,...}).
port_of() { sed -E 's/.*"port":([0-9]+).*/\1/' "$1"; }
# A loopback port free now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
# start_mock [FLAGS...]: a mock-upstream on a free loopback port, ready; sets MOCK (its port) and
# MOCK_PID.
start_mock() {
  "$ROOT/build/bin/mock-upstream" --port 0 --ready-file "$WORK/mock.json" --name bench "$@" 2>/dev/null &
  MOCK_PID=$!
  PIDS+=("$MOCK_PID")
  wait_file "$WORK/mock.json"
  MOCK=$(port_of "$WORK/mock.json")
}
