# syntax=docker/dockerfile:1
# The colonies-operator image. It starts from debian:bookworm-slim only, so the same file builds with Docker
#   docker build -t colonies-operator:0.2.0 .
# and, on the project's own machines (no Docker engine, no registry), with buildah: `hack/images/build.sh
# operator` (see hack/images/README.md), which is what `make demo` and the tests run, and `make image` exports.

# 1. The venv, made by the interpreter that will run it (Debian's python3: its symlinks point at /usr/bin/python3).
#    The dependencies are the locked ones (requirements/runtime.txt, hash-checked wheels), the project last, so
#    that a code change reuses the layers above it.
FROM debian:bookworm-slim AS venv
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
#    pip trusts the CA bundle in the optional build secret `ca-bundle`, for a network that reaches PyPI through a
#    TLS-intercepting proxy (docker build --secret id=ca-bundle,src=/etc/ssl/certs/ca-certificates.crt .);
#    hack/images/build.sh passes this host's. Secrets never enter the image.
COPY requirements/runtime.txt /tmp/runtime.txt
RUN --mount=type=secret,id=ca-bundle \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi \
    && python3 -m venv /opt/colonies-operator \
    && /opt/colonies-operator/bin/pip install --no-cache-dir --no-compile --disable-pip-version-check \
       --require-hashes --only-binary :all: --no-deps -r /tmp/runtime.txt
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN --mount=type=secret,id=ca-bundle \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi \
    && /opt/colonies-operator/bin/pip install --no-cache-dir --no-compile --disable-pip-version-check --no-deps . \
    && /opt/colonies-operator/bin/pip uninstall -y -q pip setuptools \
    # Not used: the packages' test suites.
    && find /opt/colonies-operator/lib -depth -type d -name tests -exec rm -rf {} + \
    # Hash-based .pyc: valid whatever the files' mtimes, and nothing to write on a read-only root file system.
    && python3 -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/colonies-operator/lib

# 2. The runtime: python3 only (no pip), the venv, a fixed non-root user.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/* \
    && python3 -m compileall -q -f -j 0 --invalidation-mode unchecked-hash /usr/lib/python3 /usr/lib/python3.11 \
    && groupadd --gid 10001 colonies \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin colonies
COPY --from=venv /opt/colonies-operator /opt/colonies-operator
# VERSION is the package's (operator/colonies_operator/__init__.py; a test keeps the two equal). hack/images/build.sh
# passes REVISION, the last commit that changed what goes into the image, and SOURCE when the checkout has a
# public origin.
ARG VERSION=0.2.0
ARG REVISION=unknown
ARG SOURCE=
LABEL org.opencontainers.image.title="colonies-operator" \
      org.opencontainers.image.description="A Kubernetes operator that turns a cluster into a ColonyOS executor" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim"
# PYTHONMALLOC=malloc: glibc's malloc for every object, so that the memory of a drained burst can be handed
# back to the system (operator/colonies_operator/engine/heap.py).
ENV PATH=/opt/colonies-operator/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONMALLOC=malloc
USER 10001:10001
ENTRYPOINT ["colonies-operator"]
CMD ["run", "--all-namespaces"]
