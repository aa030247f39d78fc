# syntax=docker/dockerfile:1
#
# The Conveyor server: webhooks, the runners' WebSocket, the admin API and the dashboard on one port.
#
#   docker build -t conveyor .
#   docker run --env-file .env -p 3000:3000 conveyor
#
# Arguments after the image name replace `start`: `docker run --env-file .env conveyor doctor`,
# `… conveyor migrate`, `… conveyor runners add build-box-1`.
#
# There is no build step: tsx (a runtime dependency) compiles the TypeScript sources as they load,
# so the image holds the sources and the production dependencies only. test/deploy.test.ts replays
# these steps (the files each COPY takes, the install, the command and the health check) in a clean
# directory and fails when they no longer give a server that answers /healthz.

# Stage 1: the production dependencies, exactly as package-lock.json pins them. Install scripts are
# not run: the only package that has one (esbuild, under tsx) finds its platform binary without it.
FROM node:20-bookworm-slim AS dependencies
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# Stage 2: the server, run by the image's unprivileged `node` user (uid 1000), with nothing it can
# write but /data and /tmp.
FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    PORT=3000 \
    LOG_FORMAT=json \
    CONVEYOR_DATA_DIR=/data
WORKDIR /app
COPY --from=dependencies /app/node_modules ./node_modules
COPY package.json app.yml ./
COPY bin ./bin
COPY db ./db
COPY src ./src
# Without DATABASE_URL the server keeps an embedded database here (one instance only): mount a
# volume on /data to keep it. With DATABASE_URL nothing is written to it.
RUN mkdir -p /data && chown 1000:1000 /data
# Numeric, so that Kubernetes can check `runAsNonRoot` against the image.
USER 1000:1000
EXPOSE 3000
# /healthz answers 200 while the process serves requests. The slim image has no curl: Node asks.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/healthz', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "bin/conveyor.js"]
CMD ["start"]
