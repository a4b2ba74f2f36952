# relay's container image: one static binary in an otherwise empty image.
#
#   docker build -t relay .                   # needs registry access (rust:1-bookworm)
#   scripts/build-image                       # offline: binary built on the host, then
#                                             # only the runtime stage (podman)
#
# BINARY picks the stage the runtime stage takes the binary from: `build`
# (the default) compiles it here; `prebuilt` takes `relay` from the build
# context, which is how scripts/build-image builds without pulling anything.
# Only the stages the target needs are built (BuildKit, Docker's default
# builder since 23.0, and podman/buildah do so).
ARG BINARY=build

# Static glibc build (musl is not needed): +crt-static on the gnu target
# links libc in, so the runtime stage needs no libraries at all.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
ENV RUSTFLAGS="-C target-feature=+crt-static" \
    CARGO_PROFILE_RELEASE_DEBUG=false \
    CARGO_PROFILE_RELEASE_STRIP=symbols
RUN triple="$(uname -m)-unknown-linux-gnu" \
 && cargo build --release --locked --target "$triple" --bin relay \
 && mkdir -p /out \
 && cp "target/$triple/release/relay" /out/relay

FROM scratch AS prebuilt
# So scripts/build-image can remove this stage's image after a build.
LABEL io.github.relay.stage=prebuilt
COPY relay /out/relay

FROM ${BINARY} AS binary

FROM scratch AS runtime
# The static binary resolves names with glibc's built-in `files` and `dns`
# (no NSS modules to load), but `localhost`, the default target, only
# through /etc/hosts: without one (`podman run --no-hosts`) it does not
# resolve. Kubernetes and podman mount their own /etc/hosts over this one.
# nsswitch.conf asks the file before DNS (glibc's default is DNS first).
COPY image/etc/ /etc/
# The default config (config/relay.yml, the one `relay gen` embeds); in a
# Pod the ConfigMap is mounted over /etc/relay.
COPY config/relay.yml /etc/relay/relay.yml
# The working directory is writable by relay's user, so the default
# relative `relay.wal_dir` (data/wal) works when no volume is mounted; in a
# Pod (read-only root) the WAL goes to an emptyDir.
COPY --chown=65532:65532 image/var/lib/relay/ /var/lib/relay/
COPY --from=binary /out/relay /usr/local/bin/relay
ENV PATH=/usr/local/bin
WORKDIR /var/lib/relay
# Numeric, so Kubernetes' runAsNonRoot can check it without /etc/passwd.
USER 65532:65532
EXPOSE 9090
ENTRYPOINT ["relay"]
CMD ["run", "--config", "/etc/relay/relay.yml"]
