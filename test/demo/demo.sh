#!/usr/bin/env bash
# make demo: two simulated KVM hosts joined by an sclp-ovs tunnel, traffic, a comparison.
# Needs root, bin/sclp-ovs (make build) and the packages of `make deps`. Everything the demo
# creates lives in network namespaces it made and is removed when it exits.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "$(id -u)" != 0 ]; then echo "demo: run as root" >&2; exit 1; fi
[ -x bin/sclp-ovs ] || { echo "demo: bin/sclp-ovs missing (make build)" >&2; exit 1; }
GO=${GO:-go}
mkdir -p bin
CGO_ENABLED=0 "$GO" build -o bin/sclp-ovs-demo ./test/demo
./bin/sclp-ovs-demo -bin bin/sclp-ovs "$@" &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true' INT TERM
trap 'kill -TERM "$pid" 2>/dev/null || true' EXIT
wait "$pid"
