#!/bin/bash
# A real injected pod, with podman (root): etcd and the control plane run as containers on a
# podman network; two pods made by `remora inject` from plain manifests are started with
# `podman kube play`: catalog (the demo service) and orders, whose app is an unmodified client
# dialling 192.0.2.10:50051 (an address nobody serves) with :authority catalog. The init container
# installs the iptables rules, the sidecar intercepts the call and carries it over mTLS: catalog's
# sidecar counts inbound calls whose caller identity (from the client certificate) is "orders".
#
# podman 4.3 adaptations, applied to the injected YAML and nothing else: classic sidecars
# (--mode classic; podman runs no native sidecars), and the projected service-account token and
# the remora-roots ConfigMap become hostPath volumes (podman has neither).
#
# Needs the images `npm run test:compose` builds (localhost/remora:local, localhost/remora-etcd:local).
# Last line: "pod test: N passed, M failed"; exit 1 on failure. Bounded: about a minute.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
C=${CONTAINERS_DIR:-$ROOT/../shared/containers}
IMAGE=${REMORA_IMAGE:-localhost/remora:local}
ETCD_IMAGE=${ETCD_IMAGE:-localhost/remora-etcd:local}
ID=pt$$
NET=remora-$ID
TMP=$(mktemp -d /tmp/remora-pod-test.XXXXXX)
passed=0; failed=0
ok() { echo "  ok    $*"; passed=$((passed + 1)); }
nok() { echo "  FAIL  $*"; failed=$((failed + 1)); }
finish() {
  for f in "$TMP"/pod-*.yaml; do [ -f "$f" ] && timeout 60 podman kube down "$f" >/dev/null 2>&1; done
  podman rm -f -t 2 "etcd-$ID" "control-plane-$ID" >/dev/null 2>&1
  podman network rm -f "$NET" >/dev/null 2>&1
  rm -rf "$TMP"
  echo "pod test: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
trap '[ -n "${POD_TEST_KEEP:-}" ] || finish; exit $?' EXIT
trap 'exit 1' INT TERM

[ "$(id -u)" -eq 0 ] || { nok "run as root (podman, iptables in pods)"; exit 1; }
eval "$("$C/setup.sh" "$HOME/.config/remora-containers" 2>"$TMP/setup.log")" || { cat "$TMP/setup.log"; nok "podman setup"; exit 1; }
export CONTAINERS_CONF
for img in "$IMAGE" "$ETCD_IMAGE"; do
  podman image exists "$img" || { nok "image $img missing: run npm run test:compose first (it builds both)"; exit 1; }
done
remora() { node "$ROOT/dist/cli/remora.js" "$@"; }

# Secrets on the host, mounted into the control plane and (token, roots) into the pods.
mkdir -p "$TMP/secrets" "$TMP/token" "$TMP/roots"
token=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
head -c 32 /dev/urandom | base64 > "$TMP/secrets/ca-passphrase"
echo "$token *" > "$TMP/secrets/bootstrap-tokens"
printf '%s' "$token" > "$TMP/token/token"
chmod 0644 "$TMP/token/token" "$TMP/secrets/"*   # read by uid 1337 in the containers (a test-only shortcut)

podman network create "$NET" >/dev/null || { nok "network"; exit 1; }
podman run -d --name "etcd-$ID" --network "$NET" --network-alias etcd "$ETCD_IMAGE" /usr/local/bin/etcd --name=etcd \
  --data-dir=/tmp/etcd --listen-client-urls=http://0.0.0.0:2379 --advertise-client-urls=http://etcd:2379 \
  --listen-peer-urls=http://127.0.0.1:2380 --initial-advertise-peer-urls=http://127.0.0.1:2380 --initial-cluster=etcd=http://127.0.0.1:2380 >/dev/null \
  || { nok "etcd container"; exit 1; }
podman run -d --name "control-plane-$ID" --network "$NET" --network-alias control-plane --init -v "$TMP/secrets:/secrets:ro" \
  -e REMORA_ETCD_ENDPOINTS=http://etcd:2379 "$IMAGE" control-plane --ca etcd --ca-key-passphrase-file /secrets/ca-passphrase \
  --bootstrap-token-file /secrets/bootstrap-tokens --tls-dns-names control-plane >/dev/null || { nok "control plane container"; exit 1; }
for _ in $(seq 1 60); do
  podman exec "control-plane-$ID" remora ca bundle --etcd-endpoints http://etcd:2379 > "$TMP/roots/roots.pem" 2>/dev/null && [ -s "$TMP/roots/roots.pem" ] && break
  sleep 1
done
[ -s "$TMP/roots/roots.pem" ] && ok "control plane up, mesh CA created, roots exported" || { nok "no mesh CA"; podman logs "control-plane-$ID" | tail -20; exit 1; }
printf 'kind: MeshConfig\nmetadata: { name: mesh, namespace: remora-system }\nspec: { mtlsMode: STRICT }\n' \
  | podman exec -i "control-plane-$ID" remora apply -f - --etcd-endpoints http://etcd:2379 >/dev/null && ok "mesh STRICT" || nok "apply MeshConfig"

# Plain manifests, as a user would write them: nothing about the mesh in them.
cat > "$TMP/catalog.yaml" <<'YAML'
apiVersion: v1
kind: Pod
metadata: { name: catalog, labels: { app: catalog } }
spec:
  serviceAccountName: catalog
  restartPolicy: OnFailure
  containers:
    - name: app
      image: IMAGE
      args: [demo-service, --name, catalog, --address, 0.0.0.0, --port, "50051"]
      securityContext: { runAsUser: 1000 }
      ports: [{ containerPort: 50051 }]
YAML
cat > "$TMP/orders.yaml" <<'YAML'
apiVersion: v1
kind: Pod
metadata: { name: orders, labels: { app: orders } }
spec:
  serviceAccountName: orders
  restartPolicy: OnFailure
  containers:
    - name: app
      image: IMAGE
      # An unmodified client: it dials an address nobody serves; only interception can answer.
      args: [demo-client, --target, "192.0.2.10:50051", --authority, catalog, --scenario, catalog, --rps, "5", --duration-s, "300"]
      # Any uid but the sidecar's (1337, the image's default user): its traffic is never redirected.
      securityContext: { runAsUser: 1000 }
      ports: [{ containerPort: 8080 }]
YAML
for name in catalog orders; do
  sed -i "s|IMAGE|$IMAGE|" "$TMP/$name.yaml"
  remora inject -f "$TMP/$name.yaml" --mode classic --image "$IMAGE" --control-plane control-plane:15012 > "$TMP/pod-$name.yaml" 2>"$TMP/inject-$name.log" \
    && ok "remora inject $name: $(cat "$TMP/inject-$name.log")" || { nok "inject $name"; cat "$TMP/inject-$name.log"; exit 1; }
  # podman: hostPath instead of the projected token and the ConfigMap; no published ports; the
  # pod's IP is not known to podman's downward API, so the sidecar advertises its pod name.
  node -e '
    const fs = require("fs"); const YAML = require(process.argv[4] + "/node_modules/yaml");
    const pod = YAML.parse(fs.readFileSync(process.argv[1], "utf8"));
    pod.spec.volumes = pod.spec.volumes.map((v) =>
      v.name === "remora-token" ? { name: v.name, hostPath: { path: process.argv[2], type: "Directory" } }
      : v.name === "remora-roots" ? { name: v.name, hostPath: { path: process.argv[3], type: "Directory" } } : v);
    // podman publishes every containerPort on the host; in Kubernetes they are informational.
    for (const c of [...pod.spec.containers, ...(pod.spec.initContainers ?? [])]) delete c.ports;
    for (const c of pod.spec.containers) for (const e of c.env ?? []) {
      if (e.name === "REMORA_ADVERTISE_ADDRESS") { delete e.valueFrom; e.value = pod.metadata.name; }
      if (e.name === "REMORA_NAMESPACE") { delete e.valueFrom; e.value = "default"; }
      if (e.name === "REMORA_INSTANCE_ID") { delete e.valueFrom; e.value = pod.metadata.name + "-0"; }
    }
    fs.writeFileSync(process.argv[1], YAML.stringify(pod));
  ' "$TMP/pod-$name.yaml" "$TMP/token" "$TMP/roots" "$ROOT" || { nok "adapt $name for podman"; exit 1; }
  timeout 90 podman kube play --network "$NET" "$TMP/pod-$name.yaml" > "$TMP/play-$name.log" 2>&1 \
    && ok "podman kube play $name (init container, sidecar, app)" || { nok "kube play $name"; tail -20 "$TMP/play-$name.log"; exit 1; }
done

# The init container (podman removes it once done) left its rules in the orders pod's namespace.
infra_pid=$(podman inspect "$(podman pod inspect orders --format '{{.InfraContainerID}}')" --format '{{.State.Pid}}' 2>/dev/null)
rules=$(nsenter -t "$infra_pid" -n iptables -t nat -S 2>&1)
echo "$rules" | grep -q -- "-A REMORA_REDIRECT -p tcp -j REDIRECT --to-ports 15001" && echo "$rules" | grep -q -- "--uid-owner 1337 -j RETURN" \
  && ok "init container installed the rules in the pod's network namespace (outbound → 15001, uid 1337 excluded)" || nok "iptables in the orders pod: $rules"

# catalog's sidecar counts inbound calls by caller identity: "orders" can only come from the
# client certificate of orders' sidecar, i.e. the call left orders through its sidecar over mTLS.
metrics() { podman exec catalog-remora-sidecar node -e 'fetch("http://127.0.0.1:15020/metrics").then(async (r) => process.stdout.write(await r.text()))'; }
seen=0
for _ in $(seq 1 60); do
  seen=$(metrics 2>/dev/null | awk '/^remora_requests_total\{direction="inbound",source="orders",destination="catalog",.*grpc_status="0"\}/ { n += $2 } END { print n + 0 }')
  [ "${seen:-0}" -ge 5 ] && break
  sleep 1
done
[ "${seen:-0}" -ge 5 ] && ok "catalog's sidecar: $seen calls from spiffe identity sa/orders over mTLS, status OK" \
  || { nok "catalog saw ${seen:-0} calls from orders"; podman logs orders-app 2>&1 | tail -5; podman logs orders-remora-sidecar 2>&1 | tail -10; }
cert=$(podman exec orders-remora-sidecar node -e 'fetch("http://127.0.0.1:15000/certs").then(async (r) => process.stdout.write(await r.text()))' 2>/dev/null)
echo "$cert" | grep -q 'spiffe://cluster.local/ns/default/sa/orders' && ok "orders' sidecar holds spiffe://cluster.local/ns/default/sa/orders" || nok "orders certificate: $cert"
podman logs orders-app 2>&1 | grep -q "ok=" && ok "the unmodified client got answers: $(podman logs orders-app 2>&1 | grep 'ok=' | tail -1)" || nok "client output: $(podman logs orders-app 2>&1 | tail -3)"
