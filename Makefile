# ovsxdp — run `make help` for the targets.

GO        ?= go
PKGS      ?= ./...
# Packages whose tests run again under the race detector.
RACE_PKGS ?= $(foreach d,flow vport datapath,$(if $(wildcard $(d)/*.go),./$(d)/...))
# How many inputs each fuzz target runs in `make fuzz` (CI keeps it short).
FUZZ_EXECS          ?= 200000x
FUZZ_EXECS_TEARDOWN ?= 20000x
FUZZ_EXECS_SLOW     ?= 20000x
BENCHTIME ?= 1s
BENCHCOUNT ?= 5
BIN       ?= bin

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## build the binaries into ./bin
	$(GO) build -o $(BIN)/ ./cmd/...

.PHONY: deps
deps: ## install the system packages the tests and benchmarks use (Debian: openvswitch-common, openvswitch-switch, ovn-central, ovn-host, tcpdump, tshark, python3-scapy, iproute2, ethtool, iputils-ping, curl, clang-14, libclang-rt-14-dev)
	./.ci/deps

.PHONY: lint
lint: ## gofmt check and go vet
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)

# The integration tests (./test) take longer than all the other packages
# together, one test after another, mostly waiting on the daemons they
# start. unit names them first, so that go test builds and starts them
# first (it runs packages in the order named; in ./... order they came
# last and started some four minutes in on a loaded 2-CPU machine), and
# runs one package more than there are CPUs, so that the other packages
# still have one per CPU beside them.
UNIT_PKGS  ?= $(if $(filter ./...,$(PKGS)),./test/ )$(PKGS)
UNIT_PROCS ?= $(shell echo $$(( $$(nproc) + 1 )))

.PHONY: unit
unit: ## go test on every package (the integration tests first, one package more than CPUs at once)
	$(GO) test -count=1 -p $(UNIT_PROCS) -timeout 20m $(UNIT_PKGS)

.PHONY: race
race: ## go test -race on the packet-path packages
	$(GO) test -race -count=1 -timeout 20m $(RACE_PKGS)

.PHONY: fuzz
fuzz: ## run every fuzz target for a fixed budget (FUZZ_EXECS, default 200000x; FuzzTeardown per policy, FuzzTranslate and FuzzDpHashGroup: 20000x)
	FUZZ_EXECS=$(FUZZ_EXECS) FUZZ_EXECS_TEARDOWN=$(FUZZ_EXECS_TEARDOWN) FUZZ_EXECS_SLOW=$(FUZZ_EXECS_SLOW) ./.ci/fuzz

# How many inputs each libFuzzer binary runs in `make fuzz-libfuzzer`.
LIBFUZZER_RUNS      ?= 2000
LIBFUZZER_RUNS_SLOW ?= 300

.PHONY: fuzz-libfuzzer
fuzz-libfuzzer: ## build every fuzz target as a libFuzzer binary into bin/libfuzzer and run each for LIBFUZZER_RUNS inputs (FuzzTranslate, FuzzTeardown: LIBFUZZER_RUNS_SLOW)
	LIBFUZZER_RUNS=$(LIBFUZZER_RUNS) LIBFUZZER_RUNS_SLOW=$(LIBFUZZER_RUNS_SLOW) ./.ci/fuzz-libfuzzer

# How many times `make stress` runs the timing-sensitive packages.
STRESS_RUNS ?= 30

.PHONY: stress
stress: ## run the timing-sensitive test packages STRESS_RUNS times (default 30) under -race beside CPU hogs
	./.ci/stress $(STRESS_RUNS)

# The stages of `make test`, in order; .ci/run runs them one by one and
# prints how long each took.
TEST_STAGES := deps lint unit race fuzz fuzz-libfuzzer test-chaos-ci

.PHONY: test
test: $(TEST_STAGES) ## everything CI runs: lint, unit and integration tests, race detector, short fuzzing (go test and libFuzzer builds), 20 chaos schedules

.PHONY: test-stages
test-stages: ## print the stages of make test, in order
	@echo $(TEST_STAGES)

.PHONY: bench
bench: ## run the Go benchmarks of flow and datapath (BENCHCOUNT runs each)
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count $(BENCHCOUNT) $(RACE_PKGS)

.PHONY: bench-go
bench-go: ## Go benchmarks in alternating rounds, medians and ratios: bench/results/gobench.md, gobench.csv
	$(GO) run ./bench/gobench -out bench/results $(GOBENCH_ARGS)

.PHONY: bench-pipeline
bench-pipeline: ## multi-table pipeline: megaflow hit after 8 tables vs 1, translation through 10,000 rules: bench/results/pipeline.{md,csv}
	$(GO) run ./bench/gobench -out bench/results -name pipeline -pkgs ./flow,./datapath -bench 'PipelineHit|PipelineTables|Translate8Tables' -rounds 9 $(GOBENCH_ARGS)

# Extra flags for bench/race (see `go run ./bench/race -h`).
RACE_ARGS ?=

.PHONY: bench-race
bench-race: ## teardown race under load: bench/results/race.csv, race.png, race.md
	$(GO) run ./bench/race -out bench/results $(RACE_ARGS)

# Extra flags for bench/veth (see `go run ./bench/veth -h`).
VETH_ARGS ?=

.PHONY: bench-veth
bench-veth: ## as root: ovsxdp vs Linux bridge, OVS AF_XDP and XDP redirect on veths, and a stateful (ct) firewall in ovsxdp and OVS: bench/results/veth.{csv,md,png}
	$(GO) run ./bench/veth -out bench/results $(VETH_ARGS)

# Extra flags for the tunnel suite of bench/veth (see `go run ./bench/veth -h`).
TUNNEL_ARGS ?=

.PHONY: bench-tunnel
bench-tunnel: ## as root: TCP and small packets through a VXLAN tunnel between two host namespaces, ovsxdp vs OVS userspace (AF_XDP) and the kernel's vxlan + Linux bridge, target 1.2x OVS: bench/results/tunnel.{csv,md,png}
	$(GO) run ./bench/veth -suite tunnel -out bench/results $(TUNNEL_ARGS)

# Extra flags for bench/rules (see `go run ./bench/rules -h`).
RULES_ARGS ?=

.PHONY: bench-rules
bench-rules: ## as root: add 100,000 OVN-like rules to ovsxdp and to Open vSwitch, time and resident memory: bench/results/rules.{md,csv}
	$(GO) run ./bench/rules -out bench/results $(RULES_ARGS)

# Extra flags for bench/ovn (see `go run ./bench/ovn -h`).
OVN_ARGS ?=

.PHONY: bench-ovn
bench-ovn: ## as root: Debian's OVN 23.03 (ovn-northd, ovn-controller) on two chassis, each an ovsxdp daemon with br-int and br-phy, Geneve between them; three logical ports in namespaces on sw0, two on sw1, a logical router between, stateful ACLs and a load balancer: what ovsxdp refuses, ping on a chassis and across and through the router, TCP allowed, denied and to the VIP, the Geneve packets on the wire (OVN_ARGS='-chassis 1' for one chassis): bench/results/ovn.{md,csv}
	$(GO) run ./bench/ovn -out bench/results $(OVN_ARGS)

# Extra flags for bench/chaos (see `go run ./bench/chaos -h`).
CHAOS_ARGS ?= -schedules 1000
CHAOS_DRIVERS ?= ovsxdp-guarded,bridge,ovs,ovsxdp-legacy
# Child processes side by side: the drivers (and each driver's seeds) are
# shared out between them, one report.
CHAOS_PROCS ?= 4

.PHONY: bench-chaos
bench-chaos: ## as root: seeded schedules of link, queue, namespace, port and restart operations under traffic against ovsxdp (guarded, legacy), the Linux bridge and OVS AF_XDP, invariants after every step: bench/results/chaos.{md,csv}
	$(GO) run ./bench/chaos -out bench/results -procs $(CHAOS_PROCS) -drivers $(CHAOS_DRIVERS) $(CHAOS_ARGS)

.PHONY: test-chaos
test-chaos: ## as root: 20 chaos schedules against ovsxdp (guarded) and every schedule of the regression corpus (1 to 3 minutes on a loaded 2-CPU machine)
	OVSXDP_CHAOS_SCHEDULES=$${OVSXDP_CHAOS_SCHEDULES:-20} $(GO) test -count=1 -timeout 40m -run 'TestChaos' -v ./test/

.PHONY: test-chaos-ci
test-chaos-ci: ## as root: the 20 chaos schedules of make test-chaos against ovsxdp (guarded), without the regression corpus (which unit runs); part of make test
	OVSXDP_CHAOS_SCHEDULES=20 $(GO) test -count=1 -timeout 15m -run 'TestChaosSchedules' ./test/

.PHONY: clean
clean: ## remove build output
	rm -rf $(BIN)
