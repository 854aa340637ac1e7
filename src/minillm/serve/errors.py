"""Every error the server sends is one JSON shape, naming the request field at fault.

    {"error": {"message": "temperature: Input should be greater than or equal to 0",
               "type": "invalid_request_error", "field": "temperature", "param": "temperature"}}

Design choices:
- The shape is OpenAI's (``message``, ``type``, ``param``), so the ``openai`` client raises its usual
  ``BadRequestError`` with our message; ``field`` holds the same name as ``param`` because that is the
  key this project's other tools read.
- FastAPI's validation errors (422 with a list of pydantic errors) become a 400 about the first problem:
  one line a person can act on. The exception is a size limit (too many messages, a text too long:
  pydantic's ``too_long``/``string_too_long``), which stays a 422: the request is well formed but larger
  than this server accepts. Routes raise ``ApiError`` for the checks pydantic cannot express.
- A missing or wrong API key is a 401 whose type is ``authentication_error``, so the ``openai`` client
  raises its ``AuthenticationError``.
- Unknown routes and methods get the same shape (404/405), and any unexpected exception a bare
  ``{"error": {"message": "internal error"}}`` 500: the traceback goes to the server log, never to the client.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

_TYPES = {401: "authentication_error", 404: "not_found_error", 405: "invalid_request_error",
          409: "conflict_error", 413: "request_too_large", 500: "server_error"}
SIZE_LIMIT_ERRORS = frozenset({"too_long", "string_too_long"})  # pydantic error types answered with 422


class ApiError(Exception):
    """A request the server refuses: HTTP status, a one-line message, and the request field at fault."""

    def __init__(self, status: int, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


def error_body(status: int, message: str, field: str | None = None) -> dict:
    return {"error": {"message": message, "type": _TYPES.get(status, "invalid_request_error"),
                      "field": field, "param": field}}


def error_response(status: int, message: str, field: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message, field), status_code=status, headers=headers)


def validation_status(error: dict) -> int:
    """422 for a size limit exceeded (the request is valid but too large for this server), else 400."""
    return 422 if error.get("type") in SIZE_LIMIT_ERRORS else 400


def describe_validation_error(error: dict) -> tuple[str, str]:
    """(field, message) for one pydantic error as FastAPI reports it (loc starts with "body")."""
    loc = [str(part) for part in error.get("loc", ())[1:]]
    kind = error.get("type", "")
    if kind == "json_invalid":
        reason = (error.get("ctx") or {}).get("error", "")
        return "body", f"body: not valid JSON ({reason})" if reason else "body: not valid JSON"
    if not loc:  # no body, or one that is not a JSON object (a list, or not sent as application/json)
        return "body", "body: must be a JSON object, sent with Content-Type: application/json"
    field = ".".join(loc)
    if kind == "extra_forbidden":
        return field, f"{field}: unknown field"
    return field, f"{field}: {error.get('msg', 'invalid value')}"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.field)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        field, message = describe_validation_error(first)
        return error_response(validation_status(first), message, field)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        message = {404: f"no such route: {request.method} {request.url.path}",
                   405: f"method {request.method} not allowed on {request.url.path}"}.get(exc.status_code)
        return JSONResponse(error_body(exc.status_code, message or str(exc.detail)),
                            status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        return error_response(500, "internal error")

