#!/bin/sh
# Mosquitto (Debian's 2.0) with a websockets listener on 127.0.0.1:PORT.
# Usage: run.sh PORT
# Mosquitto 2.0.11 refuses to start when every listener is a websockets one
# ("Unable to start any listening sockets"), so a unix socket listener,
# in a directory of its own, sits beside it. exec: the benchmark samples the
# pid it started, which is the broker's.
set -e
port=$1
# One directory per port, emptied first: what a run leaves stays bounded.
dir="${TMPDIR:-/tmp}/rtbench-mosquitto-$port"
rm -rf "$dir"
mkdir -p "$dir"
# Started as root, mosquitto drops to its own user before binding.
chmod 0777 "$dir"
cat > "$dir/mosquitto.conf" <<CONF
allow_anonymous true
persistence false
max_connections -1
log_dest stderr
log_type error
log_type warning
listener 0 $dir/mqtt.sock
listener $port 127.0.0.1
protocol websockets
CONF
exec mosquitto -c "$dir/mosquitto.conf"
