"""``partner-hub persisted register FILE...`` and ``persisted list`` (graph/persisted.py).

A FILE is one of:

- a GraphQL document (``.graphql``, ``.gql`` or any other name): the whole file is one document,
  registered under the SHA-256 of its text — what a client hashes and sends;
- an Apollo persisted query manifest (``.json`` with ``"operations": [{"id", "body", "name"}]``,
  as ``generate-persisted-query-manifest`` writes it);
- a map of hash to document (``.json`` object, as graphql-codegen's client preset and Relay write
  ``persisted-documents.json``).

Every document is checked as the server would run it (size, tokens, syntax, validation against
this schema) and every given hash must be its document's SHA-256; one bad document writes
nothing. Registering again is harmless (documents are content-addressed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson
from graphql import GraphQLError, OperationDefinitionNode, validate

from db.engine import session_factory
from db.queries.persisted import Registration, register, registered
from graph.cli import CliError, _now, _open, _Parser, _settings
from graph.documents import DocumentCache
from graph.persisted import sha256_hex


def add_commands(subparsers: Any) -> None:
    """Add ``persisted register`` and ``persisted list`` to the ``partner-hub`` parser."""
    persisted = subparsers.add_parser("persisted", help="registered persisted queries")
    sub = persisted.add_subparsers(dest="persisted_command", required=True, parser_class=_Parser)
    add = sub.add_parser(
        "register",
        help="register documents (GraphQL files, Apollo manifests, hash-to-document JSON maps)",
        description="Register the documents that PARTNER_HUB_PERSISTED_QUERIES=registered "
        "allows (and that any mode runs by hash). All or nothing.",
    )
    add.add_argument("files", nargs="+", metavar="FILE")
    add.set_defaults(func=cmd_persisted_register)
    listing = sub.add_parser("list", help="print the registered documents' hashes and names")
    listing.set_defaults(func=cmd_persisted_list)


def _read(path: Path) -> str:
    if not path.is_file():
        raise CliError(f"no such file: {path}")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise CliError(f"{path}: not UTF-8 text") from None


def _entries(path: Path) -> list[tuple[str | None, str, str | None]]:
    """(given hash, document, given name) of every document in ``path``."""
    text = _read(path)
    if path.suffix.lower() != ".json":
        return [(None, text, None)]
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise CliError(f"{path}: not valid JSON ({exc})") from None
    if isinstance(data, dict) and isinstance(data.get("operations"), list):
        found = []
        for index, operation in enumerate(data["operations"]):
            if not isinstance(operation, dict) or not isinstance(operation.get("body"), str):
                raise CliError(f"{path}: operations[{index}] has no string `body`")
            given, name = operation.get("id"), operation.get("name")
            if given is not None and not isinstance(given, str):
                raise CliError(f"{path}: operations[{index}].id must be a string")
            found.append((given, operation["body"], name if isinstance(name, str) else None))
        return found
    if isinstance(data, dict) and all(isinstance(v, str) for v in data.values()):
        return [(str(k), v, None) for k, v in data.items()]
    raise CliError(
        f"{path}: expected an Apollo manifest ({{'operations': [...]}}) or a hash-to-document map"
    )


def check_documents(files: list[str], settings: Any) -> list[Registration]:
    """The registrations of ``files``, every document checked; ``CliError`` at the first bad."""
    from graph.schema import build_schema

    schema = build_schema(settings)._schema
    cache = DocumentCache(
        max_chars=settings.max_document_chars,
        max_tokens=settings.max_tokens,
        parsed=16,
        validated=16,
        max_bytes=8 * 2**20,
    )
    found: dict[str, Registration] = {}
    for name in files:
        path = Path(name)
        for given, document, operation_name in _entries(path):
            if "\x00" in document:
                raise CliError(f"{path}: a document contains a NUL character")
            sha256 = sha256_hex(document)
            if given is not None and given.lower() != sha256:
                raise CliError(
                    f"{path}: PERSISTED_QUERY_HASH_MISMATCH: {given} is not the SHA-256 of its "
                    f"document ({sha256})"
                )
            try:
                parsed = cache.parse(document)
            except GraphQLError as exc:
                raise CliError(f"{path}: {exc.message}") from None
            errors = validate(schema, parsed)
            if errors:
                raise CliError(f"{path}: {errors[0].message}")
            operations = [
                d for d in parsed.definitions if isinstance(d, OperationDefinitionNode) and d.name
            ]
            if operation_name is None and len(operations) == 1 and operations[0].name:
                operation_name = operations[0].name.value
            found.setdefault(sha256, Registration(sha256, document, operation_name))
    return list(found.values())


async def cmd_persisted_register(args: argparse.Namespace) -> None:
    settings = _settings(args)
    documents = check_documents(args.files, settings)
    engine = await _open(settings, create=False)
    try:
        async with session_factory(engine)() as session:
            new = await register(session, documents, _now(settings))
            await session.commit()
    finally:
        await engine.dispose()
    for document in documents:
        mark = "new" if document.sha256 in new else "known"
        print(f"{document.sha256}  {mark:5}  {document.operation_name or '-'}")
    print(f"registered {len(documents)} documents ({len(new)} new)", file=sys.stderr)


async def cmd_persisted_list(args: argparse.Namespace) -> None:
    settings = _settings(args)
    engine = await _open(settings, create=False)
    try:
        async with session_factory(engine)() as session:
            rows = await registered(session)
    finally:
        await engine.dispose()
    for sha256, name, at in rows:
        print(f"{sha256}  {at.isoformat()}  {name or '-'}")
