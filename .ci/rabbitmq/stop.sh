#!/bin/sh
# Stops the RabbitMQ node that start.sh started in WORK_DIR (PEM_DIR/rabbitmq), by its PID.
set -eu
work="${1:?usage: stop.sh WORK_DIR}"
pid=$(cat "$work/server.pid")
kill -TERM "$pid" 2>/dev/null || exit 0
# Wait for it to go, up to 30 s; then kill it.
i=0
while kill -0 "$pid" 2>/dev/null; do
    i=$((i + 1))
    if [ "$i" -gt 300 ]; then
        kill -KILL "$pid" 2>/dev/null || true
        break
    fi
    sleep 0.1
done
