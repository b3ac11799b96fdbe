# OtterMQ broker image: a release build on Debian bookworm, run as an unprivileged user.
#   docker build -t ottermq .
#   docker run -p 5672:5672 -p 15672:15672 ottermq
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
RUN cargo build --release --locked -p ottermq --bin ottermq

FROM debian:bookworm-slim
RUN useradd --system --home /var/lib/ottermq --create-home ottermq
COPY --from=build /src/target/release/ottermq /usr/local/bin/ottermq
USER ottermq
WORKDIR /var/lib/ottermq
ENV OTTERMQ_DATA_DIR=/var/lib/ottermq/data
EXPOSE 5672 15672
HEALTHCHECK --interval=10s --timeout=3s CMD ["/bin/sh", "-c", "exec 3<>/dev/tcp/127.0.0.1/15672 || exit 1"]
ENTRYPOINT ["/usr/local/bin/ottermq"]
