#!/bin/sh
# nats-server with its WebSocket listener on 127.0.0.1:PORT (nats.conf).
# Usage: run.sh PORT                         one server
#        run.sh PORT CLUSTER_PORT ALL_PORTS  a node of a cluster: it listens
#          for routes on CLUSTER_PORT and routes to every port of ALL_PORTS
#          (comma-separated cluster ports, its own among them)
# exec: the benchmark samples the pid it started, which is the server's.
set -e
port=$1
cluster=$2
all=$3
export RTBENCH_PORT="$port"
conf="$(dirname "$0")/nats.conf"
if [ -z "$cluster" ]; then
  exec nats-server -c "$conf"
fi
routes=$(echo "$all" | tr ',' '\n' | sed 's|^|nats://127.0.0.1:|' | paste -sd, -)
exec nats-server -c "$conf" --cluster_name rtbench --cluster "nats://127.0.0.1:$cluster" --routes "$routes"
