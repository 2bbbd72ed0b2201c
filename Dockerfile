# pinlb container image: the release binary the Makefile builds, on a slim Debian, as a
# non-root user. The default config balances over app1:80, app2:80 and app3:80 (the
# services of a compose file); mount your own at /etc/pinlb/pinlb.json.

FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked --bin pinlb

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin pinlb
COPY --from=build /src/target/release/pinlb /usr/local/bin/pinlb
COPY contrib/docker/pinlb.json /etc/pinlb/pinlb.json
USER pinlb
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/pinlb"]
CMD ["-c", "/etc/pinlb/pinlb.json"]
