"""metav1.Status bodies exactly as kube-apiserver writes them."""

from __future__ import annotations


class ApiError(Exception):
    """Raised by handlers; the server turns it into a Status response."""

    def __init__(self, status: dict, headers: dict[str, str] | None = None) -> None:
        super().__init__(status.get("message", ""))
        self.status = status
        self.headers = headers or {}

    @property
    def code(self) -> int:
        return int(self.status["code"])


def status(code: int, reason: str | None, message: str, details: dict | None = None) -> dict:
    body: dict = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
    }
    if reason:
        body["reason"] = reason
    if details is not None:
        body["details"] = details
    body["code"] = code
    return body


def success(details: dict | None = None) -> dict:
    body: dict = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    if details is not None:
        body["details"] = details
    return body


def _details(name: str, resource: str, group: str = "") -> dict:
    details = {"name": name}
    if group:
        details["group"] = group
    details["kind"] = resource
    return details


def not_found(resource: str, name: str, group: str = "") -> ApiError:
    qualified = f"{resource}.{group}" if group else resource
    return ApiError(
        status(404, "NotFound", f'{qualified} "{name}" not found', _details(name, resource, group))
    )


def already_exists(resource: str, name: str, group: str = "") -> ApiError:
    qualified = f"{resource}.{group}" if group else resource
    return ApiError(
        status(409, "AlreadyExists", f'{qualified} "{name}" already exists',
               _details(name, resource, group))
    )


def conflict(resource: str, name: str, group: str = "") -> ApiError:
    qualified = f"{resource}.{group}" if group else resource
    message = (
        f'Operation cannot be fulfilled on {qualified} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    return ApiError(status(409, "Conflict", message, _details(name, resource, group)))


def invalid(kind: str, name: str, causes: list[tuple[str, str]], group: str = "") -> ApiError:
    """422 with one cause per (field, message), rendered like field.ErrorList."""
    rendered = [f"{field}: {message}" for field, message in causes]
    summary = rendered[0] if len(rendered) == 1 else "[" + ", ".join(rendered) + "]"
    details = {"name": name}
    if group:
        details["group"] = group
    details["kind"] = kind
    details["causes"] = [
        {"reason": _cause_type(message), "message": message, "field": field}
        for field, message in causes
    ]
    return ApiError(status(422, "Invalid", f'{kind} "{name}" is invalid: {summary}', details))


def _cause_type(message: str) -> str:
    """field.ErrorType's cause reason, from the prefix its ErrorBody gives the message."""
    for prefix, reason in (("Required value", "FieldValueRequired"),
                           ("Unsupported value", "FieldValueNotSupported"),
                           ("Duplicate value", "FieldValueDuplicate"),
                           ("Forbidden", "FieldValueForbidden")):
        if message.startswith(prefix):
            return reason
    return "FieldValueInvalid"


def forbidden(message: str, name: str, resource: str, group: str = "") -> ApiError:
    return ApiError(status(403, "Forbidden", message, _details(name, resource, group)))


def bad_request(message: str) -> ApiError:
    return ApiError(status(400, "BadRequest", message))


def unauthorized() -> ApiError:
    return ApiError(status(401, "Unauthorized", "Unauthorized"))


def method_not_allowed() -> ApiError:
    return ApiError(status(405, "MethodNotAllowed", "the server does not allow this method on the requested resource"))


def unsupported_media_type() -> ApiError:
    message = (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, "
        "application/strategic-merge-patch+json, application/apply-patch+yaml"
    )
    return ApiError(status(415, "UnsupportedMediaType", message))


def unsupported_body(detail: str) -> ApiError:
    """415 for a create or update body the lab cannot read (a protobuf message it does not decode)."""
    message = ("the body of the request was in an unknown format - accepted media types include: "
               f"application/json, application/yaml ({detail})")
    return ApiError(status(415, "UnsupportedMediaType", message))


def too_many_requests(message: str, retry_after: int, causes: list[dict] | None = None) -> ApiError:
    details: dict = {}
    if causes:
        details["causes"] = causes
    if retry_after:
        details["retryAfterSeconds"] = retry_after
    headers = {"Retry-After": str(retry_after)} if retry_after else {}
    return ApiError(status(429, "TooManyRequests", message, details), headers)


def path_not_found() -> ApiError:
    return ApiError(status(404, "NotFound", "the server could not find the requested resource",
                           {}))


class StorageUnavailable(ApiError):
    """The API's etcd did not answer (stopped, restarting): nothing was written."""


def storage_unavailable(detail: str) -> StorageUnavailable:
    return StorageUnavailable(status(500, "InternalError", f"Internal error occurred: {detail}",
                                     {"causes": [{"message": detail}]}))
