"""The schema generator of every view of the API: drf-spectacular's AutoSchema, plus the
error answers each operation can give, so that the schema lists every status code the API
sends (SPEC 9.2; checked over HTTP by schemathesis in .ci/schemathesis.sh)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers
from rest_framework.permissions import AllowAny


class ErrorSerializer(serializers.Serializer):
    """``{"detail": "..."}``: why a request was refused."""

    detail = serializers.CharField()


ERROR_DESCRIPTIONS = {
    "400": 'Invalid input: `{"field": ["message", ...]}` for the fields at fault '
    "(`detail` or `non_field_errors` for the request as a whole).",
    "401": "Not authenticated (depending on the authentication classes, 403 instead).",
    "403": "Not allowed: `API_PERMISSION_CLASSES` (staff users by default).",
    "404": "No such object.",
}


class JobsAutoSchema(AutoSchema):
    """Adds to each operation the error answers DRF and the views give, where the view's
    own annotations do not already name them: 400 where there is input (a body or a query
    parameter), 401 and 403 where the API's permissions apply, 404 where the path names an
    object."""

    def _resolve_path_parameters(self, variables):
        # Jobs and batches take any segment as their id ("[^/]+", so that "1.5" gets the
        # view's JSON 404, not Django's HTML one); type it from the model (an integer), as
        # drf-spectacular does for DRF's default pattern.
        original = self.path_regex
        self.path_regex = original.replace("(?P<pk>[^/]+)", "(?P<pk>[^/.]+)")
        try:
            return super()._resolve_path_parameters(variables)
        finally:
            self.path_regex = original

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        responses: dict[str, Any] = operation.setdefault("responses", {})
        places = {parameter.get("in") for parameter in operation.get("parameters", [])}
        codes = []
        if "requestBody" in operation or "query" in places:
            codes.append("400")
        if not all(isinstance(p, AllowAny) for p in self.view.get_permissions()):
            codes += ["401", "403"]
        if "path" in places:
            codes.append("404")
        for code in codes:
            if code not in responses or "content" not in responses[code]:
                responses[code] = self._error_response(code)
        return operation

    def _error_response(self, code: str) -> dict[str, Any]:
        if code == "400":
            body: dict[str, Any] = {
                "type": "object",
                "additionalProperties": {},
                "example": {"task": ["No registered task named 'reports.nope'."]},
            }
        else:
            body = self.resolve_serializer(ErrorSerializer, "response").ref
        return {
            "description": ERROR_DESCRIPTIONS[code],
            "content": {"application/json": {"schema": body}},
        }
