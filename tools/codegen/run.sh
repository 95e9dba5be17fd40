#!/usr/bin/env sh
# TypeScript for Partner Hub's API with graphql-codegen, then `tsc --strict --noEmit` over it.
#
#   tools/codegen/run.sh file                 # from the committed schema.graphql (offline)
#   tools/codegen/run.sh live URL [TOKEN]     # from a running server's introspection
#                                             # (TOKEN, or $PARTNER_HUB_TOKEN: a bearer token)
#
# With both generated, the two outputs must be identical (doc comments aside): the file says
# what the server says.
set -eu
cd "$(dirname "$0")"
[ -d node_modules ] || npm ci --no-audit --no-fund

check() {  # $1: file|live; only this source's output, whatever the other left behind
    sed "s#GENERATED#$1#" check/usage.ts > "check/usage.$1.ts"
    printf '{"extends": "./tsconfig.json", "include": ["generated/%s/*.ts", "check/usage.%s.ts"]}\n' \
        "$1" "$1" > "tsconfig.$1.json"
    npx tsc --strict --noEmit -p "tsconfig.$1.json"
    echo "codegen ($1): generated/$1/*.ts pass tsc --strict"
}

case "${1:-file}" in
file)
    env -u PARTNER_HUB_URL npx graphql-codegen --config codegen.ts
    check file
    ;;
live)
    PARTNER_HUB_URL="${2:?usage: run.sh live URL [TOKEN]}" \
        PARTNER_HUB_TOKEN="${3:-${PARTNER_HUB_TOKEN:-}}" npx graphql-codegen --config codegen.ts
    check live
    if [ -d generated/file ]; then
        # Doc comments aside: the typescript plugin reads a scalar's description from its SDL
        # node only, so from introspection Date/DateTime/JSON come without their comment.
        diff -r -I '^ */\*\*.*\*/$' generated/file generated/live
        echo "codegen: the file and the live server generate the same TypeScript"
    fi
    ;;
*)
    echo "usage: run.sh file | run.sh live URL [TOKEN]" >&2
    exit 2
    ;;
esac
