#!/usr/bin/env bash
# End-to-end test of the container image and docker-compose.yml, with real containers and no
# Docker: podman (Debian's) as set up by ../shared/containers, docker-compose v1 talking to
# podman's Docker API socket. Run as root:
#
#   sudo bash scripts/compose-test.sh          (npm run test:compose)
#
# It builds localhost/remora:local from our Dockerfile (base: the host's node, no registry), a
# local etcd image from the host's /usr/bin/etcd (Debian's etcd-server), brings the compose
# project up under a unique name, checks the mesh (control plane ready, dashboard, edges with
# traffic, mTLS identities, sidecar metrics, plaintext refused), and takes everything down again,
# also on failure or Ctrl-C. Published ports are on 127.0.0.1 only, picked free. Bounded: about
# 1.5 minutes with a warm build cache; at most 4 minutes for the build and COMPOSE_TEST_TIMEOUT_S
# (180) for bringing the mesh up and checking it.
# Last line: `compose test: N passed, M failed`; exit 1 on any failure.
#
# Environment:
#   CONTAINERS_DIR           ../shared/containers (setup.sh, node-base-image.sh)
#   COMPOSE_TEST_TIMEOUT_S   budget of the compose part (up and checks), seconds (180)
#   COMPOSE_TEST_KEEP=1      leave the project running (for a look); prints how to remove it
#   COMPOSE_TEST_RMI=1       also remove the images built here (kept by default: the build cache)
#   COMPOSE_TEST_NPM_CACHE   a host npm cache directory to mount into the build (faster, offline)
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
START=$SECONDS
BUDGET=${COMPOSE_TEST_TIMEOUT_S:-180}
CHECK_START=$SECONDS   # reset when the compose part starts
CONTAINERS_DIR=${CONTAINERS_DIR:-$ROOT/../shared/containers}
PROJECT=remora-ct-$$
IMAGE=localhost/remora:local
BUILD_BASE=localhost/remora-node-base:local
ETCD_IMAGE=localhost/remora-etcd:local
SIDECARS=(traffic-sidecar orders-sidecar catalog-sidecar inventory-sidecar)

passed=0 failed=0
say() { printf 'compose-test: %s\n' "$*"; }
ok() { passed=$((passed + 1)); printf '  ok    %s\n' "$1"; }
nok() { failed=$((failed + 1)); printf '  FAIL  %s\n' "$1"; [ -z "${2:-}" ] || printf '        %s\n' "$2"; }
left() { echo $((BUDGET - (SECONDS - CHECK_START))); }
# The summary is printed by the EXIT trap, after the cleanup, so it is the last line.
summary() {
  echo "compose test: $passed passed, $failed failed ($((SECONDS - START)) s)"
  [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
}

if [ "$(id -u)" -ne 0 ]; then echo "compose-test: run as root (podman needs it here): sudo bash $0" >&2; exit 1; fi
for f in setup.sh node-base-image.sh; do
  [ -x "$CONTAINERS_DIR/$f" ] || { echo "compose-test: $CONTAINERS_DIR/$f missing (set CONTAINERS_DIR)" >&2; exit 1; }
done

TMP=$(mktemp -d /tmp/remora-compose-test.XXXXXX)
SVC_PID=
DOWN_DONE=
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "${DOCKER_HOST:-}" ] && [ -z "${COMPOSE_TEST_KEEP:-}" ] && [ -z "$DOWN_DONE" ]; then
    say "taking the project down"
    # podman refuses to remove an app while its sidecar still uses its network namespace, and
    # docker-compose v1 removes in parallel: sidecars first (../shared/containers/README.md).
    timeout 60 docker-compose -p "$PROJECT" -f "$ROOT/docker-compose.yml" rm -fs "${SIDECARS[@]}" >"$TMP/down.log" 2>&1
    timeout 60 docker-compose -p "$PROJECT" -f "$ROOT/docker-compose.yml" down -v --remove-orphans -t 5 >>"$TMP/down.log" 2>&1
    # Whatever compose left behind (it should be nothing): containers (sidecars first), volumes, networks.
    local ids
    ids=$(podman ps -aq --filter "label=com.docker.compose.project=$PROJECT" 2>/dev/null)
    if [ -n "$ids" ]; then
      say "removing leftover containers"
      for s in "${SIDECARS[@]}"; do podman rm -f $(podman ps -aq --filter "label=com.docker.compose.project=$PROJECT" --filter "label=com.docker.compose.service=$s") >/dev/null 2>&1; done
      podman rm -f $(podman ps -aq --filter "label=com.docker.compose.project=$PROJECT") >/dev/null 2>&1
    fi
    ids=$(podman volume ls -q --filter "label=com.docker.compose.project=$PROJECT" 2>/dev/null)
    [ -z "$ids" ] || podman volume rm -f $ids >/dev/null 2>&1
    ids=$(podman network ls -q --filter "label=com.docker.compose.project=$PROJECT" 2>/dev/null)
    [ -z "$ids" ] || podman network rm -f $ids >/dev/null 2>&1
  elif [ -n "${COMPOSE_TEST_KEEP:-}" ]; then
    say "COMPOSE_TEST_KEEP: left running; remove with"
    say "  DOCKER_HOST=... docker-compose -p $PROJECT rm -fs ${SIDECARS[*]} && docker-compose -p $PROJECT down -v"
  fi
  if [ -n "$SVC_PID" ] && [ -z "${COMPOSE_TEST_KEEP:-}" ]; then kill "$SVC_PID" 2>/dev/null; wait "$SVC_PID" 2>/dev/null; fi
  if [ -n "${COMPOSE_TEST_RMI:-}" ]; then podman rmi -f "$IMAGE" "$ETCD_IMAGE" "$BUILD_BASE" >/dev/null 2>&1; fi
  rm -rf "$TMP"
  if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then nok "the test itself stopped early (exit $rc)"; fi
  summary || rc=1
  exit "$rc"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

