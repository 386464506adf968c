#!/usr/bin/env bash
# A private S3 server (MinIO, built by hack/build-minio.sh) for ColonyFS: the bytes of the files that
# `colonies fs sync` and snapshots move; Colonies itself keeps only their metadata.
#
# usage: s3.sh up|down [--purge]|status|env
#   up      start it (idempotent: a healthy server is left alone) and create the bucket
#   down    stop it; the data and the credentials stay for the next `up` (--purge removes them too)
#   status  one line; exit status 0 when it answers, 1 otherwise
#   env     the AWS_S3_* variables the colonies CLI and the executors read, as shell exports
#           (eval "$(hack/s3.sh env)"); they hold the secret key: stdout only, never in a log
#
# It listens on $S3_ADDRESS:$S3_PORT only, by default the cluster bridge 10.88.0.1 (hack/cluster/up.sh makes
# it), which this host and the cluster's pods both reach; S3_ADDRESS=127.0.0.1 for a server this host alone
# uses. MinIO's console is off. Its root credentials are generated at the first `up` into
# $S3_STATE_DIR/credentials (mode 0600; default state dir $CACHE_DIR/s3, outside the repository), its data
# is in $S3_STATE_DIR/data. Progress lines go to stderr. Needs no root, except for the bridge's address
# to exist.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
. "$HERE/lib.sh"

S3_ADDRESS="${S3_ADDRESS:-10.88.0.1}"
S3_PORT="${S3_PORT:-9000}"
S3_BUCKET="${S3_BUCKET:-colonies-prod}"
S3_REGION="${S3_REGION:-us-east-1}"
STATE="${S3_STATE_DIR:-$CACHE_DIR/s3}"
CREDENTIALS="$STATE/credentials"
DATA="$STATE/data"
LOG="$STATE/minio.log"
PIDFILE="$STATE/minio.pid"
ENDPOINT="$S3_ADDRESS:$S3_PORT"

usage() { sed -n '5,10s/^# \{0,1\}//p' "$0" >&2; exit 2; }

# The address must be one of this host's own, and a specific one: never a wildcard.
check_address() {
  case $S3_ADDRESS in
    ''|0.0.0.0|'::'|'[::]'|*:*) die "S3_ADDRESS must be one IPv4 address of this host, not '$S3_ADDRESS'" ;;
  esac
  if ! ip -4 -o addr show 2>/dev/null | awk '{print $4}' | grep -qx "${S3_ADDRESS//./\\.}/[0-9]*"; then
    if [ "$S3_ADDRESS" = 10.88.0.1 ]; then
      die "10.88.0.1 (the cluster bridge) is not up: run hack/cluster/up.sh first, or set S3_ADDRESS=127.0.0.1 for a server only this host reaches"
    fi
    die "$S3_ADDRESS is not an address of this host"
  fi
}

# The PID of our MinIO when it runs: the recorded PID, still a minio serving our data dir.
running_pid() {
  local pid exe
  [ -s "$PIDFILE" ] || return 1
  pid=$(cat "$PIDFILE")
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  [ "$(basename "${exe% (deleted)}")" = minio ] || return 1
  tr '\0' '\n' < "/proc/$pid/cmdline" 2>/dev/null | grep -qxF "$DATA" || return 1
  echo "$pid"
}

# The address:port the running MinIO serves (its --address), which `status` and `env` report whatever S3_ADDRESS
# and S3_PORT say now.
running_endpoint() {
  local pid
  pid=$(running_pid) || return 1
  tr '\0' '\n' < "/proc/$pid/cmdline" | sed -n '/^--address$/{n;p;q}'
}

healthy() {
  [ "$(curl --silent --max-time 2 -o /dev/null -w '%{http_code}' "http://$ENDPOINT/minio/health/live" 2>/dev/null)" = 200 ]
}

# Generated once: MinIO's root user (20 characters) and password (40), as in the tutorial's compose file.
ensure_credentials() {
  [ -s "$CREDENTIALS" ] && return 0
  step "generating the S3 credentials into $CREDENTIALS (mode 0600)"
  local user pass
  user=$(LC_ALL=C tr -dc 'A-Za-z0-9' < /dev/urandom | head -c 20) || true
  pass=$(LC_ALL=C tr -dc 'A-Za-z0-9' < /dev/urandom | head -c 40) || true
  if [ ${#user} -ne 20 ] || [ ${#pass} -ne 40 ]; then die "cannot generate credentials"; fi
  (umask 077; printf 'MINIO_ROOT_USER=%s\nMINIO_ROOT_PASSWORD=%s\n' "$user" "$pass" > "$CREDENTIALS.tmp")
  mv "$CREDENTIALS.tmp" "$CREDENTIALS"
}

# credential NAME: the value of NAME in the credentials file.
credential() {
  [ -s "$CREDENTIALS" ] || die "no credentials yet: run '$0 up' first"
  [ "$(stat -c %a "$CREDENTIALS")" = 600 ] || die "$CREDENTIALS must have mode 0600"
  sed -n "s/^$1=//p" "$CREDENTIALS"
}

# The bucket the clients use, made here once: the colonies CLI makes a missing bucket itself, but two
# clients starting together race (the second gets BucketAlreadyOwnedByYou and fails). A signed PUT with
# curl; the credentials go through its stdin, not its command line.
ensure_bucket() {
  local code
  code=$(printf 'user = "%s:%s"\n' "$(credential MINIO_ROOT_USER)" "$(credential MINIO_ROOT_PASSWORD)" |
    curl --silent --max-time 10 --config - --aws-sigv4 "aws:amz:$S3_REGION:s3" -X PUT -o /dev/null \
      -w '%{http_code}' "http://$ENDPOINT/$S3_BUCKET") || true
  case $code in
    200) step "bucket $S3_BUCKET created" ;;
    409) ;;  # exists already
    *) die "cannot create the bucket $S3_BUCKET (HTTP $code)" ;;
  esac
}

