#!/usr/bin/env bash
# Lighthouse (accessibility, best practices, performance) on the landing, spaces and sign-in
# pages of the release binary in demo mode, with Debian's chromium. Not part of CI (it needs
# npm and takes a minute); run it after changing a page:
#
#   cargo build --release && tests/e2e/lighthouse.sh      # PORT=18777 by default
#
# Lighthouse 12 is installed once into target/lighthouse from the npm registry. The reports are
# left in target/lighthouse/out/*.json; the script prints the three scores of each page.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
port=${PORT:-18777}
lhdir=$root/target/lighthouse
out=$lhdir/out; mkdir -p "$out"; rm -f "$out"/*
if [ ! -x "$lhdir/node_modules/.bin/lighthouse" ]; then
  npm install --silent --no-audit --no-fund --prefix "$lhdir" lighthouse@12.8.2 >/dev/null
fi
setsid env LISTEN_ADDR=127.0.0.1:$port SESSION_STORE=memory RUST_LOG=warn "$root/target/release/webex-oauth-axum" > $out/app.log 2>&1 &
pid=$!
trap 'pkill -g $pid || true' EXIT
for i in $(seq 1 100); do curl -fs http://127.0.0.1:$port/healthz >/dev/null && break; sleep 0.1; done
base=http://localhost:$port
jar=$out/jar
# GRANT walk with curl: /login -> fake consent -> accept -> /oauth -> /granted
consent=$(curl -s -c $jar -b $jar -o /dev/null -w '%{redirect_url}' $base/login)
page=$(curl -s -c $jar -b $jar "$consent")
fields=$(python3 - "$page" <<'PY'
import sys,re,html,urllib.parse
p=sys.argv[1]
pairs=re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"',p)
print(urllib.parse.urlencode([(k,html.unescape(v)) for k,v in pairs]+[("decision","accept")]))
PY
)
origin=$(python3 -c "import sys,urllib.parse as u;x=u.urlparse(sys.argv[1]);print(f'{x.scheme}://{x.netloc}')" "$consent")
back=$(curl -s -c $jar -b $jar -o /dev/null -w '%{redirect_url}' -X POST -H "Origin: $origin" --data "$fields" "$origin/v1/authorize")
curl -s -c $jar -b $jar -o /dev/null "$back"
cookie=$(awk 'NF==7 && (!/^#/ || /^#HttpOnly_/) {print $6"="$7}' $jar | head -1)
[ -n "$cookie" ] || cookie=$(grep -o 'id\s[^ ]*$' $jar | head -1)
echo "cookie: ${cookie%%=*}=…"
curl -s -b $jar -o /dev/null -w 'spaces %{http_code}\n' $base/spaces
lh=$lhdir/node_modules/.bin/lighthouse
flags="--headless=new --no-sandbox --disable-gpu --no-first-run --disable-background-networking --disable-component-update --disable-sync"
for path in / /spaces; do
  name=$(echo "$path" | tr -c 'a-z\n' '_'); 
  CHROME_PATH=/usr/bin/chromium $lh "$base$path" --quiet --output=json --output-path=$out/$name.json \
    --only-categories=accessibility,best-practices,performance --chrome-flags="$flags" \
    --extra-headers="{\"Cookie\":\"$(awk 'NF==7 && (!/^#/ || /^#HttpOnly_/) {print $6"="$7}' $jar | head -1)\"}" 2>>$out/lh.err || true
done
# sign-in: POST /sign-in with a fresh session, then Lighthouse on GET /sign-in with that cookie
jar2=$out/jar2
curl -s -c $jar2 -b $jar2 -o /dev/null $base/
curl -s -c $jar2 -b $jar2 -o /dev/null -X POST -H "Origin: $base" $base/sign-in
CHROME_PATH=/usr/bin/chromium $lh "$base/sign-in" --quiet --output=json --output-path=$out/sign_in.json \
  --only-categories=accessibility,best-practices,performance --chrome-flags="$flags" \
  --extra-headers="{\"Cookie\":\"$(awk 'NF==7 && (!/^#/ || /^#HttpOnly_/) {print $6"="$7}' $jar2 | head -1)\"}" 2>>$out/lh.err || true
for f in $out/*.json; do
  python3 - "$f" <<'PY'
import json,sys
r=json.load(open(sys.argv[1]))
print(r['finalDisplayedUrl'], {k:round(v['score']*100) for k,v in r['categories'].items()})
PY
done
