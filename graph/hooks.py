"""Strawberry's extension hooks, looked up once per extension class instead of every request.

For each request and each of its four stages (operation, parsing, validation, execution)
Strawberry's runner asked every extension for its hook: an attribute lookup, an ``inspect`` test
of the function's kind and, for each hook found, a new ``contextmanager`` decorator around a
bound method (``functools.update_wrapper`` copying its attributes): 24 lookups and 7 decorators
a request whatever the query (issue 17). Which hook a class has and what kind it is cannot
change while the process runs: the decorated function is made once per (class, stage) here and
called with the request's extension, which makes the same context manager of the same
generator. Anything else (a hook that is a plain function) keeps Strawberry's own lookup.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable
from functools import partial
from typing import Any

from strawberry.extensions import SchemaExtension
from strawberry.extensions.context import (
    ExecutingContextManager,
    ExtensionContextManagerBase,
    OperationContextManager,
    ParsingContextManager,
    ValidationContextManager,
    WrappedHook,
)
from strawberry.extensions.runner import SchemaExtensionsRunner

NO_HOOK = "none"
OTHER = "other"


Found = tuple[Callable[..., Any], bool] | str
_FOUND: dict[tuple[type[SchemaExtension], str], Found] = {}


def _hook_of(kind: type[SchemaExtension], stage: str) -> Found:
    """The context-manager factory of ``kind``'s hook for ``stage`` and whether it is async;
    ``NO_HOOK`` when the class keeps ``SchemaExtension``'s, ``OTHER`` for Strawberry to wrap."""
    found = _FOUND.get((kind, stage))
    if found is None:
        hook = getattr(kind, stage)
        if hook is getattr(SchemaExtension, stage):
            found = NO_HOOK
        elif inspect.isgeneratorfunction(hook):
            found = contextlib.contextmanager(hook), False
        elif inspect.isasyncgenfunction(hook):
            found = contextlib.asynccontextmanager(hook), True
        else:
            found = OTHER
        _FOUND[(kind, stage)] = found
    return found


class _CachedHooks(ExtensionContextManagerBase):
    __slots__ = ()

    def get_hook(self, extension: SchemaExtension) -> WrappedHook | None:
        found = _hook_of(type(extension), self.HOOK_NAME)
        if found == NO_HOOK:
            return None
        if isinstance(found, str):
            return super().get_hook(extension)
        factory, is_async = found
        return WrappedHook(extension=extension, hook=partial(factory, extension), is_async=is_async)


class _Operation(_CachedHooks, OperationContextManager):
    __slots__ = ()


class _Parsing(_CachedHooks, ParsingContextManager):
    __slots__ = ()


class _Validation(_CachedHooks, ValidationContextManager):
    __slots__ = ()


class _Executing(_CachedHooks, ExecutingContextManager):
    __slots__ = ()


class CachedHooksRunner(SchemaExtensionsRunner):
    """Strawberry's runner with the stages' hooks found through ``_hook_of``."""

    def operation(self) -> OperationContextManager:
        return _Operation(self.extensions)

    def parsing(self) -> ParsingContextManager:
        return _Parsing(self.extensions)

    def validation(self) -> ValidationContextManager:
        return _Validation(self.extensions)

    def executing(self) -> ExecutingContextManager:
        return _Executing(self.extensions)
