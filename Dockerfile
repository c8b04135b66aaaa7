# syntax=docker/dockerfile:1
# vend-sidecar container image.
#
#   docker build -t vend-sidecar:0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" .
#
# Two stages on the official slim Python image: `build` makes wheels and a
# precompiled virtual environment (scripts/install-venv.sh, which CI runs too);
# the final stage copies only that environment, runs as a fixed non-root UID/GID
# and never writes outside the credentials volume, so it runs with
# readOnlyRootFilesystem: true. Pin the base by digest in your registry mirror:
#   --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:...
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY sidecar/ sidecar/
COPY scripts/install-venv.sh scripts/
RUN --mount=type=cache,target=/root/.cache/pip \
    scripts/install-venv.sh /src /opt/vend-sidecar

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="vend-sidecar" \
      org.opencontainers.image.description="Kubernetes sidecar that turns a pod identity token into short-lived object-storage credentials, kept fresh on disk" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/example/vend-sidecar" \
      org.opencontainers.image.documentation="https://github.com/example/vend-sidecar/blob/main/docs/deploy.md"
ENV PATH=/opt/vend-sidecar/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Nothing here installs at run time: remove pip, setuptools and wheel. The official
# image ships the standard library without .pyc files: compile it now (test suites
# excluded; they hold deliberately invalid files), or every start on a read-only
# root filesystem would recompile it in memory. The user has no home and no shell;
# its UID/GID match the manifests' runAsUser/runAsGroup.
RUN python -m pip uninstall --quiet --yes pip setuptools wheel \
 && python -m compileall -q -j 0 --invalidation-mode unchecked-hash -x '/(test|tests|idle_test)/' \
        "$(python -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')" \
 && groupadd --system --gid 10001 vend \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin vend
COPY --from=build /opt/vend-sidecar /opt/vend-sidecar
USER 10001:10001
EXPOSE 8081
STOPSIGNAL SIGTERM
ENTRYPOINT ["vend-sidecar"]
CMD ["run"]
