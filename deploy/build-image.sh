#!/usr/bin/env bash
# Builds the Cellar container image from the static binary alone:
#   deploy/build-image.sh [TAG]      (default tag cellar:local)
# The binary is compiled on the host (CGO_ENABLED=0: no libc needed) and
# the build context holds only it and deploy/Dockerfile.
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-cellar:local}
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$ctx/cellar" ./cmd/cellar
cp deploy/Dockerfile "$ctx/Dockerfile"
DOCKER_BUILDKIT=0 docker build -q -t "$tag" "$ctx" >/dev/null 2>&1 || DOCKER_BUILDKIT=0 docker build -t "$tag" "$ctx"
echo "built image $tag"
