# syntax=docker/dockerfile:1
# Static microgateway (glibc, crt-static, ring crypto, in-process DNS) in a scratch image.
# Build: docker build -t microgateway .   Run: docker run -p 8080:8080 microgateway
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --locked --target x86_64-unknown-linux-gnu \
      --bin microgateway --bin mg-plugin-header-enricher --bin mg-plugin-auth --bin mg-plugin-sse-filter \
 && mkdir -p /out/etc/microgateway /out/var/lib/microgateway/plugins /out/opt/microgateway/plugins /out/tmp \
 && install -m 0755 target/x86_64-unknown-linux-gnu/release/microgateway /out/microgateway \
 && install -m 0755 target/x86_64-unknown-linux-gnu/release/mg-plugin-* /out/opt/microgateway/plugins/ \
 && sed -e 's|^listen = "127.0.0.1:9090"|listen = "0.0.0.0:9090"|' config/microgateway.toml > /out/etc/microgateway/microgateway.toml \
 && echo 'microgateway:x:65532:65532::/var/lib/microgateway:/microgateway' > /out/etc/passwd \
 && echo 'microgateway:x:65532:' > /out/etc/group \
 && chmod 1777 /out/tmp

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build --chown=65532:65532 /out/ /
USER 65532:65532
ENV MICROGATEWAY_CONFIG=/etc/microgateway/microgateway.toml \
    OCI_PLUGINS_CACHE_DIR=/var/lib/microgateway/plugins \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
VOLUME ["/var/lib/microgateway/plugins"]
EXPOSE 8080 9090
# The admin listener is on all interfaces in the image so probes can reach it; set
# MICROGATEWAY_ADMIN_TOKEN (the gateway refuses to start otherwise).
ENTRYPOINT ["/microgateway"]
