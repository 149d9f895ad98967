# S3 for the tests: s3rver stores the objects, and every request reaches it
# through the proxy that verifies Signature V4 with botocore, so a request
# the extension signs wrongly fails the test that sent it.
source scripts/s3.sh
el_start_s3 "$EL_TEST_WORK" verify || return 1
EL_CONF+=("${EL_S3_CONF[@]}" "enterprise_lab.s3_timeout = '30s'")
