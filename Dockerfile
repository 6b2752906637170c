# syntax=docker/dockerfile:1
# One image per ChargeFlow app: docker build --build-arg APP=web-server -t chargeflow/web-server .
# APP is a package of the workspace (a folder under apps/); BIN its binary when the name differs
# (admin: chargeflow-admin). docker-compose.yml builds each app from this file.

FROM rust:1.95-bookworm AS builder
ARG APP
ARG BIN
RUN test -n "$APP" || (echo "build with --build-arg APP=<package under apps/>" >&2; exit 1)
WORKDIR /src
COPY . .
# Cache mounts keep the crate registry and target/ between builds (BuildKit).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p "$APP" \
    && install -D "target/release/${BIN:-$APP}" /out/app \
    && mkdir -p /out/share && cp -r "apps/$APP/." /out/share/ \
    && rm -rf /out/share/src /out/share/tests /out/share/Cargo.toml

# The shop's front end, served by the web-server (APP__HTTP__STATIC_DIR); small, so every image has it.
FROM node:20-bookworm-slim AS frontend
WORKDIR /src/apps/frontend
COPY apps/frontend/package.json apps/frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY apps/frontend/ ./
RUN npm run build

FROM debian:bookworm-slim AS runtime
ARG APP
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home chargeflow
COPY --from=builder /out/app /usr/local/bin/app
# The app's data files (the e-mail templates, for instance), under /usr/share/chargeflow.
COPY --from=builder /out/share /usr/share/chargeflow
COPY --from=frontend /src/apps/frontend/dist /usr/share/chargeflow/frontend
USER chargeflow
ENV APP_NAME=$APP
ENTRYPOINT ["/usr/local/bin/app"]
