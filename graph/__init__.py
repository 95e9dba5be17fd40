"""GraphQL API of Partner Hub: schema assembly, Starlette app, context and extensions."""
