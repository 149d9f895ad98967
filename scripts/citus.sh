# Shell functions that build Citus for the version matrix's chroots.
# Citus is not in Debian's archive: the caller names its source tarball in
# EL_CITUS_SOURCE (a `git archive` of a Citus release tag); its sha256 must
# be EL_CITUS_SHA256.  The build runs with PGXS in a fresh chroot of the
# major and its installed files are kept, as a tarball of the DESTDIR, in
# EL_CACHE_DIR next to the chroots, keyed by the source's sha256 and the
# chroot's own key: a new source or a new chroot makes a new build.
#
# Sourced by scripts/chroot.sh, whose el_chroot_run installs the build:
#        el_citus_prepare 17 && el_citus_unpack 17 CHROOT-ROOT
# el_citus_prepare sets EL_CITUS to "ready", or to why Citus is absent:
# "error: ..." where something is wrong (a source with another sha256, a
# failed build), which the citus suite reports as a failure, not a skip.

EL_CITUS_VERSION=14.0.1
EL_CITUS_SHA256=${EL_CITUS_SHA256:-26ddb8ec9de07c5fa8426e435d10936e5cd6bed01a5ad94aab92e818081e5ec9}
# The majors the matrix runs Citus on (Citus 14 supports 16-18; one major
# keeps the cost of the build and of the suite to one run).
EL_CITUS_MAJORS=(17)

el_citus_tarball() {
  local major=$1
  echo "$EL_CACHE_DIR/citus-$EL_CITUS_VERSION-${EL_CITUS_SHA256:0:12}-$(basename "$(el_chroot_tarball "$major")")"
}

el_citus_prepare() {
  local major=$1 tarball root log
  EL_CITUS=""
  if [[ " ${EL_CITUS_MAJORS[*]} " != *" $major "* ]]; then
    EL_CITUS="Citus is tested on PostgreSQL ${EL_CITUS_MAJORS[*]} only"; return 1
  fi
  tarball=$(el_citus_tarball "$major")
  if [ -f "$tarball" ]; then EL_CITUS=ready; return 0; fi
  if [ -z "${EL_CITUS_SOURCE:-}" ] || [ ! -f "$EL_CITUS_SOURCE" ]; then
    EL_CITUS="no Citus source: set EL_CITUS_SOURCE to citus-$EL_CITUS_VERSION.tar.gz"; return 1
  fi
  if [ "$(sha256sum < "$EL_CITUS_SOURCE" | cut -d' ' -f1)" != "$EL_CITUS_SHA256" ]; then
    EL_CITUS="error: $EL_CITUS_SOURCE does not have sha256 $EL_CITUS_SHA256"; return 1
  fi
  el_chroot_prepare "$major" || { EL_CITUS="error: the PostgreSQL $major chroot could not be made"; return 1; }
  root=$(mktemp -d "$EL_CACHE_DIR/build-citus-pg$major.XXXXXX")
  log="$root.log"
  echo "citus: building Citus $EL_CITUS_VERSION for PostgreSQL $major"
  local t0=$SECONDS
  zstd -q -d -c "$(el_chroot_tarball "$major")" | tar -C "$root" -xf - &&
    mkdir -p "$root/build" && tar -C "$root/build" --strip-components=1 -xzf "$EL_CITUS_SOURCE" &&
    el_chroot_exec "$root" /bin/bash -c "
      set -e
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      apt-get install -y -qq --no-install-recommends liblz4-dev libzstd-dev libicu-dev libcurl4-openssl-dev >/dev/null
      cd /build
      ./configure PG_CONFIG=/usr/lib/postgresql/$major/bin/pg_config >/dev/null
      make -s -j\$(nproc) >/dev/null
      make -s install DESTDIR=/citus-dest >/dev/null" > "$log" 2>&1 &&
    rm -f "$EL_CACHE_DIR/citus-"*"-pg$major-"*.tar.zst &&
    tar -C "$root/citus-dest" -cf - . | zstd -q -T0 -3 > "$tarball.tmp" && mv "$tarball.tmp" "$tarball"
  local rc=$?
  [ $rc -eq 0 ] || tail -30 "$log"
  rm -rf "$root" "$log"
  if [ $rc -ne 0 ]; then rm -f "$tarball.tmp"; EL_CITUS="error: the Citus build failed"; return 1; fi
  echo "citus: built in $((SECONDS - t0)) s ($(du -h "$tarball" | cut -f1))"
  EL_CITUS=ready
}

# el_citus_unpack MAJOR ROOT: install the cached build into a chroot.
el_citus_unpack() {
  zstd -q -d -c "$(el_citus_tarball "$1")" | tar -C "$2" -xf -
}
