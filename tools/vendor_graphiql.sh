#!/usr/bin/env bash
# Re-vendors GraphiQL's browser assets into graph/static/graphiql/ from the npm registry, with
# the licences of everything their bundles contain. The files are committed: serving GraphiQL
# needs neither npm nor any network, and a version bump is one edit here and one run.
# Usage: tools/vendor_graphiql.sh   (needs npm and node; writes only graph/static/graphiql/)
set -euo pipefail

REACT=18.3.1          # the last React with UMD builds (19 dropped them)
GRAPHIQL=3.9.0        # the last GraphiQL with a UMD bundle that runs on React 18
EXPLORER=3.2.6        # @graphiql/plugin-explorer for @graphiql/react 0.29 (graphiql 3.9)
GRAPHQL=16.11.0       # peer dependency only: graphiql's bundle carries its own copy

root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/graph/static/graphiql"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cd "$work"
npm init -y >/dev/null
npm install --no-audit --no-fund --ignore-scripts --loglevel=error \
  "react@$REACT" "react-dom@$REACT" "graphiql@$GRAPHIQL" \
  "@graphiql/plugin-explorer@$EXPLORER" "graphql@$GRAPHQL" \
  @babel/runtime graphql-ws @radix-ui/react-use-escape-keydown  # licence texts only
nm="$work/node_modules"

rm -rf "$dest/vendor" "$dest/licenses"
mkdir -p "$dest/vendor" "$dest/licenses"
cp "$nm/react/umd/react.production.min.js" "$dest/vendor/react-$REACT.production.min.js"
cp "$nm/react-dom/umd/react-dom.production.min.js" "$dest/vendor/react-dom-$REACT.production.min.js"
cp "$nm/graphiql/graphiql.min.js" "$dest/vendor/graphiql-$GRAPHIQL.min.js"
cp "$nm/graphiql/graphiql.min.css" "$dest/vendor/graphiql-$GRAPHIQL.min.css"
cp "$nm/@graphiql/plugin-explorer/dist/index.umd.js" "$dest/vendor/plugin-explorer-$EXPLORER.umd.js"
cp "$nm/@graphiql/plugin-explorer/dist/style.css" "$dest/vendor/plugin-explorer-$EXPLORER.css"
# The bundles name source maps that are not shipped: a browser asks for one only with its
# developer tools open. The files stay byte for byte as published.

cp "$nm/react/LICENSE" "$dest/licenses/react.LICENSE.txt"
cp "$nm/react-dom/LICENSE" "$dest/licenses/react-dom.LICENSE.txt"
cp "$nm/graphiql/LICENSE" "$dest/licenses/graphiql.LICENSE.txt"
# @graphiql/plugin-explorer ships no LICENSE file: it is MIT under the GraphiQL monorepo's
# licence (package.json "license": "MIT"); its bundle includes graphiql-explorer (MIT).
cp "$nm/graphiql/LICENSE" "$dest/licenses/graphiql-plugin-explorer.LICENSE.txt"
cp "$(dirname "$(find "$nm" -path '*/graphiql-explorer/package.json' | head -1)")/LICENSE" \
  "$dest/licenses/graphiql-explorer.LICENSE.txt"

# Every package whose code the bundles contain (graphiql's source map lists them), with its
# licence text: THIRD_PARTY_LICENSES.txt.
node - "$nm" "$dest/licenses/THIRD_PARTY_LICENSES.txt" <<'JS'
const fs = require("fs");
const path = require("path");
const [nm, out] = process.argv.slice(2);
const monorepo = {
  "codemirror-graphql": "codemirror-graphql", "graphiql-react": "@graphiql/react",
  "graphiql-toolkit": "@graphiql/toolkit", "graphql-language-service": "graphql-language-service",
};
const names = new Set(["react", "react-dom", "graphiql", "@graphiql/plugin-explorer", "graphiql-explorer"]);
const map = JSON.parse(fs.readFileSync(path.join(nm, "graphiql/graphiql.min.js.map"), "utf8"));
for (const source of map.sources) {
  const hits = source.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/g);
  if (hits) names.add(hits[hits.length - 1].replace("node_modules/", ""));
  else {
    const m = source.match(/^\.\.\/\.\.\/([^/]+)\//);
    if (m && monorepo[m[1]]) names.add(monorepo[m[1]]);
  }
}
function find(name) {
  const found = [];
  (function walk(dir, depth) {
    if (depth > 6 || !fs.existsSync(dir)) return;
    const direct = path.join(dir, name, "package.json");
    if (fs.existsSync(direct)) found.push(path.dirname(direct));
    for (const entry of fs.readdirSync(dir)) {
      const sub = path.join(dir, entry);
      if (entry.startsWith("@")) { for (const e of fs.readdirSync(sub)) walk(path.join(sub, e, "node_modules"), depth + 1); }
      else walk(path.join(sub, "node_modules"), depth + 1);
    }
  })(nm, 0);
  return found[0];
}
const parts = ["Licences of the code in graph/static/graphiql/vendor/ (bundled packages included).\n"];
for (const name of [...names].sort()) {
  const dir = find(name);
  if (!dir) throw new Error("no package for " + name);
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"));
  const file = fs.readdirSync(dir).find((f) => /^(licen[cs]e|copying)/i.test(f));
  const text = file ? fs.readFileSync(path.join(dir, file), "utf8").trim()
    : name.startsWith("@graphiql/") ? "(no licence file in the package: the GraphiQL monorepo's MIT licence, as graphiql's below)"
    : "(no licence file in the package)";
  parts.push("=".repeat(78) + `\n${name} (${pkg.license || "see text"})\n` + "=".repeat(78) + "\n" + text + "\n");
}
fs.writeFileSync(out, parts.join("\n"));
JS

{
  echo "Vendored from the npm registry by tools/vendor_graphiql.sh; sha256 of each file."
  echo "react@$REACT react-dom@$REACT graphiql@$GRAPHIQL @graphiql/plugin-explorer@$EXPLORER"
  (cd "$dest/vendor" && sha256sum -- *)
} > "$dest/vendor/VERSIONS.txt"
echo "vendored into $dest"
