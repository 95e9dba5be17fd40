"""One operation from text to result: Strawberry's ``Schema.execute`` without its hook machinery.

Every request ran through Strawberry's extension runner: for each of its four stages a context
manager built, an exit stack entered and left and, for each hook, a generator made into another
context manager; with the extension's own object, the middleware manager and the result handling
that was about a tenth of a customer detail's CPU in the worker (issue 17's profile, py-spy on
the direct ASGI path), for one extension (``graph.extensions.Guards``) whose steps are plain
method calls. When the schema's only extension is ``Guards`` (it is, ``graph.schema``), ``execute``
below runs its steps itself, in Strawberry's order and with Strawberry's handling around them:

- the operation begins (the limit rules join the validation rules);
- a missing query, an operation that cannot be chosen or is not allowed raise, as in Strawberry
  (the view turns them into refusals);
- parsing (``Guards.parse``: the bounded document cache), validation (``Guards.validate``) and
  Strawberry's own validation when no step validated; their errors end the operation, without
  data;
- execution begins (``Guards.begin_execution``: bounds, the cost checked and spent, the
  request marked executed), graphql-core executes unless a step answered already, execution
  ends (the actual cost), the operation ends (uncoded errors masked);
- an exception from any step after the operation began is the result's one error, unmasked
  (the view masks what has no code), with the extensions' results, as Strawberry does.

Any other configuration (more extensions, directives, incremental delivery) takes Strawberry's
own ``execute``; ``tests/test_operation.py`` runs documents through both and compares.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import Any, cast

from graphql import ExecutionResult as GraphQLExecutionResult
from graphql import GraphQLError, execute
from graphql.execution import MiddlewareManager
from strawberry.exceptions import MissingQueryError
from strawberry.execution.is_awaitable import optimized_is_awaitable
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.schema.schema import (
    DEFAULT_ALLOWED_OPERATION_TYPES,
    _coerce_error,
    _parse_operation_document,
    _run_validation,
)
from strawberry.types import ExecutionResult
from strawberry.types.execution import ExecutionContext, PreExecutionError
from strawberry.types.graphql import OperationType
from strawberry.utils.await_maybe import await_maybe

from graph import errors
from graph.extensions import Guards


class Schema(errors.Schema):
    """``graph.errors.Schema`` whose ``execute`` runs ``Guards``' steps directly."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        factories = self.extensions
        lean = (
            len(factories) == 1
            and isinstance(factories[0], partial)
            and factories[0].func is Guards
            and not self.directives
            and not self.config.enable_experimental_incremental_execution
        )
        self._guards = factories[0] if lean else None
        # No extension of ours resolves fields: graphql-core's manager without middleware
        # hands every resolver back as it is, and holds nothing of a request.
        self._middleware = MiddlewareManager()
        self._executor: Any = self.execution_context_class
        self._is_awaitable: Any = optimized_is_awaitable

    async def execute(  # Strawberry's signature
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        if self._guards is None:
            return await super().execute(
                query,
                variable_values,
                context_value,
                root_value,
                operation_name,
                allowed_operation_types,
                operation_extensions,
            )
        ec = self._create_execution_context(
            query=query,
            allowed_operation_types=(
                DEFAULT_ALLOWED_OPERATION_TYPES
                if allowed_operation_types is None
                else allowed_operation_types
            ),
            variable_values=variable_values,
            context_value=context_value,
            root_value=root_value,
            operation_name=operation_name,
            operation_extensions=operation_extensions,
        )
        guards = cast(Guards, self._guards())
        guards.execution_context = ec
        try:
            guards.begin_operation()
            failed = self._prepare(ec, guards)
            if failed is not None:
                answer = self._finish(ec, failed, guards)
                guards.end_operation()
                return answer
            result = await self._run(ec, guards, operation_extensions)
            guards.end_operation()
        except (MissingQueryError, CannotGetOperationTypeError, InvalidOperationTypeError):
            raise
        except Exception as exc:
            error = PreExecutionError(data=None, errors=[_coerce_error(exc)])
            return self._finish(ec, error, guards)
        return self._finish(ec, result, guards, skip_process_errors=True)

    def _prepare(self, ec: ExecutionContext, guards: Guards) -> PreExecutionError | None:
        """Strawberry's ``_prepare_operation_async`` with ``Guards``' parsing and validation."""
        if not ec.query and ec.graphql_document is None:
            raise MissingQueryError
        guards.parse()
        try:
            _parse_operation_document(ec)
        except GraphQLError as error:
            ec.pre_execution_errors = [error]
            return PreExecutionError(data=None, errors=[error])
        except Exception as error:
            coerced = GraphQLError(str(error), original_error=error)
            ec.pre_execution_errors = [coerced]
            return PreExecutionError(data=None, errors=[coerced])
        try:
            operation_type = ec.operation_type
        except RuntimeError as error:
            raise CannotGetOperationTypeError(ec.operation_name) from error
        if operation_type not in ec.allowed_operations:
            raise InvalidOperationTypeError(operation_type)
        guards.validate()
        _run_validation(ec)
        if ec.pre_execution_errors:
            return PreExecutionError(data=None, errors=ec.pre_execution_errors)
        return None

    async def _run(
        self, ec: ExecutionContext, guards: Guards, operation_extensions: dict[str, Any] | None
    ) -> Any:
        """Strawberry's ``_execute_operation`` with ``Guards``' execution steps around it."""
        await guards.begin_execution()
        result: Any
        if not ec.result:
            assert ec.graphql_document is not None
            result = await await_maybe(
                execute(
                    self._schema,
                    ec.graphql_document,
                    root_value=ec.root_value,
                    middleware=self._middleware,
                    variable_values=ec.variables,
                    operation_name=ec.operation_name,
                    context_value=ec.context,
                    executor_class=self._executor,
                    is_awaitable=self._is_awaitable,
                    operation_extensions=operation_extensions,
                )
            )
            ec.result = result
        else:
            result = ec.result
        if isinstance(result, GraphQLExecutionResult) and result.errors:
            ec.pre_execution_errors = result.errors
            self._process_errors(result.errors, ec)
        guards.end_execution()
        return result

    def _finish(
        self,
        ec: ExecutionContext,
        result: Any,
        guards: Guards,
        *,
        skip_process_errors: bool = False,
    ) -> ExecutionResult:
        """Strawberry's ``_handle_execution_result``: the result with the extensions' results."""
        if result.errors:
            ec.pre_execution_errors = result.errors
            if not skip_process_errors:
                self._process_errors(result.errors, ec)
        if isinstance(result, GraphQLExecutionResult):
            result = ExecutionResult(data=result.data, errors=result.errors)
        extensions = dict(guards.get_results())
        extensions.update(ec.extensions_results)
        result.extensions = extensions
        ec.result = result
        answer: ExecutionResult = result
        return answer
