# syntax=docker/dockerfile:1
# Multi-stage build of a static microgateway binary into a scratch image.
FROM rust:1-bookworm AS build
RUN rustup target add x86_64-unknown-linux-musl && apt-get update && apt-get install -y --no-install-recommends musl-tools && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --target x86_64-unknown-linux-musl \
 && install -D -m 0755 target/x86_64-unknown-linux-musl/release/microgateway /out/microgateway \
 && mkdir -p /out/var/lib/microgateway/plugins /out/etc/microgateway \
 && cp config/microgateway.toml /out/etc/microgateway/microgateway.toml

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build --chown=65532:65532 /out/ /
USER 65532:65532
VOLUME ["/var/lib/microgateway/plugins"]
EXPOSE 8080 9090
ENV MICROGATEWAY_CONFIG=/etc/microgateway/microgateway.toml
ENTRYPOINT ["/microgateway"]
