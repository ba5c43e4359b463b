# Headless Chromium (Debian's package, ~20 s to install) for the test that
# renders the HTML report with the network off and screenshots it, and
# Debian's ChromeDriver (same version) for the console's browser tests, which
# drive Chromium through the WebDriver protocol.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    apt-get install -y --no-install-recommends chromium chromium-driver >/dev/null 2>&1 ||
        { apt-get update >/dev/null && apt-get install -y --no-install-recommends chromium chromium-driver >/dev/null; }
fi
DRDRILL_TEST_CHROMIUM="$(command -v chromium)"
DRDRILL_TEST_CHROMEDRIVER="$(command -v chromedriver)"
export DRDRILL_TEST_CHROMIUM DRDRILL_TEST_CHROMEDRIVER