# ---- 1. podman, per ../shared/containers -------------------------------------------------------
say "podman setup ($CONTAINERS_DIR)"
eval "$("$CONTAINERS_DIR/setup.sh" "$HOME/.config/remora-containers" --docker-compose 2>"$TMP/setup.log")" \
  || { cat "$TMP/setup.log" >&2; nok "podman setup"; exit 1; }
export CONTAINERS_CONF

# The base: the host's node (rebuilt when the host's node changed), plus the shared libraries of
# native addons the build runs (ts-proto's dprint-node wants librt & co, which node itself does not).
host_node=$(node --version)
if [ "$(timeout 30 podman run --rm localhost/node-base:local node --version 2>/dev/null)" != "$host_node" ]; then
  timeout 120 "$CONTAINERS_DIR/node-base-image.sh" >"$TMP/base.log" 2>&1 || { cat "$TMP/base.log"; nok "node base image"; exit 1; }
fi
mkdir -p "$TMP/base/rootfs"
{
  find "$ROOT/node_modules" -name '*.node' -exec ldd {} \; 2>/dev/null
  for n in libgcc_s.so.1 libstdc++.so.6 libm.so.6 librt.so.1 libpthread.so.0 libdl.so.2; do
    for d in /lib/x86_64-linux-gnu /lib/aarch64-linux-gnu /lib64 /usr/lib64; do [ -e "$d/$n" ] && echo "$n => $d/$n"; done
  done
} | awk '/=> \// {print $3}' | sort -u | while read -r lib; do
  real=$(readlink -f "$lib"); mkdir -p "$TMP/base/rootfs$(dirname "$real")"
  cp -L "$lib" "$TMP/base/rootfs$(dirname "$real")/$(basename "$lib")"
done
printf 'FROM localhost/node-base:local\nCOPY rootfs/ /\n' >"$TMP/base/Containerfile"
if timeout 120 podman build -q -t "$BUILD_BASE" "$TMP/base" >"$TMP/base.log" 2>&1; then ok "base image $BUILD_BASE (node $host_node)"
else cat "$TMP/base.log"; nok "base image"; exit 1; fi

# ---- 2. images ---------------------------------------------------------------------------------
say "building $IMAGE from Dockerfile (log: $TMP/build.log while running)"
old_id=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
build_args=(--build-arg "BASE_IMAGE=$BUILD_BASE")
# An intercepting HTTPS proxy's CA (the host trusts it through NODE_EXTRA_CA_CERTS) for npm.
if [ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -f "$NODE_EXTRA_CA_CERTS" ]; then
  build_args+=(-v "$NODE_EXTRA_CA_CERTS:/etc/extra-ca.pem:ro" --build-arg NODE_EXTRA_CA_CERTS=/etc/extra-ca.pem)
