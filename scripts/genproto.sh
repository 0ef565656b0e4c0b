#!/usr/bin/env bash
# genproto.sh: regenerate ctl/edgepb's Go code from edge.proto with pinned
# generators, so every machine produces the same bytes. CI runs it and fails
# on any difference from what is checked in (scripts/test.sh).
#
#   ./scripts/genproto.sh
#
# protoc comes from Debian (protobuf-compiler, libprotoc 3.21.12 on bookworm;
# installed with apt-get when missing); the plugins are built from the
# versions pinned below into a private directory.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

PROTOC_WANT="libprotoc 3.21.12"
PROTOC_GEN_GO=google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC=google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2

if ! command -v protoc >/dev/null; then
	(apt-get update -qq && apt-get install -y -qq protobuf-compiler) >/dev/null 2>&1 ||
		{ echo "genproto: cannot install protobuf-compiler (apt-get)" >&2; exit 1; }
fi
have=$(protoc --version)
if [ "$have" != "$PROTOC_WANT" ]; then
	echo "genproto: protoc is \"$have\", the checked-in code was made with \"$PROTOC_WANT\"" >&2
	exit 1
fi

bin=$(mktemp -d /tmp/genproto.XXXXXX)
trap 'rm -rf "$bin"' EXIT
GOBIN=$bin go install "$PROTOC_GEN_GO"
GOBIN=$bin go install "$PROTOC_GEN_GO_GRPC"

PATH="$bin:$PATH" protoc -I ctl/edgepb -I /usr/include \
	--go_out=ctl/edgepb --go_opt=paths=source_relative \
	--go-grpc_out=ctl/edgepb --go-grpc_opt=paths=source_relative \
	ctl/edgepb/edge.proto
echo "genproto: ctl/edgepb regenerated"
