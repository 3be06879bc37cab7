#!/usr/bin/env bash
# Make sure the servers the tests and `make up` talk to are running on loopback:
# RabbitMQ (5672, its prometheus and management plugins on 15692 and 15672; the vhost and
# per-service users are made by scripts/broker_users.py, run by make up and by the test
# suite) and PostgreSQL (5432). Installs them when absent
# (Debian/Ubuntu, as root), starts them when stopped, and waits until they answer.
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  local port=$1 name=$2 i
  for i in $(seq 1 120); do
    port_open "$port" && return 0
    sleep 0.5
  done
  echo "ensure-services: $name did not start listening on 127.0.0.1:$port" >&2
  return 1
}

apt_install() {
  if [ "$(id -u)" != 0 ]; then
    echo "ensure-services: $* missing; install it (as root: apt-get install $*)" >&2
    return 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# --- RabbitMQ ---------------------------------------------------------------
PLUGIN_LISTENERS=(rabbitmq_management 15672 rabbitmq_prometheus 15692)
PLUGIN_ERL_ARGS="" PLUGIN_ENV=""
for i in 0 2; do
  app=${PLUGIN_LISTENERS[$i]} port=${PLUGIN_LISTENERS[$((i + 1))]}
  PLUGIN_ERL_ARGS+=" -$app tcp_config [{ip,{127,0,0,1}},{port,$port}]"
  PLUGIN_ENV+="application:load($app), application:set_env($app, tcp_config, [{ip,{127,0,0,1}},{port,$port}]), "
done
PLUGIN_ENV+="ok."
if ! port_open 5672; then
  command -v rabbitmq-server >/dev/null || apt_install rabbitmq-server
  # Every quorum queue holds open files; the default limit (1024) ran out at ~300 queues
  # and the broker stopped answering handshakes, so start it with room for more.
  # The plugins below listen on loopback only, from the first boot on.
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="${RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS:-} $PLUGIN_ERL_ARGS"
  ( ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"; rabbitmq-server -detached ) >/dev/null 2>&1 || true
  wait_port 5672 RabbitMQ
fi

# RabbitMQ's Prometheus plugin (15692: tests/deploy checks every rabbitmq_* metric the alerts
# and the dashboard read against it) and the management API (15672: the admin view's exact
# unacknowledged counts), both on 127.0.0.1 only. --online: a running broker is not
# restarted and keeps its connections; rabbitmq-plugins records them in its enabled_plugins
# file. The listeners' address is set in the running node first (a broker someone else
# restarts later binds them to its own configuration: see docs/deploy.md).
if [ "${STAGER_SKIP_RABBITMQ_PLUGINS:-}" != 1 ] && ! { port_open 15692 && port_open 15672; }; then
  if [ "$(id -u)" != 0 ] || ! command -v rabbitmq-plugins >/dev/null; then
    echo "ensure-services: RabbitMQ's prometheus and management plugins are off; as root:" \
      "rabbitmq-plugins enable --online rabbitmq_prometheus rabbitmq_management" >&2
  else
    rabbitmqctl -q eval "$PLUGIN_ENV" >/dev/null
    rabbitmq-plugins -q enable --online rabbitmq_prometheus rabbitmq_management >/dev/null
    wait_port 15692 "RabbitMQ's prometheus plugin"
    wait_port 15672 "RabbitMQ's management plugin"
  fi
fi

# --- PostgreSQL ---------------------------------------------------------------
if [ "${STAGER_SKIP_POSTGRES:-}" != 1 ] && ! port_open 5432; then
  command -v pg_ctlcluster >/dev/null || apt_install postgresql
  ver=$(ls /etc/postgresql | sort -V | tail -n1)
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start >/dev/null 2>&1 || true
  wait_port 5432 PostgreSQL
fi
echo "ensure-services: RabbitMQ and PostgreSQL are up"
