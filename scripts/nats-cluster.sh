# Sourced: `nats_cluster DIR PKI NODE...` starts three NATS JetStream
# servers on 127.0.0.1 (TLS with the nadc CA, routed to each other) under
# DIR/nats-{1,2,3}, with PKI's `nats` node certificate, admitting only the
# node certificates of NODE... (each mapped to a NATS user by its subject,
# as deploy/REPLICATION.md configures it); waits until each is ready. Sets NATS_PIDS (array) and
# NATS_SERVERS, the quoted URL list for a node's `[replication] servers`.
# Used by scripts/demo-replicated and benches/replication.sh.
NATS="${NADC_NATS_SERVER:-$(command -v nats-server || echo "$HOME/.cache/nadc/nats/bin/nats-server")}"

nats_free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# nats_wait_for FILE TEXT: waits (at most 60 s) for FILE to contain TEXT.
nats_wait_for() {
  for _ in $(seq 1 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "timed out waiting for '$2' in $1:" >&2; tail -20 "$1" >&2; return 1
}

nats_cluster() {
  local dir=$1 pki=$2 ports=() cports=() urls=() routes i d n users=""
  shift 2
  for n in "$@"; do users+="{ user: \"CN=nadc node $n\" }, "; done
  for i in 1 2 3; do ports+=("$(nats_free_port)"); cports+=("$(nats_free_port)"); done
  routes=$(printf '"nats-route://127.0.0.1:%s", ' "${cports[@]}"); routes="[${routes%, }]"
  NATS_PIDS=()
  for i in 0 1 2; do
    d="$dir/nats-$((i + 1))"; mkdir -p "$d/js"
    cat >"$d/server.conf" <<CONF
server_name: "nats-$((i + 1))"
listen: "127.0.0.1:${ports[$i]}"
jetstream { store_dir: "$d/js" }
tls { cert_file: "$pki/nodes/nats.crt", key_file: "$pki/nodes/nats.key", ca_file: "$pki/ca.crt", verify_and_map: true }
authorization { users = [ ${users%, } ] }
cluster { name: "nadc", listen: "127.0.0.1:${cports[$i]}", routes: $routes }
CONF
    "$NATS" -c "$d/server.conf" >"$d/server.log" 2>&1 &
    NATS_PIDS+=($!)
    urls+=("\"tls://127.0.0.1:${ports[$i]}\"")
  done
  for i in 1 2 3; do nats_wait_for "$dir/nats-$i/server.log" "Server is ready"; done
  NATS_SERVERS=$(IFS=,; echo "${urls[*]}")
}
