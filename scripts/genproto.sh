#!/usr/bin/env bash
# Regenerates every *.pb.go and *_grpc.pb.go under proto/ from the .proto
# files beside them, with pinned plugin versions. Usage: scripts/genproto.sh
# (scripts/genproto.sh --check fails if the committed code is stale).
#
# Needs protoc (Debian: apt-get install protobuf-compiler); installs the two Go
# plugins at the versions below into .bin/.
set -euo pipefail
cd "$(dirname "$0")/.."
PROTOC_GEN_GO=v1.36.12
PROTOC_GEN_GO_GRPC=v1.6.0

if ! command -v protoc >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && apt-get install -y -qq protobuf-compiler) >/dev/null
  else
    echo "genproto: protoc not found; install Debian's protobuf-compiler" >&2; exit 1
  fi
fi
bin="$PWD/.bin"
mkdir -p "$bin"
want="$PROTOC_GEN_GO $PROTOC_GEN_GO_GRPC"
if [ ! -x "$bin/protoc-gen-go" ] || [ ! -x "$bin/protoc-gen-go-grpc" ] || [ "$(cat "$bin/.versions" 2>/dev/null)" != "$want" ]; then
  GOBIN="$bin" go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO"
  GOBIN="$bin" go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC"
  echo "$want" > "$bin/.versions"
fi

check=false
[ "${1:-}" = "--check" ] && check=true
out=proto
if $check; then
  out=$(mktemp -d); trap 'rm -rf "$out"' EXIT
fi
mapfile -t files < <(find proto -name '*.proto' | sort)
if [ ${#files[@]} -eq 0 ]; then echo "genproto: no .proto files"; exit 0; fi
PATH="$bin:$PATH" protoc -I proto \
  --go_out="$out" --go_opt=paths=source_relative \
  --go-grpc_out="$out" --go-grpc_opt=paths=source_relative \
  "${files[@]}"
if $check; then
  stale=0
  while IFS= read -r f; do
    rel=${f#"$out"/}
    if ! cmp -s "$f" "proto/$rel"; then echo "genproto: proto/$rel is stale; run scripts/genproto.sh" >&2; stale=1; fi
  done < <(find "$out" -name '*.go')
  exit $stale
fi
echo "genproto: regenerated ${#files[@]} proto file(s)"