fi
[ -z "${COMPOSE_TEST_NPM_CACHE:-}" ] || build_args+=(-v "$COMPOSE_TEST_NPM_CACHE:/root/.npm")
t0=$SECONDS
if timeout 240 podman build "${build_args[@]}" -t "$IMAGE" "$ROOT" >"$TMP/build.log" 2>&1; then
  ok "image $IMAGE built in $((SECONDS - t0)) s ($(podman image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"
else
  tail -40 "$TMP/build.log"; nok "podman build"; exit 1
fi
new_id=$(podman image inspect --format '{{.Id}}' "$IMAGE")
# The previous build of the tag, now untagged: remove it unless something still uses it.
[ -z "$old_id" ] || [ "$old_id" = "$new_id" ] || podman rmi "$old_id" >/dev/null 2>&1 || true
# Untagged build-stage images (LABEL io.remora.stage=build): keep the newest, the layer cache.
podman images -q --filter dangling=true --filter label=io.remora.stage=build 2>/dev/null | tail -n +2 \
  | while read -r id; do podman rmi "$id" >/dev/null 2>&1 || true; done

run_in_image() { timeout 60 podman run --rm --init --entrypoint "$1" "$IMAGE" "${@:2}"; }
user=$(run_in_image id -u 2>&1)
[ "$user" = 1337 ] && ok "image runs as uid 1337" || nok "image runs as uid 1337" "got: $user"
# `remora` on PATH and iptables-restore: Kubernetes injection runs `remora init-iptables` and
# `remora wait-ready` as commands from this image.
tools=$(run_in_image /bin/sh -c 'command -v remora && command -v iptables-restore && remora --help >/dev/null && echo tools-ok' 2>&1)
case $tools in *tools-ok) ok "remora on PATH, iptables-restore present" ;; *) nok "remora on PATH, iptables-restore present" "$tools" ;; esac
help=$(timeout 60 podman run --rm --init "$IMAGE" --help 2>&1)
case $help in *control-plane*sidecar*|*sidecar*control-plane*) ok "entrypoint is the remora CLI" ;; *) nok "entrypoint is the remora CLI" "$help" ;; esac

# etcd for the test: the host's Debian etcd on the node base (it has the C library etcd links to).
ETCD_BIN=$(command -v etcd || true)
if [ -z "$ETCD_BIN" ]; then nok "etcd on the host (apt-get install etcd-server)"; exit 1; fi
mkdir -p "$TMP/etcd"
cp -L "$ETCD_BIN" "$TMP/etcd/etcd"
printf 'FROM localhost/node-base:local\nCOPY etcd /usr/local/bin/etcd\nCMD ["/usr/local/bin/etcd"]\n' >"$TMP/etcd/Containerfile"
timeout 120 podman build -q -t "$ETCD_IMAGE" "$TMP/etcd" >"$TMP/etcd.log" 2>&1 || { cat "$TMP/etcd.log"; nok "etcd image"; exit 1; }

