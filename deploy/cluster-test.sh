#!/usr/bin/env bash
# The multi-process cluster test (docs/DESIGN.md, testing layer 4): builds
# the image, starts the Compose cluster (deploy/compose.yaml), loads data,
# and while a writer keeps writing with sync durability it
#   1. kills a tablet server container,
#   2. kills the active master,
#   3. kills the lock-service leader,
#   4. cuts a chunkserver off the network, then reconnects it;
# then it verifies that every acknowledged write is readable and that
# `cellar dfs fsck` reports the file system healthy. It prints each step and
# how long each recovery took, and tears everything down on exit.
#
# Without a Docker engine (`docker info` fails) it says so and exits 0.
# Environment: CELLAR_CLUSTER_TEST=0 skips it; KEEP=1 leaves the cluster up.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${CELLAR_CLUSTER_TEST:-1}" = 0 ]; then
  echo "SKIP cluster test: CELLAR_CLUSTER_TEST=0"; exit 0
fi
if ! docker info >/dev/null 2>&1; then
  echo "SKIP cluster test: no Docker engine here (docker info failed)"; exit 0
fi
if docker compose version >/dev/null 2>&1; then
  compose_cmd=(docker compose)
elif command -v docker-compose >/dev/null; then
  compose_cmd=(docker-compose)
else
  echo "SKIP cluster test: Docker is here but neither 'docker compose' nor 'docker-compose' is"; exit 0
fi

project=cellartest$$
image=cellar:clustertest
work=$(mktemp -d)
chmod 0777 "$work"
compose() { CELLAR_IMAGE=$image "${compose_cmd[@]}" -p "$project" -f deploy/compose.yaml "$@"; }
started=$(date +%s)
writer=""

