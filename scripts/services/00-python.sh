# Python tools the tests use as real servers: moto (S3-compatible) and aiosmtpd
# (SMTP sink), in a virtualenv kept under var/ so reruns skip the install.
DRDRILL_TEST_VENV="${DRDRILL_TEST_VENV:-$PWD/var/test-venv}"
if ! "$DRDRILL_TEST_VENV/bin/python" -c 'import moto, aiosmtpd, boto3' 2>/dev/null; then
    python3 -m venv "$DRDRILL_TEST_VENV"
    "$DRDRILL_TEST_VENV/bin/pip" install --quiet --disable-pip-version-check 'moto[server]' boto3 aiosmtpd
fi
export DRDRILL_TEST_VENV