# ---- 3. compose up -----------------------------------------------------------------------------
free_port() { node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
DASH_PORT=$(free_port)
DASH=http://127.0.0.1:$DASH_PORT
export REMORA_IMAGE=$IMAGE ETCD_IMAGE REMORA_DASHBOARD_PORT=$DASH_PORT BASE_IMAGE=$BUILD_BASE
podman system service --time=0 "unix://$TMP/podman.sock" >"$TMP/podman-service.log" 2>&1 &
SVC_PID=$!
export DOCKER_HOST=unix://$TMP/podman.sock
for _ in $(seq 50); do [ -S "$TMP/podman.sock" ] && break; sleep 0.1; done
CHECK_START=$SECONDS
dc() { timeout 120 docker-compose -p "$PROJECT" -f "$ROOT/docker-compose.yml" "$@"; }
say "compose up: project $PROJECT, dashboard on $DASH"
if dc up -d --no-build >"$TMP/up.log" 2>&1; then ok "docker-compose up -d"
else cat "$TMP/up.log"; nok "docker-compose up -d"; exit 1; fi
running=$(podman ps --filter "label=com.docker.compose.project=$PROJECT" --format '{{.Names}}' | sort | tr '\n' ' ')
say "containers: $running"

cid() { dc ps -q "$1" 2>/dev/null | head -n1; }
# node -e inside a service's container (its own network namespace, so its 127.0.0.1).
in_ctr() { local c; c=$(cid "$1"); shift; timeout 20 podman exec "$c" node -e "$@"; }
get() { node -e 'fetch(process.argv[1],{signal:AbortSignal.timeout(3000)}).then(async r=>{if(!r.ok)process.exit(1);process.stdout.write(await r.text())}).catch(()=>process.exit(1))' "$1"; }
# poll WHAT SECONDS CMD...: until CMD succeeds, within the budget.
poll() {
  local what=$1 max=$2; shift 2
  local until=$((SECONDS + max)); [ $((SECONDS + $(left))) -ge "$until" ] || until=$((SECONDS + $(left)))
  while :; do
    if "$@"; then return 0; fi
    [ "$SECONDS" -lt "$until" ] || { say "timed out: $what"; return 1; }
    sleep 2
  done
}
dump_logs() {
  for s in mesh-init control-plane ca-bundle "$@"; do
    echo "----- logs: $s"; dc logs --no-color --tail 15 "$s" 2>&1 | tail -15
  done
}

# ---- 4. checks ---------------------------------------------------------------------------------
exit_code() { podman inspect --format '{{.State.Status}} {{.State.ExitCode}}' "$(cid "$1")" 2>/dev/null; }
mesh_init_done() { [ "$(exit_code mesh-init)" = "exited 0" ]; }
if poll "mesh-init" 90 mesh_init_done; then ok "mesh-init: STRICT MeshConfig applied, secrets generated"
else nok "mesh-init exited 0" "state: $(exit_code mesh-init)"; dump_logs; fi

if poll "control plane ready" 90 get "$DASH/healthz/ready" >/dev/null; then ok "control plane /healthz/ready (published on 127.0.0.1:$DASH_PORT)"
else nok "control plane /healthz/ready"; dump_logs; fi

perms=$(timeout 20 podman exec "$(cid control-plane)" node -e 'const fs=require("fs");for(const f of ["ca-passphrase","bootstrap-tokens"]){const s=fs.statSync("/var/lib/remora/secrets/"+f);console.log(f,(s.mode&0o777).toString(8),s.uid)}' 2>&1)
[ "$(echo "$perms" | tr '\n' ' ')" = "ca-passphrase 600 1337 bootstrap-tokens 600 1337 " ] && ok "secrets are mode 0600, owned by uid 1337" || nok "secrets are mode 0600, owned by uid 1337" "$perms"

page=$(get "$DASH/" || true)
app_js=$(get "$DASH/assets/app.js" | wc -c)
case $page in *'/assets/app.js'*) [ "$app_js" -gt 100 ] && ok "dashboard page and its assets are served" || nok "dashboard assets" "app.js: $app_js bytes" ;; *) nok "dashboard page at $DASH/" ;; esac

ca_bundle_done() { [ "$(exit_code ca-bundle)" = "exited 0" ]; }
if poll "ca-bundle" 60 ca_bundle_done; then ok "ca-bundle: mesh roots written for the sidecars"
else nok "ca-bundle exited 0" "state: $(exit_code ca-bundle)"; dump_logs; fi

# Edges with traffic in the dashboard's data: traffic -> orders -> catalog, inventory, mostly OK.
edges_ok() {
  get "$DASH/api/mesh" >"$TMP/mesh.json" 2>/dev/null || return 1
  node -e '
    const v = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const want = [["traffic","orders"],["orders","catalog"],["orders","inventory"]];
    const bad = want.filter(([s,d]) => !v.edges.some(e => e.source===s && e.destination===d && e.requests>0 && e.successRate!==null && e.successRate>=0.9));
    if (bad.length) process.exit(1);' "$TMP/mesh.json"
}
if poll "edges in /api/mesh" 120 edges_ok; then
  ok "/api/mesh: edges traffic->orders, orders->catalog, orders->inventory with requests, success >= 90%"
  node -e 'const v=JSON.parse(require("fs").readFileSync(process.argv[1],"utf8"));for(const e of v.edges)console.log(`        ${e.source} -> ${e.destination}: ${e.rps} rps, success ${e.successRate}, p99 ${e.p99Ms} ms`)' "$TMP/mesh.json"
else
  nok "/api/mesh edges" "$(cat "$TMP/mesh.json" 2>/dev/null | head -c 1500)"
  dump_logs traffic traffic-sidecar orders orders-sidecar catalog-sidecar
fi

