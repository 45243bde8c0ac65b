# Build stage: compile the release binary with the locked dependencies.
FROM rust:1.85-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY benches ./benches
RUN cargo build --release --locked --bin recloop

# Runtime stage: just the binary, as an unprivileged user.
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /data recloop && mkdir -p /data && chown recloop /data
COPY --from=build /src/target/release/recloop /usr/local/bin/recloop
USER recloop
WORKDIR /data
ENV RECLOOP_BIND=0.0.0.0:8080 \
    DATABASE_URL=sqlite:///data/recloop.db
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["recloop"]
CMD ["serve"]
