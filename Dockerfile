# syntax=docker/dockerfile:1
#
# One image with every Kelvin binary: kelvin-rules, kelvin-ingest, kelvin-scoring and kelvin
# (all-in-one). The Helm chart picks one per Deployment with `command`; run as is, the image
# starts `kelvin up` with its data in the /data volume.
#
#   docker build -t kelvin:0.1.0 .
#
# docs/operations.md has the build, scan and push steps.

ARG RUST_VERSION=1.95
# Debian 12 (bookworm) on both sides: the binaries link against the runtime's glibc.
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS builder
WORKDIR /src
COPY . .
# Cache mounts keep the registry and target/ between builds (BuildKit); the binaries are copied
# out of the cache so that the next stage can take them.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked \
        -p kelvin -p kelvin-rules -p kelvin-ingest -p kelvin-scoring \
    && mkdir -p /out/bin /out/data \
    && cp target/release/kelvin target/release/kelvin-rules target/release/kelvin-ingest \
        target/release/kelvin-scoring /out/bin/

FROM ${RUNTIME_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="kelvin" \
      org.opencontainers.image.description="Kelvin: multi-tenant lead scoring over gRPC" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/bin/ /usr/local/bin/
# The embedded server's data dir (SQLite, generated key, admin token), owned by the non-root user.
COPY --from=builder --chown=65532:65532 /out/data /data
# distroless `nonroot`: uid and gid 65532, as the chart's securityContext expects.
USER 65532:65532
WORKDIR /data
ENV KELVIN_LISTEN=0.0.0.0:50051 \
    KELVIN_DATA_DIR=/data
EXPOSE 50051
VOLUME ["/data"]
ENTRYPOINT ["/usr/local/bin/kelvin"]
CMD ["up"]
