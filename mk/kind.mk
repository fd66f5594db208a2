# Cluster quick start on kind (or minikube with ECOM_CLUSTER=minikube); needs Docker, kind and
# helm. See README, "Cluster quick start (kind / minikube)".

.PHONY: kind-up kind-down image

# Builds the ecom image (ecom:dev, or ECOM_IMAGE).
image:
	docker build -t $${ECOM_IMAGE:-ecom:dev} .

kind-up:
	scripts/kind-up.sh

kind-down:
	scripts/kind-down.sh
