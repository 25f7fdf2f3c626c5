# Headless Chromium for the dashboard's browser tests (Playwright drives
# Debian's build; Playwright's own browser download cannot work offline).
if [ ! -x /usr/bin/chromium ]; then
    apt_install chromium fonts-dejavu-core
fi
test -x /usr/bin/chromium && echo "chromium: $(dpkg-query -W -f='${Version}' chromium 2>/dev/null || echo present)"
