#!/bin/sh
# RabbitMQ (Debian's 3.10) serving MQTT or STOMP over WebSocket on
# 127.0.0.1:PORT (Web-MQTT at /mqtt, Web-STOMP at /stomp), in a directory
# of its own: config, enabled plugins, Mnesia, logs, node name, a private
# epmd on a free port. Usage: run.sh mqtt|stomp PORT
# exec: the benchmark samples the pid it started, which becomes the Erlang
# VM's; epmd is started with PR_SET_PDEATHSIG so that it ends with the VM.
set -e
kind=$1
port=$2
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
case "$kind" in
  mqtt) plugin=rabbitmq_web_mqtt ;;
  stomp) plugin=rabbitmq_web_stomp ;;
  *) echo "usage: run.sh mqtt|stomp PORT" >&2; exit 2 ;;
esac
# One directory per port, emptied first: what a run leaves stays bounded.
dir="${TMPDIR:-/tmp}/rtbench-rabbitmq-$port"
rm -rf "$dir"
mkdir -p "$dir"
printf '[%s].\n' "$plugin" > "$dir/enabled_plugins"
cat > "$dir/rabbitmq.conf" <<CONF
listeners.tcp = none
# The protocol plugin under the Web one listens on its own port too (1883,
# 61613 on every address) unless told not to: only the WebSocket port here.
$kind.listeners.tcp = none
# The load generator connects from 127.0.0.2 and up: loopback all the same.
loopback_users = none
log.console = true
log.console.level = warning
log.file = false
web_$kind.tcp.ip = 127.0.0.1
web_$kind.tcp.port = $port
web_$kind.ws_path = /$kind
web_$kind.max_connections = infinity
web_$kind.tcp.backlog = 4096
CONF
epmd_port=$(free_port)
export HOME="$dir"
export RABBITMQ_NODENAME="rtbench$port@localhost"
export RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf"
export RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
export RABBITMQ_MNESIA_BASE="$dir/mnesia"
export RABBITMQ_LOG_BASE="$dir/log"
export RABBITMQ_DIST_PORT="$(free_port)"
export ERL_EPMD_PORT="$epmd_port"
# The VM replaces this shell (no signal-forwarding parent) and reads no stdin.
export RABBITMQ_ALLOW_INPUT=1
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-noinput"
setpriv --pdeathsig TERM epmd -port "$epmd_port" &
until python3 -c "import socket; socket.create_connection(('127.0.0.1', $epmd_port), 1)" 2>/dev/null; do
  sleep 0.05
done
exec /usr/lib/rabbitmq/bin/rabbitmq-server
