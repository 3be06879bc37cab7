#!/usr/bin/env bash
# Make sure the servers the tests and `make up` talk to are running on loopback:
# RabbitMQ (5672; the vhost and per-service users are made by scripts/broker_users.py, run by
# make up and by the test suite) and PostgreSQL (5432). Installs them when absent
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
if ! port_open 5672; then
  command -v rabbitmq-server >/dev/null || apt_install rabbitmq-server
  # Every quorum queue holds open files; the default limit (1024) ran out at ~300 queues
  # and the broker stopped answering handshakes, so start it with room for more.
  ( ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"; rabbitmq-server -detached ) >/dev/null 2>&1 || true
  wait_port 5672 RabbitMQ
fi

# --- PostgreSQL ---------------------------------------------------------------
if [ "${STAGER_SKIP_POSTGRES:-}" != 1 ] && ! port_open 5432; then
  command -v pg_ctlcluster >/dev/null || apt_install postgresql
  ver=$(ls /etc/postgresql | sort -V | tail -n1)
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start >/dev/null 2>&1 || true
  wait_port 5432 PostgreSQL
fi
echo "ensure-services: RabbitMQ and PostgreSQL are up"
