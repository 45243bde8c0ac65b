# Build stage: compile the release binary with the locked dependencies.
# The toolchain must be at least the newest `rust-version` among the locked dependencies
# (1.89 as of this writing; tests/compose checks it against Cargo.lock).
FROM rust:1.89-bookworm AS build
WORKDIR /src

# The dependencies first, in a layer of their own that is rebuilt only when the manifests
# change: stand-in sources, built and then thrown away. The workspace is two crates: the
# server library at the root and `tools/`, which builds the `recloop` binary.
COPY Cargo.toml Cargo.lock ./
COPY tools/Cargo.toml ./tools/
RUN mkdir -p src benches tools/src \
    && touch src/lib.rs tools/src/lib.rs \
    && echo 'fn main() {}' > benches/model.rs \
    && echo 'fn main() {}' > tools/src/main.rs \
    && cargo build --release --locked --bin recloop \
    && rm -rf src benches tools/src

COPY src ./src
COPY migrations ./migrations
COPY benches ./benches
COPY tools/src ./tools/src
# Newer than the stand-ins whatever the build context's times, so cargo rebuilds both crates.
RUN touch src/lib.rs tools/src/lib.rs tools/src/main.rs \
    && cargo build --release --locked --bin recloop

# Runtime stage: just the binary, as an unprivileged user. curl is for the health checks
# (here and in docker-compose.yml); the binary has no health-check command of its own.
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /data recloop && mkdir -p /data && chown recloop /data
# The workspace's one target directory, at its root.
COPY --from=build /src/target/release/recloop /usr/local/bin/recloop
USER recloop
WORKDIR /data
# The embedded default (SQLite in /data); docker-compose.yml sets PostgreSQL instead.
ENV RECLOOP_BIND=0.0.0.0:8080 \
    DATABASE_URL=sqlite:///data/recloop.db
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["recloop"]
CMD ["serve"]
