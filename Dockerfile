# Remora: one image for the control plane, the sidecar, the CLI and the demo shop.
#
#   docker build -t remora:local .                     (base: node:20-slim from Docker Hub)
#   docker run --rm remora:local --help                (the entrypoint is the `remora` CLI)
#
# Without a registry (our podman test, see docs/compose.md and scripts/compose-test.sh):
#   ../shared/containers/node-base-image.sh
#   podman build --build-arg BASE_IMAGE=localhost/node-base:local -t localhost/remora:local .
#
# The base must provide node 20+, npm and /bin/sh; nothing else (no apt, no coreutils beyond
# cat/ls/mkdir/rm/sleep/env/id) is assumed, so file juggling below is done with node itself.
ARG BASE_IMAGE=node:20-slim

# ---- build: dependencies, generated protobuf code, tsc ---------------------------------------
FROM ${BASE_IMAGE} AS build
# Marks this stage's (untagged) images, so a test can prune old ones and keep the newest as cache.
LABEL io.remora.stage=build
# Where npm's HTTPS goes through an intercepting proxy, pass its CA in for this stage only, e.g.
#   podman build -v /etc/ssl/certs/ca-certificates.crt:/etc/extra-ca.pem:ro \
#                --build-arg NODE_EXTRA_CA_CERTS=/etc/extra-ca.pem ...
# It never reaches the runtime image.
ARG NODE_EXTRA_CA_CERTS
WORKDIR /src
COPY package.json package-lock.json ./
# `npm ci` first; a lockfile made where a registry lacks buf's per-platform packages for other
# platforms is refused by `npm ci`, and `npm install` then installs the same locked versions
# (see scripts/setup.sh). `buf generate` needs the @bufbuild/buf-<platform> binary: a dev dependency.
RUN npm ci --no-audit --no-fund --loglevel=error \
 || (echo "npm ci rejected the lockfile; installing the locked versions with npm install" \
     && npm install --no-audit --no-fund --loglevel=error)
COPY tsconfig.json buf.gen.yaml ./
COPY protos/ protos/
COPY cli/ cli/
COPY lib/ lib/
COPY sidecar/ sidecar/
COPY control-plane/ control-plane/
COPY demo-services/ demo-services/
COPY bench/ bench/
COPY deploy/ deploy/
# The tests are not part of the image (tsconfig's "test" include then matches nothing).
RUN npm run build && npm prune --omit=dev --no-audit --no-fund --loglevel=error

# ---- runtime -----------------------------------------------------------------------------------
FROM ${BASE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
# iptables-restore for `remora init-iptables`, the init container Kubernetes injection adds
# (control-plane/injection). The base from node-base-image.sh has it; node:20-slim does not.
RUN command -v iptables-restore >/dev/null 2>&1 \
 || (apt-get update && apt-get install -y --no-install-recommends iptables && rm -rf /var/lib/apt/lists/*)
# uid 1337 (the sidecar uid an istio-init style REDIRECT excludes). Written with node because the
# minimal base has no useradd/chown/ln. /var/lib/remora/{secrets,mesh} are owned by remora so
# named volumes mounted there start out writable by it (Docker and podman copy the ownership up).
# /usr/local/bin/remora: the entrypoint, and a wrapper so shell commands in compose can say
# `remora ...`; it gives the sidecar its node flags (lib/sidecar-node-flags.ts).
RUN node -e ' \
  const fs = require("fs"); \
  const has = (f, re) => { try { return re.test(fs.readFileSync(f, "utf8")); } catch { return false; } }; \
  if (!has("/etc/passwd", /^remora:/m)) fs.appendFileSync("/etc/passwd", "remora:x:1337:1337:remora:/app:/bin/sh\n"); \
  if (!has("/etc/group", /^remora:/m)) fs.appendFileSync("/etc/group", "remora:x:1337:\n"); \
  fs.mkdirSync("/var/lib/remora", { recursive: true, mode: 0o755 }); \
  for (const d of ["/var/lib/remora/secrets", "/var/lib/remora/mesh"]) { \
    fs.mkdirSync(d, { mode: 0o700 }); fs.chownSync(d, 1337, 1337); } \
  fs.mkdirSync("/usr/local/bin", { recursive: true }); \
  fs.writeFileSync("/usr/local/bin/remora", "#!/bin/sh\n# The sidecar runs with lib/sidecar-node-flags.ts, which says why.\nif [ \"$1\" = sidecar ]; then exec node --max-semi-space-size=1 /app/dist/cli/remora.js \"$@\"; fi\nexec node /app/dist/cli/remora.js \"$@\"\n", { mode: 0o755 }); \
  '
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules/ ./node_modules/
COPY --from=build /src/dist/ ./dist/
# Read at run time from next to dist/: the demo services' .proto files (server reflection) and
# the dashboard's client app.
COPY --from=build /src/protos/remora/ ./protos/remora/
COPY --from=build /src/control-plane/dashboard/assets/ ./control-plane/dashboard/assets/
# Helpers of the docker-compose demo (secrets, CA bundle, readiness waits).
COPY --from=build /src/deploy/compose/*.mjs ./deploy/compose/
USER 1337:1337
# discovery (plaintext), discovery+CA (TLS), control-plane HTTP; sidecar outbound, inbound,
# admin (loopback), stats/metrics.
EXPOSE 15010 15012 15014 15001 15006 15000 15020
# node is not a good PID 1 (no default signal handlers): run with `init: true` (compose) or
# `docker run --init`; the base from node-base-image.sh has no tini. Kubernetes needs neither:
# remora handles SIGTERM itself and the pause container reaps zombies.
ENTRYPOINT ["/usr/local/bin/remora"]
CMD ["--help"]
