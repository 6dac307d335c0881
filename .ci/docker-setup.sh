#!/usr/bin/env bash
# Make the docker provider usable here, idempotently:
#   1. install docker.io (and redis-server / memcached, whose binaries the local images copy) if missing;
#   2. start dockerd in the background unless an engine already answers, and wait up to 60 s for it;
#   3. build the local images lambdasim/{redis,memcached,aws}:local (no registry needed) and print
#      each tag with its build time; images already up to date are kept.
# Environment: PYTHON (default python3), DOCKERD_LOG (default /tmp/lambdasim-dockerd.log).
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
dockerd_log=${DOCKERD_LOG:-/tmp/lambdasim-dockerd.log}

echo "== docker: packages"
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
[ -x /usr/bin/redis-server ] || command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
[ -x /usr/bin/memcached ] || command -v memcached >/dev/null 2>&1 || missing+=(memcached)
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=300 update -qq
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq "${missing[@]}" >/dev/null
  echo "installed: ${missing[*]}"
else
  echo "already installed"
fi

echo "== docker: engine"
engine_answers() { timeout 10 docker info >/dev/null 2>&1; }
if engine_answers; then
  echo "an engine already answers"
else
  echo "starting dockerd (log: $dockerd_log)"
  nohup dockerd >"$dockerd_log" 2>&1 </dev/null &
  dockerd_pid=$!
  for _ in $(seq 1 60); do
    engine_answers && break
    kill -0 "$dockerd_pid" 2>/dev/null || break  # it exited: no point in waiting
    sleep 1
  done
  if ! engine_answers; then
    echo "dockerd did not answer within 60 s (or exited); the end of $dockerd_log:" >&2
    tail -n 30 "$dockerd_log" >&2 || true
    exit 1
  fi
  echo "dockerd answers"
fi

echo "== docker: local images"
"$python" -m lambdasim._services.images