up() {
  check_address
  mkdir -p "$STATE"
  chmod 700 "$STATE"
  exec 9>"$STATE/.lock"
  flock 9
  ensure_credentials
  local pid running
  if running=$(running_endpoint) && [ "$running" != "$ENDPOINT" ]; then
    die "the S3 server of $STATE runs at $running, not $ENDPOINT: '$0 down' first to move it"
  fi
  if pid=$(running_pid) && healthy; then
    step "S3 server already running (pid $pid) at http://$ENDPOINT"
    ensure_bucket
    return 0
  fi
  [ -z "${pid:-}" ] || { step "S3 server (pid $pid) does not answer: restarting it"; stop; }
  local minio listeners
  minio=$("$HERE/build-minio.sh")
  # MinIO listens on loopback (127.0.0.1, ::1) as well as on its address, with SO_REUSEPORT: a second server
  # on the same port would start and silently share the requests with the first. So the port must be free.
  listeners=$(ss -Htln "sport = :$S3_PORT" 2>/dev/null | awk '{print $4}' | xargs)
  [ -z "$listeners" ] || die "port $S3_PORT is in use on this host ($listeners): set S3_PORT to another port"
  mkdir -p "$DATA" "$STATE/certs"
  step "starting MinIO at http://$ENDPOINT (data $DATA, log $LOG)"
  # A clean environment: no MINIO_* or proxy settings of the caller's leak in; the credentials go by the
  # environment (readable by root alone), not by the command line.
  (
    umask 077
    exec 9>&-  # the lock stays with this script
    exec env -i PATH=/usr/bin:/bin HOME="$STATE" \
      MINIO_ROOT_USER="$(credential MINIO_ROOT_USER)" MINIO_ROOT_PASSWORD="$(credential MINIO_ROOT_PASSWORD)" \
      MINIO_REGION="$S3_REGION" MINIO_BROWSER=off MINIO_UPDATE=off \
      setsid "$minio" server --quiet --anonymous --address "$ENDPOINT" --certs-dir "$STATE/certs" "$DATA" \
      >>"$LOG" 2>&1 </dev/null
  ) &
  pid=$!
  echo "$pid" > "$PIDFILE"
  local deadline=$((SECONDS + 60))
  until healthy; do
    # Until the subshell has exec'd MinIO, the PID is not yet a minio: only ask whether it lives (a child that
    # exited stays a zombie, state Z, until this script ends).
    if [ "$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)" = Z ] || [ ! -e "/proc/$pid" ] ||
      [ $SECONDS -gt $deadline ]; then
      kill -KILL "$pid" 2>/dev/null || true
      rm -f "$PIDFILE"
      tail -n 20 "$LOG" >&2 || true
      die "MinIO did not start (log: $LOG)"
    fi
    sleep 0.2
  done
  step "S3 server up (pid $(cat "$PIDFILE")) at http://$ENDPOINT"
  ensure_bucket
}

stop() {
  local pid
  pid=$(running_pid) || { rm -f "$PIDFILE"; return 0; }
  step "stopping MinIO (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 150); do running_pid >/dev/null || break; sleep 0.1; done
  if running_pid >/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f "$PIDFILE"
}

down() {
  [ -d "$STATE" ] || { step "no S3 server state in $STATE"; return 0; }
  exec 9>"$STATE/.lock"
  flock 9
  stop
  if [ "${1:-}" = --purge ]; then
    step "removing its data and credentials ($STATE)"
    rm -rf "$DATA" "$STATE/certs" "$STATE/.minio" "$CREDENTIALS" "$LOG"
  fi
}

status() {
  local pid
  if pid=$(running_pid); then
    ENDPOINT=$(running_endpoint)
    if healthy; then
      echo "S3 server running (pid $pid) at http://$ENDPOINT, bucket $S3_BUCKET, data $DATA ($(du -sh "$DATA" | cut -f1))"
      return 0
    fi
    echo "S3 server running (pid $pid) but not answering at http://$ENDPOINT (log: $LOG)"
    return 1
  fi
  echo "S3 server not running (state dir $STATE)"
  return 1
}

print_env() {
  if running_pid >/dev/null; then
    ENDPOINT=$(running_endpoint)
  else
    step "warning: the S3 server is not running ('$0 up' starts it)"
  fi
  local name value
  for name in AWS_S3_ENDPOINT AWS_S3_ACCESSKEY AWS_S3_SECRETKEY AWS_S3_REGION AWS_S3_TLS AWS_S3_BUCKET \
    AWS_S3_SKIPVERIFY; do
    case $name in
      AWS_S3_ENDPOINT) value=$ENDPOINT ;;
      AWS_S3_ACCESSKEY) value=$(credential MINIO_ROOT_USER) ;;
      AWS_S3_SECRETKEY) value=$(credential MINIO_ROOT_PASSWORD) ;;
      AWS_S3_REGION) value=$S3_REGION ;;
      AWS_S3_TLS) value=false ;;
      AWS_S3_BUCKET) value=$S3_BUCKET ;;
      AWS_S3_SKIPVERIFY) value=false ;;
    esac
    printf 'export %s="%s"\n' "$name" "$value"
  done
}

case "${1:-}" in
  up) up ;;
  down) down "${2:-}" ;;
  status) status ;;
  env) print_env ;;
  *) usage ;;
esac
