# Shell functions shared by the test harness, the demo and the benchmarks:
# a private PostgreSQL installation with this tree's build in it, and a
# throwaway cluster run by user postgres on loopback.
#
# Usage: source scripts/cluster.sh; el_setup_cluster DIR; ...; el_stop_cluster
# Exports PGHOST (socket dir), PGPORT, PGUSER for psql and friends.

EL_TREE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_CONFIG=${PG_CONFIG:-$(command -v pg_config || echo /usr/lib/postgresql/15/bin/pg_config)}

# A loopback port nothing listens on.  The kernel may hand out the same
# port again before the first taker binds it (a service started later, a
# cluster not yet up), so with EL_PORTS_FILE set (test/run sets it) every
# port given out is recorded there and never given twice.
el_free_port() {
  local port
  while :; do
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    [ -n "${EL_PORTS_FILE:-}" ] || break
    grep -qx "$port" "$EL_PORTS_FILE" 2>/dev/null || { echo "$port" >> "$EL_PORTS_FILE"; break; }
  done
  echo "$port"
}

# Copy (hard-link) the system PostgreSQL installation into DIR/root and
# install this tree's build there.  PostgreSQL finds its share and lib
# directories relative to its binaries, so the copy is a complete
# installation that sees our extension and nobody else's build of it.
el_private_install() {
  local dir=$1 bindir sharedir libdir
  bindir=$("$PG_CONFIG" --bindir); sharedir=$("$PG_CONFIG" --sharedir); libdir=$("$PG_CONFIG" --pkglibdir)
  mkdir -p "$dir/root$(dirname "$bindir")" "$dir/root$(dirname "$sharedir")" "$dir/root$(dirname "$libdir")"
  [ -d "$dir/root$bindir" ] || cp -al "$bindir" "$dir/root$bindir" 2>/dev/null || cp -a "$bindir" "$dir/root$bindir"
  [ -d "$dir/root$sharedir" ] || cp -al "$sharedir" "$dir/root$sharedir" 2>/dev/null || cp -a "$sharedir" "$dir/root$sharedir"
  [ -d "$dir/root$libdir" ] || cp -al "$libdir" "$dir/root$libdir" 2>/dev/null || cp -a "$libdir" "$dir/root$libdir"
  # Never write through a hard link into the system installation.
  rm -rf "$dir/root$sharedir/extension/enterprise_lab"* "$dir/root$libdir/enterprise_lab.so" \
         "$dir/root$libdir/bitcode/enterprise_lab"* "$dir/root$sharedir/enterprise_lab"
  make -s -C "$EL_TREE" install DESTDIR="$dir/root" >/dev/null
  EL_BINDIR="$dir/root$bindir"
  export EL_BINDIR
  export PATH="$EL_BINDIR:$PATH"
}

# el_setup_cluster DIR [extra postgresql.conf lines...]
el_setup_cluster() {
  local dir=$1; shift
  mkdir -p "$dir"
  chmod 755 "$dir"
  el_private_install "$dir"
  PGPORT=${EL_PORT:-$(el_free_port)}
  PGHOST="$dir/socket"
  PGUSER=postgres
  export PGPORT PGHOST PGUSER
  EL_DATA="$dir/data"
  EL_LOG="$dir/postgresql.log"
  export EL_DATA EL_LOG
  mkdir -p "$PGHOST" "$EL_DATA"
  chown postgres "$PGHOST" "$EL_DATA"
  touch "$EL_LOG"; chown postgres "$EL_LOG"
  runuser -u postgres -- "$EL_BINDIR/initdb" -D "$EL_DATA" -A trust -U postgres --no-sync >/dev/null
  cat >> "$EL_DATA/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = '$PGHOST'
shared_preload_libraries = 'enterprise_lab,pg_cron'
max_worker_processes = 24
cron.database_name = 'lab'
enterprise_lab.database = 'lab'
fsync = off
log_line_prefix = '%m [%p] %q%a '
CONF
  local line
  for line in "$@"; do echo "$line" >> "$EL_DATA/postgresql.conf"; done
  el_start_cluster
}

el_start_cluster() {
  runuser -u postgres -- "$EL_BINDIR/pg_ctl" -D "$EL_DATA" -l "$EL_LOG" -w -t 60 start >/dev/null
}

el_stop_cluster() {
  local mode=${1:-fast}
  [ -n "${EL_DATA:-}" ] && [ -f "$EL_DATA/postmaster.pid" ] &&
    runuser -u postgres -- "$EL_BINDIR/pg_ctl" -D "$EL_DATA" -m "$mode" -w -t 60 stop >/dev/null || true
}

# el_psql DB SQL...: run SQL quietly, unaligned, stop on the first error.
el_psql() {
  local db=$1; shift
  psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$db" "$@"
}
