#!/usr/bin/env bash
# The engine tests that run on both sandboxes, on the fakefs side, inside a Docker container with
# Docker's default seccomp profile and as an unprivileged user: there user namespaces are refused,
# as on GitLab/CircleCI docker executors and GitHub Actions container jobs, so sandbox="auto" must
# pick fakefs (with its Landlock backstop), warn once, and the tests must pass.
# The container sees this machine's /usr, /etc, Python and checkout read-only (no registry needed:
# the image is an empty root made here); needs a running Docker engine (.ci/docker-setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

python_bin=$(python3 -c 'import os, sys; print(os.path.realpath(sys.executable))')
python_root=$(python3 -c 'import sys; print(sys.base_prefix)')
case "$python_root" in /usr|/usr/*) python_root="" ;; esac
image=lambdasim/hostview:local
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{usr,etc,tmp,proc,dev,sys,home}
chmod 1777 "$root/tmp"
for l in bin sbin lib lib64; do [ -e "/$l" ] && ln -s "usr/$l" "$root/$l"; done
mounts=(-v /usr:/usr:ro -v /etc:/etc:ro -v "$PWD:$PWD:ro")
# The package tests build requirements with pip: this machine's index settings, and its local wheels.
if [ -d /opt ]; then mkdir -p "$root/opt"; mounts+=(-v /opt:/opt:ro); fi
env_file="$root/.env"
env | grep -E '^(PIP_[A-Z_]+|https?_proxy|HTTPS?_PROXY|no_proxy|NO_PROXY)=' > "$env_file" || true
if [ -n "$python_root" ]; then
  mkdir -p "$root$python_root"
  mounts+=(-v "$python_root:$python_root:ro")
fi
# Packages installed outside the Python's own tree (pip --user, a venv elsewhere) are not seen.
tar -C "$root" --exclude ./.env -cf - . | docker import - "$image" >/dev/null

modules=$(grep -l '^BOTH_SANDBOXES = True' tests/*.py | tr '\n' ' ')
echo "== fakefs in a container (default seccomp, uid 65534): $modules"
docker run --rm --user 65534:65534 --network host --env-file "$env_file" "${mounts[@]}" -w "$PWD" \
  -e HOME=/tmp -e PYTHONDONTWRITEBYTECODE=1 -e LAMBDASIM_REQUIRE_SANDBOX=1 -e LAMBDASIM_EXPECT_FALLBACK=1 \
  "$image" /bin/sh -c '"$@"; status=$?; for p in /proc/[0-9]*; do [ "${p#/proc/}" = 1 ] || [ "${p#/proc/}" = $$ ] || { printf "left: %s " "${p#/proc/}"; tr "\0" " " < $p/cmdline; echo; }; done; exit $status' sh \
  "$python_bin" -m pytest -p no:cacheprovider -q -m "not docker" -k "fakefs and not namespace or auto_picks" \
  "$@" $modules tests/test_fakefs_landlock.py
