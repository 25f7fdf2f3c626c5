# Real Claude Code (npm @anthropic-ai/claude-code@2) for the tests that drive it as a client
# through the proxy (tests/claude_code.py). Installed once into a cache directory outside
# the checkout; sourced by .ci/run, which defines apt_install.
NEXUS_CLAUDE_CODE_DIR="${NEXUS_CLAUDE_CODE_DIR:-$HOME/.cache/nexus/claude-code}"
command -v npm >/dev/null || apt_install nodejs npm
if [ ! -x "$NEXUS_CLAUDE_CODE_DIR/node_modules/.bin/claude" ]; then
    mkdir -p "$NEXUS_CLAUDE_CODE_DIR"
    # Its postinstall step puts the native binary for this platform in place.
    npm install --prefix "$NEXUS_CLAUDE_CODE_DIR" --no-audit --no-fund --loglevel=error \
        "@anthropic-ai/claude-code@2"
fi
export NEXUS_CLAUDE_CODE="$NEXUS_CLAUDE_CODE_DIR/node_modules/.bin/claude"
echo "claude code: $("$NEXUS_CLAUDE_CODE" --version)"
