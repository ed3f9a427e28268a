# Operations targets, included by the project Makefile (`include deploy/ops.mk`).
#
#   make tf-init    ENV=staging|production   terraform init with the environment's state prefix
#   make tf-plan    ENV=...                  terraform plan  -var-file=environments/$(ENV).tfvars
#   make tf-apply   ENV=...                  terraform apply the saved plan (run tf-plan first)
#   make k8s-render ENV=...                  render the overlay to deploy/.rendered/$(ENV).yaml
#   make k8s-apply  ENV=... [IMAGE_TAG=sha]  apply in the runbook's order: platform objects,
#                                            migration Job (waits for completion), API, workers, web
#
# Variables: ENV (default staging), TF_STATE_BUCKET (default <project>-pull-tfstate),
# IMAGE_TAG (default: the current commit), KUBECTL, TERRAFORM.

ENV ?= staging
OPS_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
TF_DIR := $(OPS_DIR)/terraform
K8S_DIR := $(OPS_DIR)/kubernetes
TERRAFORM ?= terraform
KUBECTL ?= kubectl
K8S_NAMESPACE ?= pull
TF_PROJECT = $(shell sed -n 's/^project_id *= *"\(.*\)"/\1/p' $(TF_DIR)/environments/$(ENV).tfvars)
TF_STATE_BUCKET ?= $(TF_PROJECT)-pull-tfstate
IMAGE_TAG ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo latest)
RENDERED = $(OPS_DIR)/.rendered/$(ENV).yaml

.PHONY: ops-check-env tf-init tf-plan tf-apply k8s-render k8s-apply

ops-check-env:
	@case "$(ENV)" in staging|production) ;; *) echo "ENV must be staging or production (got '$(ENV)')" >&2; exit 2;; esac

tf-init: ops-check-env
	$(TERRAFORM) -chdir=$(TF_DIR) init -reconfigure \
		-backend-config="bucket=$(TF_STATE_BUCKET)" -backend-config="prefix=pull/$(ENV)"

tf-plan: ops-check-env
	$(TERRAFORM) -chdir=$(TF_DIR) plan -var-file=environments/$(ENV).tfvars -out=$(ENV).tfplan

tf-apply: ops-check-env
	@test -f $(TF_DIR)/$(ENV).tfplan || { echo "no $(TF_DIR)/$(ENV).tfplan: run make tf-plan ENV=$(ENV) first" >&2; exit 2; }
	$(TERRAFORM) -chdir=$(TF_DIR) apply $(ENV).tfplan

k8s-render: ops-check-env
	@mkdir -p $(dir $(RENDERED))
	$(KUBECTL) kustomize --load-restrictor LoadRestrictionsNone $(K8S_DIR)/overlays/$(ENV) \
		| sed -E 's#(image: .*/pull-(api|temporal-worker|web)):unreleased#\1:$(IMAGE_TAG)#' > $(RENDERED)
	@echo "rendered $(RENDERED) (images tagged $(IMAGE_TAG))"

k8s-apply: k8s-render
	$(KUBECTL) apply -f $(RENDERED) -l app.kubernetes.io/component=platform
	$(KUBECTL) -n $(K8S_NAMESPACE) delete job pull-migrate --ignore-not-found --wait=true
	$(KUBECTL) apply -f $(RENDERED) -l app.kubernetes.io/component=migration
	$(KUBECTL) -n $(K8S_NAMESPACE) wait --for=condition=complete job/pull-migrate --timeout=900s
	$(KUBECTL) apply -f $(RENDERED) -l app.kubernetes.io/component=api
	$(KUBECTL) -n $(K8S_NAMESPACE) rollout status deployment/pull-api --timeout=600s
	$(KUBECTL) -n $(K8S_NAMESPACE) rollout status deployment/pull-sockets --timeout=600s
	$(KUBECTL) apply -f $(RENDERED) -l app.kubernetes.io/component=worker
	$(KUBECTL) -n $(K8S_NAMESPACE) rollout status deployment/pull-temporal-worker --timeout=900s
	$(KUBECTL) apply -f $(RENDERED) -l app.kubernetes.io/component=web
	$(KUBECTL) -n $(K8S_NAMESPACE) rollout status deployment/pull-web --timeout=300s
