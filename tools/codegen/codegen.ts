// graphql-codegen for Partner Hub: TypeScript types for the sample operations, generated either
// from the committed schema.graphql (default) or from a running server's introspection
// (PARTNER_HUB_URL set; PARTNER_HUB_TOKEN is sent as a bearer token, since introspection needs
// an authenticated admin). The output goes to generated/<source>/{schema,operations}.ts; run.sh then
// type-checks it with `tsc --strict --noEmit`.
import type { CodegenConfig } from "@graphql-codegen/cli";

const url = process.env.PARTNER_HUB_URL;
const token = process.env.PARTNER_HUB_TOKEN ?? "";
if (url && !token) {
  throw new Error("PARTNER_HUB_TOKEN is required with PARTNER_HUB_URL (introspection needs a signed-in admin)");
}

const schema: CodegenConfig["schema"] = url
  ? [{ [url]: { headers: { Authorization: `Bearer ${token}` } } }]
  : "../../schema.graphql";

// Mapped scalars: every custom scalar has one (strictScalars fails the run on a new, unmapped
// one rather than typing it `any`).
const scalarConfig = {
  strictScalars: true,
  scalars: {
    Date: "string", // ISO 8601 calendar date, YYYY-MM-DD (the schema's specifiedByURL)
    DateTime: "string", // RFC 3339 date and time with offset (the schema's specifiedByURL)
    JSON: "unknown",
  },
  enumsAsTypes: true,
  useTypeImports: true,
};
const out = `generated/${url ? "live" : "file"}`;

const config: CodegenConfig = {
  schema,
  documents: ["operations/*.graphql"],
  overwrite: true,
  errorsOnly: true,
  generates: {
    // Every type of the schema (what a server mock or a schema-first client needs).
    [`${out}/schema.ts`]: { plugins: ["typescript"], config: scalarConfig },
    // The sample operations' results and variables, with the enums and inputs they use.
    [`${out}/operations.ts`]: { plugins: ["typescript-operations"], config: scalarConfig },
  },
};

export default config;
