# SMTP sink for the email tests: aiosmtpd (from the venv made by 00-python.sh)
# storing every message in a Maildir that the tests read back.
# Sourced by scripts/test; uses free_port, cleanups and DRDRILL_TEST_ROOT from there.
DRDRILL_TEST_SMTP_PORT="$(free_port)"
# aiosmtpd creates the Maildir itself: an existing empty folder has no
# tmp/new/cur and every message would be refused.
DRDRILL_TEST_MAILDIR="$DRDRILL_TEST_ROOT/maildir"
# -n: do not setuid to nobody (we may run as root).
"$DRDRILL_TEST_VENV/bin/python" -u -m aiosmtpd -n -l "127.0.0.1:$DRDRILL_TEST_SMTP_PORT" \
    -c aiosmtpd.handlers.Mailbox "$DRDRILL_TEST_MAILDIR" >"$DRDRILL_TEST_ROOT/smtp.log" 2>&1 &
smtp_pid=$!
cleanups+=("kill $smtp_pid; wait $smtp_pid 2>/dev/null")
for _ in $(seq 100); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $DRDRILL_TEST_SMTP_PORT), 0.2)" 2>/dev/null; then
        break
    fi
    kill -0 "$smtp_pid" 2>/dev/null || { cat "$DRDRILL_TEST_ROOT/smtp.log"; echo "aiosmtpd did not start" >&2; exit 1; }
    sleep 0.05
done
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
"$DRDRILL_TEST_VENV/bin/python" -u -m aiosmtpd -n -l "127.0.0.1:$DRDRILL_TEST_SMTP_TLS_PORT" \
    --tlscert "$DRDRILL_TEST_ROOT/smtp-tls.crt" --tlskey "$DRDRILL_TEST_ROOT/smtp-tls.key" \
    -c aiosmtpd.handlers.Mailbox "$DRDRILL_TEST_MAILDIR_TLS" >"$DRDRILL_TEST_ROOT/smtp-tls.log" 2>&1 &
smtp_tls_pid=$!
cleanups+=("kill $smtp_tls_pid; wait $smtp_tls_pid 2>/dev/null")
for _ in $(seq 100); do
    if python3 -c "import socket; socket.create_connection(('127.0.0.1', $DRDRILL_TEST_SMTP_TLS_PORT), 0.2)" 2>/dev/null; then
        break
    fi
    kill -0 "$smtp_tls_pid" 2>/dev/null || { cat "$DRDRILL_TEST_ROOT/smtp-tls.log"; echo "aiosmtpd (TLS) did not start" >&2; exit 1; }
    sleep 0.05
done
export DRDRILL_TEST_SMTP_TLS_PORT DRDRILL_TEST_SMTP_CA DRDRILL_TEST_MAILDIR_TLS
