"""``partner-hub``: the one command-line entry point (DESIGN.md section 6).

Every option also reads from the environment (``PARTNER_HUB_*``). Errors print one line and exit
non-zero; nothing is written when the input is bad.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from db.engine import (
    DatabaseUrlError,
    analyze,
    create_engine,
    session_factory,
    validate_database_url,
)
from db.enums import Role
from db.settings import Settings


class CliError(Exception):
    """A user-facing failure: printed as one line, exit status 1."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"partner-hub: error: {message} (see 'partner-hub --help')\n")
        raise SystemExit(2)


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if getattr(args, "database_url", None):
        overrides["database_url"] = args.database_url
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CliError(f"invalid setting {where}: {first['msg']}") from None
    validate_database_url(settings.database_url)
    return settings


def _sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    return Path(parsed.database)


async def _open(settings: Settings, *, create: bool) -> AsyncEngine:
    """The engine; migrated when ``create``, else the database must already exist."""
    from db.migrate import migrate

    path = _sqlite_path(settings.database_url)
    if not create and path is not None and not path.exists():
        raise CliError(f"no database at {path}: run 'partner-hub seed --demo' or 'serve' first")
    engine = create_engine(settings.database_url, pool=False)
    try:
        if create:
            await migrate(engine)
        else:
            async with engine.connect() as conn:
                tables = await conn.run_sync(lambda c: sa_inspect(c).get_table_names())
            if "admin" not in tables:
                raise CliError("the database has no Partner Hub schema: run 'partner-hub serve'")
    except BaseException:
        await engine.dispose()
        raise
    return engine


def _now(settings: Settings) -> Any:
    from db.clock import Clock

    return Clock(settings.now).now()


def _rules(settings: Settings) -> Any:
    from db.status import StatusRules

    return StatusRules(settings.expiring_soon_days, settings.inactivity_days)


# --- commands --------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> None:
    from graph.serving import serve

    settings = _settings(args)
    if args.database_url:
        os.environ["PARTNER_HUB_DATABASE_URL"] = args.database_url

    async def prepare() -> None:
        engine = await _open(settings, create=True)
        await engine.dispose()

    asyncio.run(prepare())
    host = args.host or settings.host
    port = args.port or settings.port
    print(f"Partner Hub on http://{host}:{port}/graphql (GraphiQL in a browser)", flush=True)
    status = serve("graph.asgi:app", host=host, port=port, workers=args.workers)
    if status:
        raise SystemExit(status)


async def cmd_seed(args: argparse.Namespace) -> None:
    from db.seed import SeedError

    try:
        await _seed(args)
    except SeedError as exc:
        raise CliError(str(exc)) from None


async def _seed(args: argparse.Namespace) -> None:
    from db.seed import seed_demo, seed_synthetic

    if not args.demo and args.customers is None:
        raise CliError("seed needs --demo or --customers N")
    if args.customers is not None and not 1 <= args.customers <= 10_000_000:
        raise CliError("--customers must be between 1 and 10000000")
    if not 1 <= args.partners <= 1000:
        raise CliError("--partners must be between 1 and 1000")
    settings = _settings(args)
    engine = await _open(settings, create=True)
    try:
        progress = not args.no_progress
        if args.demo:
            report = await seed_demo(
                engine, now=_now(settings), rules=_rules(settings), progress=progress
            )
            print(
                "demo data already present: nothing changed"
                if not report.created
                else f"demo data loaded: {report.partners} partners, {report.customers} customers, "
                f"{report.subscriptions} subscriptions, {report.admins} admins"
            )
        if args.customers is not None:
            report = await seed_synthetic(
                engine,
                customers=args.customers,
                partners=args.partners,
                random_seed=args.random_seed,
                now=_now(settings),
                rules=_rules(settings),
                progress=progress,
            )
            print(
                f"synthetic data loaded: {report.partners} partners, {report.customers} customers, "
                f"{report.subscriptions} subscriptions, {report.snapshots} weekly snapshots"
            )
        # The low-allocation spans at the medians of the data just loaded (speed only).
        from graph.cli_analytics import rebase

        await rebase(engine, _now(settings))
        await analyze(engine)
    finally:
        await engine.dispose()


async def _audit_token(
    session: Any, operation: str, partner_id: int, admin_id: int, label: str | None, now: Any
) -> None:
    """A token minted or revoked at the command line, in its admin's partner's audit log, by
    the system (no admin); the token itself is never logged."""
    from db.queries.audit import write_audit
    from graph.ids import to_global_id

    await write_audit(
        session,
        partner_id=partner_id,
        admin_id=None,
        operation=operation,
        object_type="admin",
        object_id=to_global_id("Admin", admin_id),
        before=None,
        after={"label": label} if operation == "issueToken" else None,
        now=now,
    )


async def cmd_token_issue(args: argparse.Namespace) -> None:
    from db.queries.admins import admin_by_email, issue_token

    settings = _settings(args)
    engine = await _open(settings, create=False)
    try:
        async with session_factory(engine)() as session:
            admin = await admin_by_email(session, email=args.email)
            if admin is None or admin.id is None:
                raise CliError(f"no admin with email {args.email!r}")
            if not admin.active:
                raise CliError(f"admin {args.email!r} is deactivated")
            now = _now(settings)
            token = await issue_token(session, admin_id=admin.id, now=now, label=args.label)
            await _audit_token(session, "issueToken", admin.partner_id, admin.id, args.label, now)
            await session.commit()
    finally:
        await engine.dispose()
    print(f"token for {admin.email} ({admin.role}); shown once, stored hashed:", file=sys.stderr)
    print(token)


