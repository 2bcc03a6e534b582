#!/bin/sh
# Starts RabbitMQ 3.10 (Debian package rabbitmq-server) for fleetbench's generic AMQP 1.0
# dialect, as README "Against your own broker" runs it (and tests/run_amqp.rs, from these files):
#
#   start.sh DIR REGISTRY [PORT]
#
# DIR is the walkthrough's directory: DIR/ca/chain.pem (the CAs that sign devices, from
# `fleetbench pki init --out DIR/ca`), DIR/broker/server.chain.pem and server.key.pem (from
# `fleetbench pki server --out DIR/broker`). REGISTRY is `fleetbench pki registry`'s output (one
# JSON object per device) or a list of device ids, one a line: each becomes a passwordless user
# (SASL EXTERNAL maps the certificate CN, the device id, to it). PORT defaults to 5671, AMQP over
# TLS. The node gets its own home, database, logs and cookie under DIR/rabbitmq, listens on
# 127.0.0.1 only, and is ready when this script returns. Prints `port=N` and `pid=N`; stop it
# with `stop.sh DIR/rabbitmq`.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
usage="usage: start.sh DIR REGISTRY [PORT]"
dir=$(cd "${1:?$usage}" && pwd)
registry="${2:?$usage}"
port="${3:-5671}"
bin=/usr/lib/rabbitmq/bin
[ -x "$bin/rabbitmq-server" ] || { echo "start.sh: rabbitmq-server is not installed (apt-get install -y rabbitmq-server)" >&2; exit 3; }
for f in "$dir/ca/chain.pem" "$dir/broker/server.chain.pem" "$dir/broker/server.key.pem" "$registry"; do
    [ -r "$f" ] || { echo "start.sh: $f is missing" >&2; exit 2; }
done

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
dist_port=$(free_port)
work="$dir/rabbitmq"
mkdir -p "$work/log" "$work/mnesia"
sed -e "s|@PORT@|$port|g" -e "s|@DIR@|$dir|g" -e "s|@WORK_DIR@|$work|g" \
    "$here/rabbitmq.conf" > "$work/rabbitmq.conf"
cp "$here/enabled_plugins" "$work/enabled_plugins"
"$here/definitions.sh" "$registry" > "$work/definitions.json"
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
