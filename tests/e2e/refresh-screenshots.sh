#!/usr/bin/env bash
# Copies README's screenshots from the last run of the browser tests into static/screenshots/.
#
#   cargo test --locked --features e2e --test e2e         # writes target/e2e-screenshots/
#   tests/e2e/refresh-screenshots.sh                      # the default set below
#   tests/e2e/refresh-screenshots.sh spaces-phone-dark …  # or the shots you name
#
# The a11y tests save every page as <page>-<desktop|phone>-<light|dark>.png; a missing shot is
# an error (run the tests first), and nothing else under static/screenshots/ is touched.
set -euo pipefail
cd "$(dirname "$0")/../.."

from=target/e2e-screenshots
to=static/screenshots
default=(
  landing-desktop-light landing-phone-dark
  granted-desktop-dark
  spaces-desktop-light spaces-phone-dark
  sign-in-phone-light sign-in-desktop-dark
  fake-verify-code-phone-light fake-consent-desktop-dark
  profile-desktop-light
  expired-phone-dark
  error-404-desktop-dark
)
# And three shots of the stories, under the names README uses.
renamed=(
  "11-spaces-filter:spaces-filter-desktop-light"
  "lan-sign-in:lan-sign-in-desktop-light"
  "lan-phone-approve:lan-phone-approve-phone-light"
)
# Each shot as `name` (kept) or `from:to` (renamed); named shots on the command line win.
if [ "$#" -gt 0 ]; then pairs=("$@"); else pairs=("${default[@]}" "${renamed[@]}"); fi

missing=0
for pair in "${pairs[@]}"; do
  if [ ! -f "$from/${pair%%:*}.png" ]; then
    echo "no $from/${pair%%:*}.png (run: cargo test --locked --features e2e --test e2e)" >&2
    missing=1
  fi
done
[ "$missing" -eq 0 ] || exit 1

mkdir -p "$to"
for pair in "${pairs[@]}"; do
  cp "$from/${pair%%:*}.png" "$to/${pair##*:}.png"
  echo "$to/${pair##*:}.png"
done
