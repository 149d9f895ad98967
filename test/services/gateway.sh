# The built-in HTTP gateway, on a free loopback port, with a JWT secret the
# suites sign their tokens with, in a file only the server's user reads.
# Sourced by test/run before the cluster starts; the suites read
# EL_HTTP_URL and EL_JWT_SECRET (EL_JWT_SECRET_FILE is the file).
EL_HTTP_PORT=$(el_free_port)
EL_HTTP_URL="http://127.0.0.1:$EL_HTTP_PORT"
EL_JWT_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
EL_JWT_SECRET_FILE=$EL_TEST_WORK/jwt_secret
printf '%s\n' "$EL_JWT_SECRET" > "$EL_JWT_SECRET_FILE"
chmod 600 "$EL_JWT_SECRET_FILE"
chown postgres "$EL_JWT_SECRET_FILE"
export EL_HTTP_PORT EL_HTTP_URL EL_JWT_SECRET EL_JWT_SECRET_FILE
EL_CONF+=(
  "enterprise_lab.http_port = $EL_HTTP_PORT"
  "enterprise_lab.jwt_secret = '@$EL_JWT_SECRET_FILE'"
)