cleanup() {
  status=$?
  if [ "${KEEP:-0}" = 1 ]; then
    echo "KEEP=1: cluster $project left running; work dir $work"; return
  fi
  if [ $status != 0 ]; then
    echo "== FAILED (status $status); last logs:"
    compose logs --no-color --tail 15 2>&1 | tail -120 || true
    [ -n "$writer" ] && docker logs --tail 20 "$writer" 2>&1 || true
  fi
  [ -n "$writer" ] && docker rm -f "$writer" >/dev/null 2>&1 || true
  compose down -v --remove-orphans >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

now_ms() { date +%s%3N; }
secs() { awk -v ms="$1" 'BEGIN { printf "%.1fs", ms / 1000 }'; }
say() { printf '[%4ds] %s\n' $(( $(date +%s) - started )) "$*"; }
declare -a summary=()
record() { summary+=("$(printf '%-44s %s' "$1" "$2")"); say "$1: $2"; }

# cellar runs the image on the cluster's network (containers advertise
# their service names, so clients run there).
net=""
cellar() {
  docker run --rm --network "$net" --user "$(id -u):$(id -g)" -v "$work:/out" \
    -e CELLAR_CLUSTER=lock-1:7070,lock-2:7071,lock-3:7072 \
    -e CELLAR_LOCK_ADDRS=lock-1:7070,lock-2:7071,lock-3:7072 \
    -e CELLAR_DFS_MASTERS=dfs-master-1:7400,dfs-master-2:7400,dfs-master-3:7400 \
    "$image" "$@"
}
container() { compose ps -q "$1"; }
# settle LABEL: waits until the writers' tablets have stayed on the same
# servers (cellar check servers) for 12s, longer than the master's balance
# interval (10s), or 60s have passed, and records how long that took. A
# master that just took over, or a server that just came back, draws tablet
# moves, and a moved tablet stalls writes briefly: without this, the next
# step's stall would count them as its own.
settle() {
  local t0 last cur since
  t0=$(now_ms); last=""; since=$t0
  while [ $(( $(now_ms) - t0 )) -lt 60000 ]; do
    cur=$(cellar check servers 2>/dev/null | sort || true)
    if [ "$cur" != "$last" ]; then last=$cur; since=$(now_ms); fi
    if [ $(( $(now_ms) - since )) -ge 12000 ]; then
      record "$1" "$(secs $(( since - t0 )))"; return
    fi
    sleep 1
  done
  record "$1" "still moving after 60s; going on"
}

# status NAME: a field of the writer's status line (cellar check write --status).
status() { sed -n "s/.*\b$1=\([0-9]*\).*/\1/p" "$work/status" 2>/dev/null; }

# wait_recovery T0 LIMIT_S: waits until no write has been in flight for
# over 0.5s and writes were acknowledged since T0 (ms), then prints how long
# after T0 the last slow write ended.
wait_recovery() {
  local t0=$1 limit=$2 acked0 stalled acked end
  acked0=$(status acked)
  sleep 1.5
  while :; do
    stalled=$(status stalled); acked=$(status acked); end=$(status stall_end_ms)
    if [ "$stalled" = 0 ] && [ "${acked:-0}" -gt "${acked0:-0}" ]; then
      if [ "$end" -gt "$t0" ]; then secs $(( end - t0 )); else echo "no write stalled over 0.5s"; fi
      return 0
    fi
    if [ $(( $(now_ms) - t0 )) -gt $(( limit * 1000 )) ]; then
      echo "writes still stalled ${limit}s after the fault: $(cat "$work/status")" >&2; return 1
    fi
    sleep 0.1
  done
}

lock_addrs=(lock-1:7070 lock-2:7071 lock-3:7072)
# lock_leader [EXCEPT]: the lock-service leader's ID, asking every replica
# but EXCEPT (a killed one, which would only make the query wait).
lock_leader() {
  local addrs
  addrs=$(printf '%s\n' "${lock_addrs[@]}" | grep -v "^${1:-none}:" | paste -sd, -)
  cellar lock status --addrs "$addrs" 2>/dev/null | awk '/state=Leader/ { sub("id=", "", $2); print $2; exit }'
}
active_master() { cellar lock get /cellar/master 2>/dev/null | tail -n 1 | tr -d '"'; }

say "building the image (static binary, FROM scratch)"
t=$(now_ms)
deploy/build-image.sh "$image" >/dev/null
record "image built" "$(secs $(( $(now_ms) - t )))"

say "starting the cluster (project $project)"
t=$(now_ms)
compose up -d >/dev/null 2>&1 || compose up -d
net=$(docker network ls --format '{{.Name}}' | grep -x "${project}_cellar")
say "loading data: 5000 rows with sync durability"
cellar check write --log /out/load --rows 5000 --writers 8 >/dev/null
record "cluster up and 5000 rows loaded" "$(secs $(( $(now_ms) - t )))"

say "starting the writer (8 writers, sync durability)"
writer=${project}-writer
docker run -d --name "$writer" --network "$net" --user "$(id -u):$(id -g)" -v "$work:/out" \
  -e CELLAR_CLUSTER=lock-1:7070,lock-2:7071,lock-3:7072 \
  "$image" check write --log /out/acks --status /out/status --writers 8 >/dev/null
sleep 3

# 1. A tablet server dies: its session expires (lease), the master
# recovers its commit log and reassigns its tablets. The victim is the
# server with the most of the writers' tablets.
top=$(cellar check servers | awk "NR == 1")
victim=${top%%:*}
say "1. killing $victim (serving ${top##* } of the writers' 8 tablets)"
t=$(now_ms)
docker kill "$(container $victim)" >/dev/null
r=$(wait_recovery "$t" 120)
record "tablet server killed -> writes flow again" "$r"
compose start $victim >/dev/null 2>&1
sleep 2
settle "tablet placement settled (after step 1)"

# 2. The active master dies: the standby takes the master lock.
old=$(active_master)
[ -n "$old" ] || { echo "no active master found" >&2; exit 1; }
say "2. killing the active master ($old)"
t=$(now_ms)
docker kill "$(container "${old%%:*}")" >/dev/null
while :; do
  cur=$(active_master || true)
  if [ -n "$cur" ] && [ "$cur" != "$old" ]; then break; fi
  [ $(( $(now_ms) - t )) -lt 15000 ] || { echo "no new master within 120s" >&2; exit 1; }
  sleep 0.2
done
record "active master killed -> $cur active" "$(secs $(( $(now_ms) - t )))"
r=$(wait_recovery "$t" 60)
record "  (writes stalled until)" "$r"
compose start "${old%%:*}" >/dev/null 2>&1

settle "tablet placement settled (after step 2)"

# 3. The lock-service leader dies: raft elects another; sessions ride the
# grace period.
old=$(lock_leader)
[ -n "$old" ] || { echo "no lock-service leader found" >&2; exit 1; }
say "3. killing the lock-service leader ($old)"
t=$(now_ms)
docker kill "$(container "$old")" >/dev/null
while :; do
  cur=$(lock_leader "$old" || true)
  if [ -n "$cur" ] && [ "$cur" != "$old" ]; then break; fi
  [ $(( $(now_ms) - t )) -lt 60000 ] || { echo "no new lock-service leader within 60s" >&2; exit 1; }
  sleep 0.2
done
record "lock leader killed -> $cur leads" "$(secs $(( $(now_ms) - t )))"
r=$(wait_recovery "$t" 60)
record "  (writes stalled until)" "$r"
compose start "$old" >/dev/null 2>&1

# 4. A chunkserver is cut off the network: write pipelines drop it; after
# it is reconnected it reports to the dfs master again.
victim=chunkserver-2
cid=$(container $victim)
say "4. disconnecting $victim from the network"
t=$(now_ms)
docker network disconnect "$net" "$cid"
r=$(wait_recovery "$t" 60)
record "chunkserver cut off -> writes flow again" "$r"
sleep 12 # past the dfs master's dead-after (10 heartbeats): it re-replicates
say "   reconnecting $victim"
t=$(now_ms)
docker network connect --alias $victim "$net" "$cid"
while ! cellar dfs status 2>/dev/null | grep -E "^[^ ]+ +$victim:7410 .* true +true " >/dev/null; do
  [ $(( $(now_ms) - t )) -lt 60000 ] || { echo "$victim not live again within 60s" >&2; cellar dfs status >&2 || true; exit 1; }
  sleep 0.5
done
record "chunkserver reconnected -> live again" "$(secs $(( $(now_ms) - t )))"
# Keep writing past the commit logs' low-replication roll interval (10s):
# each log whose pipeline lost the chunkserver rolls to a new file with a
# full pipeline, and the dfs re-replicates the closed one.
sleep 12

say "stopping the writer"
docker stop -t 30 "$writer" >/dev/null
docker logs "$writer" 2>/dev/null | tail -n 1 | sed 's/^/   writer: /'
acked=$(wc -l < "$work/acks")

say "verifying every acknowledged write ($acked during faults + 5000 loaded)"
cat "$work/load" >> "$work/acks"
t=$(now_ms)
cellar check verify --log /out/acks | sed 's/^/   /'
record "verify" "$(secs $(( $(now_ms) - t )))"

# wait_healthy LABEL SECONDS: polls dfs fsck until it reports HEALTHY
# (fails at once if data is missing, or after SECONDS), then records how
# long it took as LABEL.
wait_healthy() {
  local label=$1 limit_ms=$(( $2 * 1000 )) t out rc
  t=$(now_ms)
  while :; do
    out=$(cellar dfs fsck 2>&1) && rc=0 || rc=$?
    if [ $rc = 0 ] && grep -qx HEALTHY <<<"$out"; then break; fi
    if [ $rc = 2 ] || [ $(( $(now_ms) - t )) -gt $limit_ms ]; then echo "$out" >&2; echo "fsck: not healthy ($label)" >&2; exit 1; fi
    sleep 1
  done
  echo "$out" | tail -n 2 | sed 's/^/   /'
  record "$label" "$(secs $(( $(now_ms) - t )))"
}

# While the tablet servers run: commit logs that lost a replica have rolled
# (wal: low-replication roll) and the dfs re-replicates closed files, so the
# file system must become healthy without stopping anything.
say "checking the file system while the tablet servers run (dfs fsck) until it is healthy"
wait_healthy "fsck healthy with the servers running" 90
say "stopping the tablet servers cleanly (SIGTERM)"
compose stop -t 60 tabletserver-1 tabletserver-2 tabletserver-3 >/dev/null 2>&1
for s in tabletserver-1 tabletserver-2 tabletserver-3; do
  code=$(docker inspect -f '{{.State.ExitCode}}' "$(container $s)")
  [ "$code" = 0 ] || { echo "$s exited with status $code after SIGTERM" >&2; exit 1; }
done
say "checking the file system (dfs fsck) until it is healthy"
wait_healthy "fsck healthy after the servers stopped" 120

echo "== cluster test passed in $(( $(date +%s) - started ))s"
printf '   %s\n' "${summary[@]}"