# Every sidecar connected, with a certificate from the mesh CA.
certs_ok=$(node -e '
  const v = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const names = ["catalog","inventory","orders","traffic"];
  const missing = names.filter(n => !v.sidecars.some(s => s.service===n && s.certificateExpiry && Date.parse(s.certificateExpiry) > Date.now()));
  console.log(missing.length ? "missing: " + missing.join(",") : "ok");' "$TMP/mesh.json" 2>&1)
[ "$certs_ok" = ok ] && ok "/api/mesh: 4 sidecars connected, each with a valid certificate" || nok "/api/mesh sidecars with certificates" "$certs_ok"

# mTLS identities, from each sidecar's admin port (127.0.0.1:15000 inside its own namespace).
for s in catalog inventory orders traffic; do
  certs=$(in_ctr "$s-sidecar" 'fetch("http://127.0.0.1:15000/certs").then(r=>r.json()).then(j=>console.log(j.valid, j.identity && j.identity.spiffeId, j.identity && j.identity.notAfter))' 2>&1)
  case $certs in
    "true spiffe://"*"/ns/default/sa/$s "*) ok "$s sidecar: valid certificate $(echo "$certs" | cut -d' ' -f2) (admin /certs)" ;;
    *) nok "$s sidecar certificate (admin /certs)" "$(echo "$certs" | head -c 400)" ;;
  esac
done

# Prometheus metrics from a sidecar's stats port, as Prometheus scrapes it (orders:15020).
metrics=$(in_ctr orders-sidecar 'fetch("http://orders:15020/metrics").then(r=>r.text()).then(t=>console.log(t))' 2>&1)
if echo "$metrics" | grep -q '^remora_requests_total{.*grpc_status="0"'; then
  ok "orders:15020/metrics has remora_requests_total{grpc_status=\"0\"}"
else
  nok "orders:15020/metrics remora_requests_total with grpc_status=\"0\"" "$(echo "$metrics" | grep -m3 remora_requests_total)"
fi
cp_metrics=$(get "$DASH/metrics" | grep -c '^remora_' || true)
[ "$cp_metrics" -gt 0 ] && ok "control plane /metrics ($cp_metrics remora_ samples)" || nok "control plane /metrics"

# STRICT mTLS: a plaintext call to catalog's sidecar inbound port, bypassing the mesh, is refused.
plain=$(in_ctr traffic '
  const c = require("http2").connect("http://catalog:15006");
  const done = (m) => { console.log(m); process.exit(0); };
  c.on("error", (e) => done("refused: " + (e.code || e.message)));
  const r = c.request({ ":method": "POST", ":path": "/remora.demo.v1.CatalogService/ListProducts", "content-type": "application/grpc", te: "trailers" });
  r.on("response", (h) => { if (h["grpc-status"] !== undefined) done("grpc-status " + h["grpc-status"]); });
  r.on("trailers", (t) => done("grpc-status " + t["grpc-status"]));
  r.on("error", (e) => done("refused: " + (e.code || e.message)));
  r.resume();
  r.end(Buffer.alloc(5));
  setTimeout(() => done("no answer"), 5000);' 2>&1)
case $plain in
  *'grpc-status 0'*) nok "plaintext call to catalog:15006 refused (STRICT)" "$plain" ;;
  *) ok "plaintext call to catalog:15006 refused (STRICT): $(echo "$plain" | head -n1)" ;;
esac

client=$(dc logs --no-color --tail 5 traffic 2>&1 | tail -n 1)
case $client in *' ok='[1-9]*) ok "demo client: ${client#*| }" ;; *) nok "demo client reports OK calls" "$client" ;; esac

# ---- 5. down -----------------------------------------------------------------------------------
if [ -z "${COMPOSE_TEST_KEEP:-}" ]; then
  t0=$SECONDS
  dc rm -fs "${SIDECARS[@]}" >"$TMP/down.log" 2>&1 && dc down -v --remove-orphans -t 10 >>"$TMP/down.log" 2>&1
  left_over=$(podman ps -aq --filter "label=com.docker.compose.project=$PROJECT"; podman volume ls -q --filter "label=com.docker.compose.project=$PROJECT")
  DOWN_DONE=1
  if [ -z "$left_over" ]; then ok "docker-compose down -v in $((SECONDS - t0)) s: no containers or volumes left"
  else nok "docker-compose down" "$(cat "$TMP/down.log")"; fi
fi

exit 0
