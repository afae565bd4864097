# authframework — a Kubernetes-native token authority for machine identities.
#
# The two commands: `make run` (a local control plane with the operator) and
# `make test` (unit, envtest integration and end-to-end tests). Every tool is
# built from the Go module proxy into bin/ the first time it is needed.

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec

GOOS   := $(shell go env GOOS)
GOARCH := $(shell go env GOARCH)

K8S_VERSION            ?= 1.37.2
CONTROLLER_GEN_VERSION ?= v0.23.0
SETUP_ENVTEST_VERSION  ?= v0.25.1
HELM_VERSION           ?= v3.22.0
KWOK_VERSION           ?= v0.8.0
OAUTH2_PROXY_VERSION   ?= v7.15.6

BIN := $(CURDIR)/bin
# setup-envtest's layout, so `setup-envtest use -i` finds the binaries.
K8S_BIN := $(BIN)/k8s/$(K8S_VERSION)-$(GOOS)-$(GOARCH)

KUBE_APISERVER          := $(K8S_BIN)/kube-apiserver
ETCD                    := $(K8S_BIN)/etcd
KUBECTL                 := $(K8S_BIN)/kubectl
KUBE_CONTROLLER_MANAGER := $(BIN)/kube-controller-manager-v$(K8S_VERSION)
KUBE_SCHEDULER          := $(BIN)/kube-scheduler-v$(K8S_VERSION)
KWOK                    := $(BIN)/kwok-$(KWOK_VERSION)
CONTROLLER_GEN          := $(BIN)/controller-gen-$(CONTROLLER_GEN_VERSION)
SETUP_ENVTEST           := $(BIN)/setup-envtest-$(SETUP_ENVTEST_VERSION)
HELM                    := $(BIN)/helm-$(HELM_VERSION)
# Only `make bench` needs it (a peer measured beside /validate), not `make test`.
OAUTH2_PROXY            := $(BIN)/oauth2-proxy-$(OAUTH2_PROXY_VERSION)
AUTHFRAMEWORK           := $(BIN)/authframework

ENVTEST_TOOLS := $(KUBE_APISERVER) $(ETCD) $(KUBECTL)
TOOLS := $(ENVTEST_TOOLS) $(KUBE_CONTROLLER_MANAGER) $(KUBE_SCHEDULER) $(KWOK) \
	$(CONTROLLER_GEN) $(SETUP_ENVTEST) $(HELM) $(OAUTH2_PROXY)

# What the tests need to find the tools; exported so `go test` sees them.
export KUBEBUILDER_ASSETS = $(K8S_BIN)
export AUTHFRAMEWORK_BIN = $(AUTHFRAMEWORK)
export AUTHFRAMEWORK_KUBECTL = $(KUBECTL)
export AUTHFRAMEWORK_KUBE_CONTROLLER_MANAGER = $(KUBE_CONTROLLER_MANAGER)
export AUTHFRAMEWORK_HELM = $(HELM)

