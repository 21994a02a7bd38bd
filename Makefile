# sclp-ovs: VXLAN over SCLP for Open vSwitch.
# `make demo` and `make test` do their own set-up on a fresh Debian 12 machine (run as root).

GO        ?= go
BIN       := bin/sclp-ovs
PKGS      := ./...
DEB_PKGS  := clang-19 llvm-19 libbpf-dev bpftool openvswitch-switch iperf3 ethtool iproute2 \
             tcpdump prometheus libwireshark-data
# libwireshark-data: its /usr/share/wireshark/services is a copy of the IANA port registry,
# which TestDefaultUDPPortUnassigned checks the default UDP port against.
FUZZTIME  ?= 10s
export PATH := /usr/lib/llvm-19/bin:$(PATH)

.PHONY: all deps build test test-unit demo bench generate fuzz lint clean

all: build

## deps: install every Debian package the project needs (idempotent, quiet).
deps:
	@missing=""; for p in $(DEB_PKGS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "deps: installing$$missing"; \
		apt-get update -qq >/dev/null && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null || exit 1; \
	fi
	@$(GO) mod download

## build: the sclp-ovs binary.
build:
	@mkdir -p bin
	CGO_ENABLED=0 $(GO) build -o $(BIN) ./cli/sclp-ovs

## test: every test, privileged ones included (CI runs as root).
test: deps build
	$(GO) vet $(PKGS)
	$(GO) test -count=1 -timeout 25m -p 1 $(PKGS)

## test-unit: the tests that need neither root nor namespaces.
test-unit:
	$(GO) test -count=1 -short $(PKGS)

## demo: two simulated KVM hosts joined by an SCLP tunnel, traffic, a comparison.
demo: deps build
	./test/demo/demo.sh

## bench: the benchmark harness (BENCH_QUICK=1 for a few minutes).
bench: deps build
	GO=$(GO) $(GO) run ./test/bench

## generate: rebuild the BPF objects (needs clang-19).
generate: deps
	$(GO) generate ./offload/bpf/...

## fuzz: a short run of every fuzz target.
fuzz:
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz' || true); do \
			echo "fuzz: $$pkg $$f"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 100x $$pkg; \
		done; \
	done

## lint: gofmt, go vet, staticcheck.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 $(PKGS)

clean:
	rm -rf bin bench-results
