# An S3-compatible server for tests/s3.rs: moto_server (from the venv made by
# 00-python.sh) on a free loopback port, with the test bucket created by a
# signed request. moto accepts any key, so the test keys are arbitrary.
# Sourced by scripts/test; uses free_port and cleanups from it.

DRDRILL_TEST_S3_PORT="$(free_port)"
DRDRILL_TEST_S3_ENDPOINT="http://127.0.0.1:$DRDRILL_TEST_S3_PORT"
DRDRILL_TEST_S3_BUCKET="drills"
"$DRDRILL_TEST_VENV/bin/moto_server" -H 127.0.0.1 -p "$DRDRILL_TEST_S3_PORT" >"$DRDRILL_TEST_ROOT/moto.log" 2>&1 &
moto_pid=$!
cleanups+=("kill $moto_pid")
for _ in $(seq 200); do
    curl -s -o /dev/null "$DRDRILL_TEST_S3_ENDPOINT/moto-api/" && break
    sleep 0.05
done
AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing "$DRDRILL_TEST_VENV/bin/python" - \
    "$DRDRILL_TEST_S3_ENDPOINT" "$DRDRILL_TEST_S3_BUCKET" <<'PY'
import sys, boto3
boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1").create_bucket(Bucket=sys.argv[2])
PY
export DRDRILL_TEST_S3_PORT DRDRILL_TEST_S3_ENDPOINT DRDRILL_TEST_S3_BUCKET
export DRDRILL_TEST_S3_ACCESS_KEY_ID=testing DRDRILL_TEST_S3_SECRET_ACCESS_KEY=testing