UNIT_PKGS = $(shell go list ./... | grep -v /test/)

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make \033[36m<target>\033[0m\n"} \
	/^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } \
	/^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate CRDs (config/crd/bases), RBAC (config/rbac) and webhook configurations (config/webhook) from the markers.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd webhook paths="./..." \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac \
		output:webhook:artifacts:config=config/webhook
	hack/gen-chart.sh

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate deepcopy code for the API types.
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths="./api/..."

.PHONY: fmt
fmt: ## Run gofmt on the module.
	gofmt -l -w $$(git ls-files '*.go' | grep -v '^hack/tools/')

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: verify
verify: manifests generate fmt vet ## Regenerate everything and fail if anything changed or is untracked; the PROJECT file and the import rules hold.
	go mod tidy
	go test -count=1 -run '^(TestProjectFile|TestImportRules)$$' .
	@hack/verify-clean.sh

##@ Build

.PHONY: build
build: manifests generate fmt vet $(AUTHFRAMEWORK) ## Build bin/authframework.

.PHONY: $(AUTHFRAMEWORK)
$(AUTHFRAMEWORK):
	go build -o $@ .

.PHONY: tools
tools: $(TOOLS) ## Build every pinned tool into bin/ (each only when missing).

##@ Test

.PHONY: test
test: test-unit test-integration test-e2e ## Run every test: unit, envtest integration and end-to-end.

.PHONY: test-unit
test-unit: ## Unit tests of the pure packages (no control plane).
	go test -race -count=1 $(UNIT_PKGS)

.PHONY: test-integration
test-integration: $(ENVTEST_TOOLS) $(KUBE_CONTROLLER_MANAGER) $(HELM) $(SETUP_ENVTEST) ## envtest integration tests against a real kube-apiserver and etcd.
	@echo "KUBEBUILDER_ASSETS=$$($(SETUP_ENVTEST) use $(K8S_VERSION) --bin-dir $(BIN) -i -p path)"
	go test -count=1 -timeout 20m ./test/integration/...

.PHONY: test-e2e
test-e2e: $(ENVTEST_TOOLS) $(KUBE_CONTROLLER_MANAGER) $(KUBE_SCHEDULER) $(KWOK) $(AUTHFRAMEWORK) ## End-to-end tests: the built binaries under `make run`'s local control plane, real nginx, and a simulated cluster (kwok) for AuthServer rollouts.
	go test -count=1 -timeout 20m ./test/e2e/...

.PHONY: bench
bench: $(OAUTH2_PROXY) ## Benchmarks (go test -bench); /validate (10,000 accounts) under wrk beside a no-crypto handler, a bare go-jose handler and oauth2-proxy, directly and behind nginx; a valid client through nginx under a flood of forged tokens; POST /token over HTTP; figures in docs/benchmarks.md.
	go test -run '^$$' -bench . -benchmem -count $(or $(BENCH_COUNT),3) ./internal/... ./webhook/...
	go run ./hack/bench --duration $(or $(BENCH_DURATION),8s) --rounds $(or $(BENCH_ROUNDS),1) --oauth2-proxy $(OAUTH2_PROXY)
	go run ./hack/bench --flood --duration $(or $(BENCH_FLOOD_PHASE),6s)
	go run ./hack/bench --token-endpoint --duration $(or $(BENCH_DURATION),8s) --rounds $(or $(BENCH_ROUNDS),1)

.PHONY: bench-scale
bench-scale: $(ENVTEST_TOOLS) $(AUTHFRAMEWORK) ## The control plane at scale: BENCH_ACCOUNTS ServiceAccounts (default 10000) against envtest with the built manager and auth server as processes; time to Ready, API requests per account, peak RSS, /validate at that scale, cache hit rate under 1%/s churn. BENCH_SCALE_FLAGS adds flags (go run ./hack/benchscale -h).
	go run ./hack/benchscale --accounts $(or $(BENCH_ACCOUNTS),10000) --bin $(AUTHFRAMEWORK) --bin-dir $(K8S_BIN) $(BENCH_SCALE_FLAGS)

.PHONY: fuzz
FUZZ_TARGETS = ./internal/token:FuzzVerify ./internal/authz:FuzzNormalizePath ./internal/authz:FuzzRoutesAllow \
	./webhook/auth:FuzzExternalAuthShapes ./webhook/auth:FuzzTokenEndpoint ./webhook/auth:FuzzValidate
fuzz: ## Run every fuzz target for FUZZTIME each (default 60s): token verification, original-request parsing and route matching, the /token form and Basic credentials, the whole /validate handler.
	@for t in $(FUZZ_TARGETS); do \
		echo ">> $${t#*:} ($${t%%:*}) for $(or $(FUZZTIME),60s)"; \
		go test -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(or $(FUZZTIME),60s) $${t%%:*} || exit 1; \
	done

##@ Run

.PHONY: run
run: $(ENVTEST_TOOLS) $(KUBE_CONTROLLER_MANAGER) $(AUTHFRAMEWORK) $(if $(SIM),$(KUBE_SCHEDULER) $(KWOK)) ## Local control plane with CRDs, samples, the manager, the auth server and nginx (Ctrl-C stops all). SIM=1: a simulated cluster with a node, where the sample AuthServer rolls out.
	go build -o $(BIN)/localcluster ./hack/localcluster
	$(BIN)/localcluster --bin-dir $(K8S_BIN) --manager $(AUTHFRAMEWORK) --kube-controller-manager $(KUBE_CONTROLLER_MANAGER) --state-dir $(BIN)/run \
		$(if $(SIM),--sim --kube-scheduler $(KUBE_SCHEDULER) --kwok $(KWOK))

##@ Tools

$(KUBE_APISERVER) $(ETCD) $(KUBECTL):
	hack/build-tool.sh $(notdir $@) $@
$(KUBE_CONTROLLER_MANAGER):
	hack/build-tool.sh kube-controller-manager $@
$(KUBE_SCHEDULER):
	hack/build-tool.sh kube-scheduler $@
$(KWOK):
	hack/build-tool.sh kwok $@
$(CONTROLLER_GEN):
	hack/build-tool.sh controller-gen $@
$(SETUP_ENVTEST):
	hack/build-tool.sh setup-envtest $@
$(HELM):
	hack/build-tool.sh helm $@
$(OAUTH2_PROXY):
	hack/build-tool.sh oauth2-proxy $@
