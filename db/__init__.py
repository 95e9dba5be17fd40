"""Data layer of Partner Hub: tables, engine, queries, loaders' batch functions and seeds.

Nothing in this package knows about GraphQL.
"""
