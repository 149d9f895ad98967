# A Citus cluster for the citus* suites and bench/citus: a coordinator and
# the worker nodes after it in NODES (worker1 and worker2 unless the caller
# sets NODES) on loopback, each its own cluster with citus and
# enterprise_lab preloaded (citus first, as Citus requires), the worker
# nodes added and enterprise_lab created on the coordinator (Citus creates
# it on the worker nodes).  Sourced after test/tap.sh and scripts/cluster.sh.
#
# Runs where the Citus build is installed: ./test/run --pg 17 with
# EL_CITUS_SOURCE naming the Citus source tarball (scripts/citus.sh).
# Elsewhere citus_require prints one TAP skip with the reason and exits.

citus_require() {
  case ${EL_CITUS:-} in
    ready) [ -f "$(pg_config --pkglibdir)/citus.so" ] || { echo "not ok 1 - Citus is said to be installed but citus.so is missing"; echo "1..1"; exit 1; } ;;
    error:*) echo "not ok 1 - Citus: ${EL_CITUS#error: }"; echo "1..1"; exit 1 ;;
    *) echo "ok 1 # SKIP ${EL_CITUS:-Citus is not installed}: run ./test/run --pg 17 with EL_CITUS_SOURCE set"; echo "1..1"; exit 0 ;;
  esac
}

# Each suite (and bench/citus) has clusters of its own, under its name.
CITUS_DIR=$EL_TEST_WORK/$(basename "$0")
[ -n "${NODES+set}" ] || NODES=(coordinator worker1 worker2)
declare -A PORT

# node_start NAME: a cluster of its own under CITUS_DIR/NAME on a free port
# (kept when the node is started again).
node_start() {
  local name=$1 dir=$CITUS_DIR/$1
  if [ ! -d "$dir/data" ]; then
    PORT[$name]=$(el_free_port)
    mkdir -p "$dir/data" "$dir/socket"
    chown postgres "$dir/data" "$dir/socket"
    runuser -u postgres -- "$EL_BINDIR/initdb" -D "$dir/data" -A trust -U postgres --no-sync >/dev/null || return 1
    cat >> "$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = ${PORT[$name]}
unix_socket_directories = '$dir/socket'
shared_preload_libraries = 'citus,enterprise_lab'
max_worker_processes = 24
enterprise_lab.database = 'lab'
fsync = off
log_line_prefix = '%m [%p] %q%a '
${CITUS_CONF:-}
CONF
    touch "$dir/postgresql.log"; chown postgres "$dir/postgresql.log"
  fi
  runuser -u postgres -- "$EL_BINDIR/pg_ctl" -D "$dir/data" -l "$dir/postgresql.log" -w -t 60 start >/dev/null
}

node_stop() {  # NAME [MODE]
  runuser -u postgres -- "$EL_BINDIR/pg_ctl" -D "$CITUS_DIR/$1/data" -m "${2:-fast}" -w -t 60 stop >/dev/null 2>&1
}
trap 'for n in "${NODES[@]}"; do node_stop "$n" immediate; done' EXIT

# on NAME SQL...: psql on that node's lab database, stop on the first error.
on() {
  local name=$1; shift
  psql -X -q -A -t -v ON_ERROR_STOP=1 -h "$CITUS_DIR/$name/socket" -p "${PORT[$name]}" -U postgres -d lab "$@"
}

# wait_for_on TIMEOUT NODE SQL: poll until SQL returns 't' on NODE.
wait_for_on() {
  local deadline=$(( $(date +%s) + $1 ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    [ "$(on "$2" -c "$3" 2>/dev/null)" = t ] && return 0
    sleep 0.2
  done
  return 1
}

# citus_cluster_start: the three nodes, Citus on each, the worker nodes
# added and enterprise_lab created; one TAP line per step.
citus_cluster_start() {
  local n
  for n in "${NODES[@]}"; do
    node_start "$n"; ok $? "$n: cluster started with shared_preload_libraries = 'citus,enterprise_lab'"
    PGHOST=$CITUS_DIR/$n/socket PGPORT=${PORT[$n]} createdb -U postgres lab
    on "$n" -c "CREATE EXTENSION citus" >/dev/null; ok $? "$n: CREATE EXTENSION citus"
  done
  on coordinator -c "SELECT citus_set_coordinator_host('127.0.0.1', ${PORT[coordinator]})" >/dev/null
  ok $? "citus_set_coordinator_host"
  for n in "${NODES[@]:1}"; do
    on coordinator -c "SELECT citus_add_node('127.0.0.1', ${PORT[$n]})" >/dev/null; ok $? "citus_add_node $n"
  done
  on coordinator -c "CREATE EXTENSION enterprise_lab" >/dev/null; ok $? "coordinator: CREATE EXTENSION enterprise_lab"
}
