# The weir binary on a slim Debian base, running as a non-root user.
#
#   docker build -t weir:0.1.0 .
#   docker run --rm -p 9464:9464 \
#     -v "$PWD/weir.toml:/etc/weir/weir.toml:ro" \
#     -v "$PWD/plugins:/var/lib/weir/plugins:ro" weir:0.1.0
#
# The build stage runs what `make release` runs on a developer's machine
# (`scripts/setup` for the wasm32-wasip2 target and the Kafka client's C
# dependencies, then the release build), so an image holds the same binary
# a local release build produces. The runtime stage holds that binary and
# the shared libraries it links (OpenSSL, zlib) plus the CA certificates
# the TLS clients verify servers with; the config and any plugin files are
# mounted (docs/operations.md, "Deploying on Kubernetes").

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS build
WORKDIR /src
COPY . .
ENV CARGO_TARGET_DIR=/src/target
RUN scripts/setup --build-only
RUN cargo build --release --locked -p weir --bin weir

FROM debian:${DEBIAN_RELEASE}-slim
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        ca-certificates libssl3 zlib1g \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 weir \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent weir \
    && install -d -o 10001 -g 10001 /var/cache/weir /etc/weir /var/lib/weir/plugins
COPY --from=build /src/target/release/weir /usr/local/bin/weir
# Compiled plugins are cached under $XDG_CACHE_HOME/weir (a writable
# volume in Kubernetes, where the root filesystem is read-only).
ENV XDG_CACHE_HOME=/var/cache
USER 10001:10001
WORKDIR /var/lib/weir
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/weir"]
CMD ["run", "/etc/weir/weir.toml"]
