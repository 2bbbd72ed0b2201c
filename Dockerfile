# pinlb container image: the release binary the Makefile builds (`make build`), on a slim
# Debian, as a non-root user. It runs like the official nginx image: it reads
# /etc/nginx/nginx.conf (which includes /etc/nginx/conf.d/*.conf) and listens on 80, so
# mounting an nginx.conf or copying a server file to conf.d/default.conf both work.
# A native config is at /etc/pinlb/pinlb.json: `docker run IMAGE -c /etc/pinlb/pinlb.json`.

FROM rust:1-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The release build is profile-guided (scripts/build-release.sh): an instrumented pinlb runs
# the training traffic of examples/pgo_train (with the demo backends of tests/common), then
# pinlb is built again with the measured profile.
# Dependencies first, in a layer of their own: the manifest, the lock file and the vendored
# Pingora crates (`[patch.crates-io]`), with empty stand-ins for the sources the manifest
# names, built instrumented; so that a change under src/ does not rebuild them.
COPY Cargo.toml Cargo.lock ./
COPY vendor ./vendor
COPY scripts/build-release.sh ./scripts/
RUN mkdir -p src benches examples \
 && echo 'fn main() {}' > src/main.rs && touch src/lib.rs benches/hot_paths.rs \
 && echo 'fn main() {}' > examples/pgo_train.rs \
 && scripts/build-release.sh --instrumented-only \
 && rm -rf src examples
COPY src ./src
COPY benches ./benches
COPY examples/pgo_train.rs ./examples/
COPY tests/common ./tests/common
# The stand-ins were built after the sources' own modification times: make pinlb newer.
RUN touch src/main.rs src/lib.rs examples/pgo_train.rs && scripts/build-release.sh

FROM debian:bookworm-slim
COPY --from=build /src/target/release/pinlb /usr/local/bin/pinlb
# Port 80 without root; logs to the container's stdout/stderr as the nginx image does.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libcap2-bin \
 && setcap cap_net_bind_service=+ep /usr/local/bin/pinlb \
 && apt-get purge -y libcap2-bin && apt-get autoremove -y && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin pinlb \
 && mkdir -p /etc/nginx/conf.d /etc/pinlb /var/log/nginx \
 && ln -sf /dev/stdout /var/log/nginx/access.log \
 && ln -sf /dev/stderr /var/log/nginx/error.log \
 && touch /run/nginx.pid && chown pinlb /run/nginx.pid
COPY contrib/docker/nginx.conf contrib/docker/mime.types /etc/nginx/
COPY contrib/docker/conf.d/default.conf /etc/nginx/conf.d/default.conf
COPY contrib/docker/pinlb.json /etc/pinlb/pinlb.json
USER pinlb
EXPOSE 80
# Asks the admin listener (127.0.0.1:9901 unless the config moves it): no curl needed.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s \
    CMD ["/usr/local/bin/pinlb", "--healthcheck", "-c", "/etc/nginx/nginx.conf"]
ENTRYPOINT ["/usr/local/bin/pinlb"]
CMD ["-c", "/etc/nginx/nginx.conf"]
