# Shell functions that start a local S3 for the tests and the demo: s3rver
# (npm package, installed by scripts/install-deps into .deps/) on a free
# loopback port and, optionally, in front of it the proxy that verifies
# every request's Signature V4 with botocore (test/s3/verifying_proxy.py).
#
# Usage: source scripts/s3.sh; el_start_s3 DIR [verify] [BUCKET]
#   data in DIR/s3rver-data, logs and pid files (s3rver.pid, s3proxy.pid)
#   in DIR.  Sets EL_S3_ENDPOINT (what the extension should use),
#   EL_S3_BACKEND (s3rver itself), EL_S3_PROXY_LOG, EL_S3_ACCESS_KEY,
#   EL_S3_SECRET_KEY, EL_S3_SECRET_FILE (DIR/s3_secret_key, the file the
#   extension reads the key from), EL_S3_BUCKET, and EL_S3_CONF: the
#   postgresql.conf lines that point enterprise_lab at it.

EL_S3_TREE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
declare -F el_free_port >/dev/null || source "$EL_S3_TREE/scripts/cluster.sh"

# el_wait_http URL SECONDS: wait until something answers at URL.
el_wait_http() {
  local url=$1 deadline=$(( $(date +%s) + $2 ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    curl -s -o /dev/null --max-time 1 "$url" && return 0
    sleep 0.1
  done
  echo "nothing answers at $url" >&2
  return 1
}

el_start_s3() {
  local dir=$1 mode=${2:-} bucket=${3:-enterprise-documents} port proxy_port
  # s3rver's built-in account; it checks the access key, not the signature.
  EL_S3_ACCESS_KEY=S3RVER
  EL_S3_SECRET_KEY=S3RVER
  EL_S3_BUCKET=$bucket
  # The extension reads the secret from a file only the server's user reads.
  EL_S3_SECRET_FILE=$dir/s3_secret_key
  printf '%s\n' "$EL_S3_SECRET_KEY" > "$EL_S3_SECRET_FILE"
  chmod 600 "$EL_S3_SECRET_FILE"
  chown postgres "$EL_S3_SECRET_FILE"
  mkdir -p "$dir/s3rver-data"
  port=$(el_free_port)
  node "$EL_S3_TREE/.deps/node_modules/s3rver/bin/s3rver.js" \
    --directory "$dir/s3rver-data" --address 127.0.0.1 --port "$port" --silent \
    --configure-bucket "$bucket" > "$dir/s3rver.log" 2>&1 &
  echo $! > "$dir/s3rver.pid"
  EL_S3_BACKEND=http://127.0.0.1:$port
  el_wait_http "$EL_S3_BACKEND/" 30 || { cat "$dir/s3rver.log" >&2; return 1; }
  EL_S3_ENDPOINT=$EL_S3_BACKEND
  EL_S3_PROXY_LOG=
  if [ "$mode" = verify ]; then
    proxy_port=$(el_free_port)
    EL_S3_PROXY_LOG=$dir/s3proxy.log
    : > "$EL_S3_PROXY_LOG"
    /usr/bin/python3 "$EL_S3_TREE/test/s3/verifying_proxy.py" \
      --listen "127.0.0.1:$proxy_port" --backend "127.0.0.1:$port" \
      --access-key "$EL_S3_ACCESS_KEY" --secret-key "$EL_S3_SECRET_KEY" \
      --region us-east-1 --log "$EL_S3_PROXY_LOG" > "$dir/s3proxy.out" 2>&1 &
    echo $! > "$dir/s3proxy.pid"
    EL_S3_ENDPOINT=http://127.0.0.1:$proxy_port
    el_wait_http "$EL_S3_ENDPOINT/" 30 || { cat "$dir/s3proxy.out" >&2; return 1; }
  fi
  EL_S3_CONF=(
    "enterprise_lab.s3_endpoint = '$EL_S3_ENDPOINT'"
    "enterprise_lab.s3_region = 'us-east-1'"
    "enterprise_lab.s3_bucket = '$bucket'"
    "enterprise_lab.s3_access_key = '$EL_S3_ACCESS_KEY'"
    "enterprise_lab.s3_secret_key = '@$EL_S3_SECRET_FILE'"
    "enterprise_lab.s3_path_style = on"
  )
  export EL_S3_ENDPOINT EL_S3_BACKEND EL_S3_PROXY_LOG EL_S3_ACCESS_KEY EL_S3_SECRET_KEY EL_S3_SECRET_FILE EL_S3_BUCKET
}
