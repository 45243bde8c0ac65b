#!/usr/bin/env bash
# Hostile input: schemathesis (pinned) generates requests for every operation of a live
# recloop's /openapi.json, valid and invalid, and checks every answer: no 5xx, status codes,
# content types, headers and bodies as the description says, auth enforced, invalid data
# refused. The server runs on a temporary SQLite database seeded with a catalog, events and a
# trained model, so that recommendations, similar items and the model routes answer from real
# data too. Exits non-zero on any failure.
#
# CARGO_TARGET_DIR is honoured; READY_TIMEOUT (s, default 60): how long the server may take to
# answer.
#
#   scripts/schemathesis.sh                 # 100 test cases per operation
#   ST_MAX_EXAMPLES=300 ST_SEED=1 scripts/schemathesis.sh
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"

ST_VERSION=4.32.5
max_examples=${ST_MAX_EXAMPLES:-100}
# Absolute: schemathesis runs from the temporary directory.
case $TARGET in
    /*) target=$TARGET ;;
    *) target=$ROOT/$TARGET ;;
esac

echo "== building recloop (the test profile: what \`cargo test\` already built, optimised enough to train)"
build --profile test --locked --quiet --bin recloop
bin=$target/debug/recloop

venv=$target/schemathesis-$ST_VERSION
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$ST_VERSION"; then
    echo "== installing schemathesis $ST_VERSION into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$ST_VERSION"
fi

work=$WORK
port=$(free_port)
base=http://127.0.0.1:$port
api_key=st-api-$(python3 -c 'import secrets; print(secrets.token_hex(12))')
admin_key=st-admin-$(python3 -c 'import secrets; print(secrets.token_hex(12))')

echo "== starting recloop on $base"
# Background training off, so that only schemathesis's retrain calls train; a small model keeps
# those trainings short in a debug build.
start server "$base/healthz" env RECLOOP_BIND="127.0.0.1:$port" DATABASE_URL="sqlite://$work/recloop.db" \
    RECLOOP_API_KEY="$api_key" RECLOOP_ADMIN_KEY="$admin_key" \
    RECLOOP_RETRAIN_INTERVAL_SECS=0 RECLOOP_RETRAIN_AFTER_EVENTS=0 \
    RECLOOP_FACTORS=8 RECLOOP_ITERATIONS=4 RECLOOP_SIMILAR_K=10 \
    "$bin" serve

echo "== seeding: catalog, events, a trained model"
admin=(-H "Authorization: Bearer $admin_key" -H "Content-Type: application/json")
python3 - >"$work/items.json" <<'EOF'
import json
print(json.dumps([{"item_id": f"i{i}", "title": f"item {i}", "categories": ["even" if i % 2 == 0 else "odd"]} for i in range(40)]))
EOF
python3 - >"$work/events.json" <<'EOF'
import json, random
rng = random.Random(7)
types = ["view", "click", "add_to_cart", "purchase"]
events = []
for u in range(30):
    # Two tastes: users of one half prefer the even items, the other half the odd ones.
    liked = [i for i in range(40) if i % 2 == u % 2]
    for i in rng.sample(liked, 12):
        events.append({"user_id": f"u{u}", "item_id": f"i{i}", "type": rng.choice(types),
                       "timestamp": f"2026-11-{1 + rng.randrange(20):02d}T10:00:00Z"})
print(json.dumps(events))
EOF
curl -fsS "${admin[@]}" -X POST --data @"$work/items.json" "$base/v1/items" >/dev/null
curl -fsS "${admin[@]}" -X POST --data @"$work/events.json" "$base/v1/events" >/dev/null
curl -fsS "${admin[@]}" -X POST "$base/v1/model/retrain?wait=true" >/dev/null
curl -fsS -H "Authorization: Bearer $api_key" "$base/v1/users/u1/recommendations" | grep -q '"source":"personalized"'

echo "== schemathesis $ST_VERSION: every operation, all checks, $max_examples test cases each"
# The admin key can do everything, so every operation is reached; `ignored_auth` also sends
# each request without a key and with a wrong one and expects 401. The API key's 403 on admin
# routes is covered by tests/api/keys.rs.
status=0
# One worker: CPython 3.11 before 3.11.8 can fail parsing source in two threads at once
# ("AST constructor recursion depth mismatch"), which schemathesis reports as an error.
# Run from the temporary directory: schemathesis keeps a cache in its working directory.
config=$PWD/scripts/schemathesis.toml
(cd "$work" && "$venv/bin/schemathesis" --config-file "$config" run "$base/openapi.json" \
    --checks all \
    --exclude-checks use_after_free \
    --max-examples "$max_examples" \
    ${ST_SEED:+--seed "$ST_SEED"} \
    --workers 1 \
    --request-timeout 60 \
    --suppress-health-check too_slow \
    -H "Authorization: Bearer $admin_key" \
    --output-truncate true) 2>&1 | tee "$work/schemathesis.log" || status=$?

if grep -qE 'panicked|internal error' "$work/server.log"; then
    echo "the server logged a panic or an internal error:"
    grep -E 'panicked|internal error' "$work/server.log" | head -20
    status=1
fi
# The counts, from schemathesis's own summary.
operations=$(grep -oP '^\s*Tested: \K[0-9]+' "$work/schemathesis.log" || echo "?")
cases=$(grep -oP '^\s*\K[0-9]+(?= generated)' "$work/schemathesis.log" || echo "?")
failures=$(grep -oP '^=+ \K[0-9]+(?= failures?)' "$work/schemathesis.log" || echo 0)
errors=$(grep -oP '^=+ .*?\K[0-9]+(?= errors?)' "$work/schemathesis.log" || echo 0)
echo "schemathesis: $operations operations, $cases test cases, $failures failures, $errors errors"
exit "$status"
