#!/usr/bin/env bash
# `make demo`: the main jobs of portalctl on the embedded SQLite default, in ./demo/.
set -euo pipefail
rm -rf demo && mkdir demo && cd demo
export PORTALCTL_OPERATOR=demo-operator
# Commands are shown as they would be typed (quoted where the shell needs it), in bold only on
# a terminal: redirected, the output carries no escape codes.
if [ -t 1 ]; then bold=$'\033[1m'; plain=$'\033[0m'; else bold=; plain=; fi
show() { printf '\n%s$ %s%s\n' "$bold" "$1" "$plain"; }
quoted() {
    local out="" arg
    for arg in "$@"; do
        if [[ "$arg" =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then out+="$arg "
        else out+="'${arg//\'/\'\\\'\'}' "; fi
    done
    printf '%s' "${out% }"
}
step() { show "$(quoted "$@")"; "$@"; }
# The code in the newest email of ./outbox-mail/ (the caller reading it out to the rep).
emailed_code() {
    python3 - outbox-mail <<'PY'
import re, sys
from email import message_from_binary_file, policy
from pathlib import Path
newest = max(Path(sys.argv[1]).glob("*.eml"), key=lambda path: path.stat().st_mtime_ns)
body = message_from_binary_file(open(newest, "rb"), policy=policy.default).get_content()
print(re.search(r"code: (\d+)\.", body).group(1))
PY
}

echo "== Set up: schema, and data from the portal guides' examples"
step portalctl db init
step portalctl db demo

echo
echo "== A rep on the phone: find the caller, check the account, verify them"
step portalctl accounts find --name smith --tin 836576879
step portalctl accounts lookup --username johnsmith@gmail.com --tin 836576879
step portalctl accounts show johnsmith@gmail.com
step portalctl accounts verify johnsmith@gmail.com --answer smith
echo "(a wrong TIN is 'not found', exit 3:)"
step portalctl accounts lookup --username johnsmith@gmail.com --tin 06-1137531 || echo "exit $?"

echo
echo "== Bulk: import accounts from CSV, then look many up at once"
cat > new-accounts.csv <<'CSV'
username,email,full_name,tins,status
mgarcia,maria.garcia@example.org,Maria Garcia,061137531:security_admin,active
dlee,david.lee@example.org,David Lee,061137531;836576879,active
"okafor, a",aisha.okafor@example.org,"Okafor, Aisha",,locked
CSV
step portalctl accounts import new-accounts.csv || true
echo "(a username may not contain a comma: nothing was written, exit 5; fix the file and re-run)"
sed -i 's/"okafor, a"/aokafor/' new-accounts.csv
step portalctl accounts import new-accounts.csv
printf 'username,tin\nmgarcia,061137531\ndlee,836576879\nnobody,836576879\n' > lookups.csv
step portalctl accounts lookup --csv lookups.csv

# --- registration codes and email (issue 2) ---
echo
echo "== Ruth Goneh finished credentialing: a registration code for her TIN, emailed to James Smith"
show 'portalctl codes issue --tin 061137531 --admin-name "James Smith" --admin-email james.smith@example.org --provider-name "Ruth Goneh" --format json'
portalctl codes issue --tin 061137531 --admin-name "James Smith" \
    --admin-email james.smith@example.org --provider-name "Ruth Goneh" --format json | tee issued.json
CODE=$(python3 -c 'import json; print(json.load(open("issued.json"))["code"])')
echo "(no PORTALCTL_SMTP_URL here, so mail send writes .eml files to ./outbox-mail/)"
step portalctl mail send
step ls outbox-mail
echo "(the .eml, decoded: headers and the text of the seed's credentialing email)"
python3 - outbox-mail/*.eml <<'PY'
import sys
from email import message_from_binary_file, policy
message = message_from_binary_file(open(sys.argv[1], "rb"), policy=policy.default)
for name in ("From", "To", "Subject", "Message-ID"):
    print(f"{name}: {message[name]}")
print()
print(message.get_content())
PY
step portalctl codes verify --tin 061137531 --code "$CODE"
echo "(a wrong code is refused and counted, exit 4:)"
step portalctl codes verify --tin 061137531 --code 00000000 || echo "exit $?"
step portalctl codes list --tin 061137531
step portalctl mail list

# --- Tax ID linking and registration (issue 3) ---
echo
echo "== Registering an additional Tax ID with a code (the portal guide's flow)"
code=$(portalctl codes issue --tin 061137531 --admin-name "James Smith" \
    --admin-email james.smith@goneh-practice.example --provider-name "Ruth Goneh" --no-email \
    -f csv | tail -n 1 | cut -d, -f3)
echo "(a code for 061137531 was issued to James Smith; it is printed only once)"
echo "(James already has an account with that email: registering anew is refused, exit 4)"
step portalctl accounts register --tin 061137531 --code "$code" -u jsmith.new \
    -e james.smith@goneh-practice.example -n "James Smith" || echo "exit $?"
echo "(step 3, Email Address Verification: the code goes out at once; no SMTP URL here, so as a"
echo " .eml file in ./outbox-mail/; the caller reads it back)"
step portalctl accounts email-code james.smith --email james.smith@goneh-practice.example
step portalctl accounts confirm-email james.smith --code "$(emailed_code)"
show "printf 'Portal-Demo-2021\\n' | portalctl accounts verify james.smith --password-stdin"
printf 'Portal-Demo-2021\n' | portalctl accounts verify james.smith --password-stdin
step portalctl tins link -u james.smith --tin 061137531 --code "$code"
step portalctl tins show 061137531

# --- the caller's credentials (issue 13) ---
echo
echo "== Consolidating Existing Accounts (seed 000), steps 2-6, for the caller who owns jsmith_old"
step portalctl accounts lookup --username jsmith_old --tin 836576879
step portalctl accounts verify jsmith_old --answer smith
step portalctl accounts email-code jsmith_old --email johnsmith@gmail.com
step portalctl accounts confirm-email jsmith_old --code "$(emailed_code)"
show "printf 'Portal-Demo-2021\\n' | portalctl accounts verify johnsmith@gmail.com --password-stdin"
printf 'Portal-Demo-2021\n' | portalctl accounts verify johnsmith@gmail.com --password-stdin
echo "(the merge itself is the consolidation below)"

echo
echo "== A PIN instead of the security question; Forgot Password; Forgot Username"
show "printf '4821\\n' | portalctl accounts set-security james.smith --pin-stdin"
printf '4821\n' | portalctl accounts set-security james.smith --pin-stdin
show "printf '4821\\n' | portalctl accounts verify james.smith --pin-stdin"
printf '4821\n' | portalctl accounts verify james.smith --pin-stdin
step portalctl accounts reset-password james.smith
show "printf 'Harbour-Lights-77\\n' | portalctl accounts set-password james.smith --reset-code CODE --password-stdin"
printf 'Harbour-Lights-77\n' | portalctl accounts set-password james.smith --reset-code "$(emailed_code)" --password-stdin
step portalctl accounts send-username --email johnsmith@gmail.com

# --- consolidation (issue 4) ---
echo
echo "== Consolidation: John Smith's duplicate accounts merged into johnsmith@gmail.com"
cat > duplicates.csv <<'CSV'
primary_username,secondary_username,tin,note
johnsmith@gmail.com,jsmith_old,836576879,old practice login
johnsmith@gmail.com,john.smith.2019,,same email address
CSV
step portalctl consolidate run duplicates.csv --dry-run --report plan.csv
step cat plan.csv
step portalctl consolidate run duplicates.csv --report done.csv --notify
step portalctl consolidate status
step portalctl accounts show johnsmith@gmail.com
echo "(running the same file again changes nothing: every row is already_merged)"
step portalctl consolidate run duplicates.csv

echo
echo "== Every change above is in the audit log"
step portalctl audit --limit 8
