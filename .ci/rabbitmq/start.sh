#!/bin/sh
# Starts RabbitMQ 3.10 (Debian package rabbitmq-server) for fleetbench's AMQP tests.
#
#   start.sh PEM_DIR CN_FILE
#
# PEM_DIR holds ca.pem (roots that sign device certificates), server.pem (server chain) and
# server.key; CN_FILE lists device CNs, one a line. The node gets its own home, database, logs
# and cookie under PEM_DIR/rabbitmq, listens on 127.0.0.1 on a free port, and is ready when this
# script returns. Prints `port=N` and `pid=N` on stdout; stop it with `stop.sh PEM_DIR/rabbitmq`.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
pem_dir=$(cd "${1:?usage: start.sh PEM_DIR CN_FILE}" && pwd)
cn_file="${2:?usage: start.sh PEM_DIR CN_FILE}"
bin=/usr/lib/rabbitmq/bin
[ -x "$bin/rabbitmq-server" ] || { echo "start.sh: rabbitmq-server is not installed (apt-get install -y rabbitmq-server)" >&2; exit 3; }
for f in ca.pem server.pem server.key; do
    [ -r "$pem_dir/$f" ] || { echo "start.sh: $pem_dir/$f is missing" >&2; exit 2; }
done

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port=$(free_port)
dist_port=$(free_port)
work="$pem_dir/rabbitmq"
mkdir -p "$work/log" "$work/mnesia"
sed -e "s|@PORT@|$port|" -e "s|@PEM_DIR@|$pem_dir|" -e "s|@WORK_DIR@|$work|" \
    "$here/rabbitmq.conf" > "$work/rabbitmq.conf"
cp "$here/enabled_plugins" "$work/enabled_plugins"
"$here/definitions.sh" "$cn_file" > "$work/definitions.json"
node="fleetbench-$port@localhost"
echo "$node" > "$work/node"

export HOME="$work"
export RABBITMQ_NODENAME="$node"
export RABBITMQ_CONFIG_FILE="$work/rabbitmq.conf"
export RABBITMQ_ENABLED_PLUGINS_FILE="$work/enabled_plugins"
export RABBITMQ_MNESIA_BASE="$work/mnesia"
export RABBITMQ_LOG_BASE="$work/log"
export RABBITMQ_PID_FILE="$work/rabbitmq.pid"
export RABBITMQ_DIST_PORT="$dist_port"
export ERL_EPMD_ADDRESS=127.0.0.1
# The Erlang port mapper: start one on loopback if none runs (erl would start it anyway).
epmd -address 127.0.0.1 -daemon 2>/dev/null || true

setsid "$bin/rabbitmq-server" > "$work/log/stdout.log" 2>&1 < /dev/null &
pid=$!
echo "$pid" > "$work/server.pid"

# Ready when the node says so (no fixed sleeps): `wait` blocks until the node has written its
# PID file and its application has started (await_startup alone fails if the node has not yet
# registered with epmd).
if ! timeout 90 "$bin/rabbitmqctl" -n "$node" wait --timeout 60 "$RABBITMQ_PID_FILE" > "$work/log/await.log" 2>&1 ||
   ! timeout 90 "$bin/rabbitmqctl" -n "$node" await_startup --timeout 60 >> "$work/log/await.log" 2>&1; then
    echo "start.sh: RabbitMQ did not start; see $work/log" >&2
    tail -n 20 "$work/log/stdout.log" "$work/log/await.log" >&2 || true
    kill "$pid" 2>/dev/null || true
    exit 1
fi
echo "port=$port"
echo "pid=$pid"
