# The sk8s operator image: one image for every operator; the command picks which.
#   docker build -t sk8s-operator:latest .
# Needs a registry for its base image. Without one, `make images` builds the same image
# (Debian's Python 3.11, `pip install .`, uid 10001, this CMD) as localhost/sk8s-operator
# (hack/build-operator-image.sh; tests/images checks that its command is this CMD).
# Default: the SandboxPod operator. Another operator, e.g.:
#   kopf run --standalone --all-namespaces --liveness=http://0.0.0.0:8080/healthz -m operators.<name>.operator
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml ./
COPY operators ./operators
RUN pip install . && rm -rf /src

RUN groupadd --system --gid 10001 sk8s \
 && useradd --system --uid 10001 --gid sk8s --home-dir /home/sk8s --create-home sk8s
USER 10001:10001
WORKDIR /home/sk8s

EXPOSE 8080
CMD ["kopf", "run", "--standalone", "--all-namespaces", \
     "--liveness=http://0.0.0.0:8080/healthz", "-m", "operators.sandboxpod.operator"]