async def cmd_token_revoke(args: argparse.Namespace) -> None:
    from db.queries.admins import active_token_owner, revoke_token

    settings = _settings(args)
    engine = await _open(settings, create=False)
    try:
        async with session_factory(engine)() as session:
            now = _now(settings)
            owner = await active_token_owner(session, token=args.token)
            if owner is None or not await revoke_token(session, token=args.token, now=now):
                raise CliError("no such active token")
            admin_id, partner_id = owner
            await _audit_token(session, "revokeToken", partner_id, admin_id, None, now)
            await session.commit()
    finally:
        await engine.dispose()
    print("token revoked")


async def cmd_admin_create(args: argparse.Namespace) -> None:
    """The API's ``createAdmin`` operation (same checks, same audit entry), run by the system:
    the operator at the command line, audited with no admin."""
    from db.queries.admins import partner_by_name
    from graph.admin_ops import Actor, create_admin, system_transaction
    from graph.mutations import UserErrors

    settings = _settings(args)
    engine = await _open(settings, create=False)
    given = {"email": args.email, "name": args.name, "role": args.role}
    try:
        async with session_factory(engine)() as session:
            partner = await partner_by_name(session, name=args.partner)
        if partner is None or partner.id is None:
            raise CliError(f"no partner named {args.partner!r}")
        now = _now(settings)
        actor = Actor.system(partner.id)
        async with system_transaction(engine, actor, now) as (session, audit):
            admin = await create_admin(
                session,
                audit,
                actor,
                email=args.email,
                name=args.email.strip().lower().split("@")[0] if args.name is None else args.name,
                role=args.role,
                now=now,
            )
    except UserErrors as exc:
        error = exc.errors[0]
        where = (error.field or [""])[-1]
        value = f" {where} {given[where]!r}" if where in given else ""
        raise CliError(f"{error.code}: {error.message}{value}") from None
    finally:
        await engine.dispose()
    print(f"admin {admin.email} created in {partner.name} with role {admin.role}")


def cmd_export_schema(args: argparse.Namespace) -> None:
    from graph.schema import export_sdl

    sys.stdout.write(export_sdl())


async def cmd_migrate(args: argparse.Namespace) -> None:
    engine = await _open(_settings(args), create=True)
    await engine.dispose()
    print("database is at the newest schema")


# --- parser ----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="partner-hub", description="Partner Hub: run, seed and administer.")
    parser.add_argument(
        "--database-url",
        default=None,
        help="SQLAlchemy async URL (env PARTNER_HUB_DATABASE_URL; default ./partner_hub.db)",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    serve = sub.add_parser("serve", help="run the API (migrates the database first)")
    serve.add_argument("--host", default=None, help="bind address (env PARTNER_HUB_HOST)")
    serve.add_argument("--port", type=int, default=None, help="port (env PARTNER_HUB_PORT)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes (about one per core; each with its own SO_REUSEPORT socket)",
    )
    serve.set_defaults(func=cmd_serve)

    seed = sub.add_parser("seed", help="load demo or synthetic data (idempotent demo)")
    seed.add_argument("--demo", action="store_true", help="the two demo partners")
    seed.add_argument("--customers", type=int, default=None, help="synthetic customers to add")
    seed.add_argument("--partners", type=int, default=1, help="synthetic partners to spread over")
    seed.add_argument("--random-seed", type=int, default=1, help="seed of the generator")
    seed.add_argument("--no-progress", action="store_true", help="no progress bar")
    seed.set_defaults(func=cmd_seed)

    token = sub.add_parser("token", help="API tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True, parser_class=_Parser)
    issue = token_sub.add_parser("issue", help="print a new bearer token for an admin")
    issue.add_argument("email")
    issue.add_argument("--label", default=None)
    issue.set_defaults(func=cmd_token_issue)
    revoke = token_sub.add_parser("revoke", help="revoke a token")
    revoke.add_argument("token")
    revoke.set_defaults(func=cmd_token_revoke)

    admin = sub.add_parser("admin", help="administrators")
    admin_sub = admin.add_subparsers(dest="admin_command", required=True, parser_class=_Parser)
    create = admin_sub.add_parser("create", help="create an administrator")
    create.add_argument("--partner", required=True, help="partner name, e.g. 'Acme Partners'")
    create.add_argument("--email", required=True)
    create.add_argument(
        "--role",
        required=True,
        help=f"a built-in role ({', '.join(r.value for r in Role)}) or a custom one of the partner",
    )
    create.add_argument("--name", default=None, help="1-200 characters (default: the email's user)")
    create.set_defaults(func=cmd_admin_create)

    export = sub.add_parser("export-schema", help="print the GraphQL SDL (schema.graphql)")
    export.set_defaults(func=cmd_export_schema)

    migrate = sub.add_parser("migrate", help="bring the database to the newest schema")
    migrate.set_defaults(func=cmd_migrate)
    from graph.cli_ingest import register as register_ingest  # it builds on this module

    register_ingest(sub)
    from graph.cli_persisted import add_commands as persisted_commands

    persisted_commands(sub)
    from graph.webhooks.listen import register as register_webhooks

    register_webhooks(sub)
    from graph.cli_analytics import register as register_analytics

    register_analytics(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], Awaitable[None] | None] = args.func
    try:
        result = func(args)
        if asyncio.iscoroutine(result):
            asyncio.run(result)
    except (CliError, DatabaseUrlError) as exc:
        sys.stderr.write(f"partner-hub: error: {exc}\n")
        return 1
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        sys.stderr.write(f"partner-hub: error: database: {reason}\n")
        return 1
    except OSError as exc:
        sys.stderr.write(f"partner-hub: error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
