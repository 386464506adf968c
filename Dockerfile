# syntax=docker/dockerfile:1
# The colonies-operator image, for users with Docker (or any BuildKit builder):
#   docker build -t colonies-operator:0.1.0 .
# It cannot be built on the project's own machines (no Docker engine, no registry): there,
# `hack/images/build.sh operator` builds the same contents without Docker (Debian bookworm with Debian's
# python3, a venv at /opt/colonies-operator without pip, user colonies uid 10001); see hack/images/README.md.
# Keep the two in step.

# 1. The project's wheel and its dependencies' wheels. The builder's Python only fetches and builds wheels;
#    they are cp311, like Debian bookworm's python3 that runs them.
FROM python:3.11-slim-bookworm AS wheels
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN pip wheel --no-cache-dir --prefer-binary --wheel-dir /wheels .

# 2. The venv, made by the interpreter that will run it (its symlinks point at /usr/bin/python3).
FROM debian:bookworm-slim AS venv
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
RUN --mount=type=bind,from=wheels,source=/wheels,target=/wheels \
    python3 -m venv /opt/colonies-operator \
    && /opt/colonies-operator/bin/pip install --no-cache-dir --no-index --no-compile --find-links /wheels \
       colonies-operator \
    && /opt/colonies-operator/bin/pip uninstall -y -q pip setuptools \
    # Not used, and most of the image otherwise: the Kubernetes client's asyncio variant (70 MB, not
    # imported by kubernetes/__init__.py) and the packages' test suites.
    && rm -rf /opt/colonies-operator/lib/python3.*/site-packages/kubernetes/aio \
    && find /opt/colonies-operator/lib -depth -type d -name tests -exec rm -rf {} + \
    # Hash-based .pyc: valid whatever the files' mtimes, and nothing to write on a read-only root file system.
    && python3 -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/colonies-operator/lib

# 3. The runtime: python3 only, the venv, a fixed non-root user.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/* \
    && python3 -m compileall -q -f -j 0 --invalidation-mode unchecked-hash /usr/lib/python3 /usr/lib/python3.11 \
    && groupadd --gid 10001 colonies \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin colonies
COPY --from=venv /opt/colonies-operator /opt/colonies-operator
ENV PATH=/opt/colonies-operator/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
ENTRYPOINT ["colonies-operator"]
CMD ["run", "--all-namespaces"]
