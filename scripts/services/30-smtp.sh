# SMTP sink for the email tests: aiosmtpd (from the venv made by 00-python.sh)
# storing every message in a Maildir that the tests read back.
# Sourced by scripts/test; uses free_port, cleanups and DRDRILL_TEST_ROOT from there.

# Starts one aiosmtpd Maildir sink on PORT (extra aiosmtpd options after the
# first three arguments) and waits until it accepts connections.
start_smtp_sink() {
    local port=$1 maildir=$2 log=$3 pid
    shift 3
    # -n: do not setuid to nobody (we may run as root).
    "$DRDRILL_TEST_VENV/bin/python" -u -m aiosmtpd -n -l "127.0.0.1:$port" "$@" \
        -c aiosmtpd.handlers.Mailbox "$maildir" >"$log" 2>&1 &
    pid=$!
    cleanups+=("kill $pid; wait $pid 2>/dev/null")
    for _ in $(seq 100); do
        python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || { cat "$log"; echo "aiosmtpd on port $port did not start" >&2; exit 1; }
        sleep 0.05
    done
}

DRDRILL_TEST_SMTP_PORT="$(free_port)"
# aiosmtpd creates the Maildir itself: an existing empty folder has no
# tmp/new/cur and every message would be refused.
DRDRILL_TEST_MAILDIR="$DRDRILL_TEST_ROOT/maildir"
start_smtp_sink "$DRDRILL_TEST_SMTP_PORT" "$DRDRILL_TEST_MAILDIR" "$DRDRILL_TEST_ROOT/smtp.log"
export DRDRILL_TEST_SMTP_PORT DRDRILL_TEST_MAILDIR

# A second sink that requires STARTTLS, with a throwaway certificate for
# 127.0.0.1/localhost (rustls needs the subjectAltName), for the TLS test.
DRDRILL_TEST_SMTP_TLS_PORT="$(free_port)"
DRDRILL_TEST_SMTP_CA="$DRDRILL_TEST_ROOT/smtp-ca.crt"
DRDRILL_TEST_MAILDIR_TLS="$DRDRILL_TEST_ROOT/maildir-tls"
# A private CA and a server certificate it signs (rustls refuses a CA
# certificate used directly as the server's).
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=drdrill-test-ca \
    -keyout "$DRDRILL_TEST_ROOT/smtp-ca.key" -out "$DRDRILL_TEST_SMTP_CA" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=localhost \
    -keyout "$DRDRILL_TEST_ROOT/smtp-tls.key" -out "$DRDRILL_TEST_ROOT/smtp-tls.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$DRDRILL_TEST_ROOT/smtp-tls.ext"
openssl x509 -req -in "$DRDRILL_TEST_ROOT/smtp-tls.csr" -CA "$DRDRILL_TEST_SMTP_CA" \
    -CAkey "$DRDRILL_TEST_ROOT/smtp-ca.key" -CAcreateserial -days 2 \
    -extfile "$DRDRILL_TEST_ROOT/smtp-tls.ext" -out "$DRDRILL_TEST_ROOT/smtp-tls.crt" 2>/dev/null
start_smtp_sink "$DRDRILL_TEST_SMTP_TLS_PORT" "$DRDRILL_TEST_MAILDIR_TLS" "$DRDRILL_TEST_ROOT/smtp-tls.log" \
    --tlscert "$DRDRILL_TEST_ROOT/smtp-tls.crt" --tlskey "$DRDRILL_TEST_ROOT/smtp-tls.key"
export DRDRILL_TEST_SMTP_TLS_PORT DRDRILL_TEST_SMTP_CA DRDRILL_TEST_MAILDIR_TLS
