# Shell functions for the version matrix: a Debian chroot per PostgreSQL
# major, made from Debian's own archive, with what scripts/install-deps
# installs for that major, kept as a tarball in a cache directory and made
# again when missing or when the package list changes.
#
# Usage: source scripts/chroot.sh; el_chroot_prepare 17; el_chroot_run 17 CMD...
#
# 15 is bookworm's, 17 trixie's, 18 forky's (debootstrap knows forky by the
# sid script); the major of the machine's own suite runs without a chroot.
# No Debian suite carries 16.

EL_TREE=${EL_TREE:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
EL_CACHE_DIR=${EL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/enterprise_lab}
EL_MIRROR=${EL_MIRROR:-http://deb.debian.org/debian}
source "$EL_TREE/scripts/citus.sh"

el_chroot_suite() {
  case $1 in
    15) echo bookworm ;;
    17) echo trixie ;;
    18) echo forky ;;
    *) return 1 ;;
  esac
}

# el_runs_on_host MAJOR: this machine is the Debian suite that carries MAJOR.
el_runs_on_host() {
  local suite
  suite=$(el_chroot_suite "$1") || return 1
  [ "$suite" = "$(. /etc/os-release 2>/dev/null; echo "${VERSION_CODENAME:-}")" ]
}

# The tarball's name changes with the Debian package list (and with
# EL_CHROOT_LAYOUT, raised when the way a chroot is made changes), so a new
# dependency makes a new chroot instead of running in a stale one.  npm
# packages are not in the chroot: the tree brings its .deps/.
EL_CHROOT_LAYOUT=1
el_chroot_tarball() {
  local major=$1 key
  key=$( { echo "$EL_CHROOT_LAYOUT"; sed -n '/^libjwt=/,/^)$/p' "$EL_TREE/scripts/install-deps"; } | sha256sum | cut -c1-12)
  echo "$EL_CACHE_DIR/pg$major-$(el_chroot_suite "$major")-$key.tar.zst"
}

# el_chroot_exec ROOT CMD...: run CMD as root inside ROOT with /proc, /sys
# and /dev mounted in a private mount namespace (they vanish with it), the
# tree copied to /src beforehand by the caller.
el_chroot_exec() {
  local root=$1; shift
  unshare --mount --propagation private -- /bin/bash -c '
    root=$1; shift
    mount -t proc proc "$root/proc" && mount -t sysfs sys "$root/sys" &&
    mount --rbind /dev "$root/dev" || exit 1
    cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null
    exec chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb CI="${CI:-}" EL_CITUS="${EL_CITUS:-}" \
      PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"' _ "$root" "$@"
}

# el_copy_tree DEST: this tree's files (tracked and new, not ignored) and
# its npm packages (.deps/, plain JavaScript), without build output.
el_copy_tree() {
  local dest=$1
  mkdir -p "$dest"
  (cd "$EL_TREE" && { git ls-files -co --exclude-standard 2>/dev/null || find . -path ./.git -prune -o -type f -print; } |
     tar -cf - -T - $( [ -d .deps ] && echo .deps ) 2>/dev/null) | tar -C "$dest" -xf -
}

el_chroot_prepare() {
  local major=$1 suite tarball root script=()
  suite=$(el_chroot_suite "$major") || { echo "no Debian suite carries PostgreSQL $major" >&2; return 1; }
  tarball=$(el_chroot_tarball "$major")
  [ -f "$tarball" ] && return 0
  command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap >/dev/null || return 1
  mkdir -p "$EL_CACHE_DIR"
  root=$(mktemp -d "$EL_CACHE_DIR/build-pg$major.XXXXXX")
  chmod 755 "$root"  # the chroot's /, which user postgres must traverse
  [ "$suite" = forky ] && script=(/usr/share/debootstrap/scripts/sid)
  echo "chroot: debootstrap $suite for PostgreSQL $major"
  debootstrap --variant=minbase --include=ca-certificates "$suite" "$root" "$EL_MIRROR" "${script[@]}" \
    > "$root.log" 2>&1 || { tail -20 "$root.log"; rm -rf "$root" "$root.log"; return 1; }
  # No service may start inside; no cluster is made by the packages.
  printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"; chmod 755 "$root/usr/sbin/policy-rc.d"
  mkdir -p "$root/etc/postgresql-common"
  # The archive may serve a testing suite whose Release file has passed its
  # Valid-Until date; its signature is still checked.
  echo 'Acquire::Check-Valid-Until "false";' > "$root/etc/apt/apt.conf.d/50enterprise-lab"
  echo "create_main_cluster = false" > "$root/etc/postgresql-common/createcluster.conf"
  # The host's extra certificate authorities (a proxy's, say) for npm.
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
  fi
  el_copy_tree "$root/src"
  el_chroot_exec "$root" /bin/bash -c "update-ca-certificates >/dev/null 2>&1; apt-get update -qq && /src/scripts/install-deps --pg $major --system-only" \
    >> "$root.log" 2>&1 || { tail -30 "$root.log"; rm -rf "$root" "$root.log"; return 1; }
  rm -rf "$root/src" "$root/var/cache/apt/archives/"*.deb "$root/var/lib/apt/lists/"*_Packages
  rm -f "$EL_CACHE_DIR/pg$major-$suite-"*.tar.zst
  tar -C "$root" -cf - . | zstd -q -T0 -3 > "$tarball.tmp" && mv "$tarball.tmp" "$tarball"
  local rc=$?
  rm -rf "$root" "$root.log"
  echo "chroot: PostgreSQL $major ready ($(du -h "$tarball" | cut -f1))"
  return $rc
}

# el_chroot_run MAJOR WORKDIR CMD...: unpack a fresh chroot of MAJOR into
# WORKDIR, copy this tree to /src in it, and run CMD in /src.  Where Citus
# is built for MAJOR (scripts/citus.sh) it is installed in the chroot too;
# EL_CITUS tells CMD whether it is, or why not.
el_chroot_run() {
  local major=$1 work=$2; shift 2
  el_chroot_prepare "$major" || return 1
  mkdir -p "$work"
  zstd -q -d -c "$(el_chroot_tarball "$major")" | tar -C "$work" -xf - || return 1
  chmod 755 "$work"
  el_copy_tree "$work/src"
  if el_citus_prepare "$major"; then el_citus_unpack "$major" "$work" || EL_CITUS="error: the Citus build could not be unpacked"; fi
  export EL_CITUS
  el_chroot_exec "$work" /bin/bash -c 'cd /src && exec "$@"' _ "$@"
}
