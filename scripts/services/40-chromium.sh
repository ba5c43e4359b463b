# Headless Chromium (Debian's package, ~20 s to install) for the test that
# renders the HTML report with the network off and screenshots it.
if ! command -v chromium >/dev/null; then
    apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 ||
        { apt-get update >/dev/null && apt-get install -y --no-install-recommends chromium >/dev/null; }
fi
DRDRILL_TEST_CHROMIUM="$(command -v chromium)"
export DRDRILL_TEST_CHROMIUM
