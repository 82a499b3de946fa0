#!/usr/bin/env bash
# Copies README's screenshots from the last run of the browser tests into static/screenshots/.
#
#   cargo test --locked --features e2e --test e2e a11y    # writes target/e2e-screenshots/
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
  sign-in-desktop-light sign-in-phone-light sign-in-desktop-dark
  fake-verify-code-phone-light fake-consent-desktop-dark
  profile-desktop-light
  expired-phone-dark
  error-404-desktop-dark
)
if [ "$#" -gt 0 ]; then shots=("$@"); else shots=("${default[@]}"); fi

missing=0
for shot in "${shots[@]}"; do
  if [ ! -f "$from/$shot.png" ]; then
    echo "no $from/$shot.png (run: cargo test --locked --features e2e --test e2e a11y)" >&2
    missing=1
  fi
done
[ "$missing" -eq 0 ] || exit 1

mkdir -p "$to"
for shot in "${shots[@]}"; do
  cp "$from/$shot.png" "$to/$shot.png"
  echo "$to/$shot.png"
done
