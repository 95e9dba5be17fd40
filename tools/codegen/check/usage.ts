// Compiled with the generated types under `tsc --strict`: a front end's use of them type-checks,
// and the scalars come out as strings (a Date/DateTime typed `unknown` or `any` would fail here).
import type {
  CreateTagMutationVariables,
  CustomersPageQuery,
  NodeByIdQuery,
  ViewerQuery,
} from "../generated/GENERATED/operations";
import type { Customer, Scalars } from "../generated/GENERATED/schema";

export function newestCustomer(page: CustomersPageQuery): string | null {
  const created: string[] = page.customers.nodes.map((c) => c.createdAt);
  return created.sort().at(-1) ?? null;
}

export function lastSignIn(result: NodeByIdQuery): string | null {
  const node = result.node;
  if (node && "lastAdminSignInAt" in node) {
    const at: string | null | undefined = node.lastAdminSignInAt;
    return at ?? null;
  }
  return null;
}

export function greeting(result: ViewerQuery): string {
  return `${result.viewer.name} <${result.viewer.email}>`;
}

export const tagInput: CreateTagMutationVariables = { input: { name: "priority" } };

// The schema types map the custom scalars the same way.
export const when: Scalars["DateTime"]["output"] = "2026-12-06T08:00:00Z";
export function created(customer: Pick<Customer, "createdAt">): string {
  return customer.createdAt;
}
