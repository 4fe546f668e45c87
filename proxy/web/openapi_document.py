"""Builds the OpenAPI 3.1 document shipped as proxy/openapi.json.

Regenerate the file after changing this module: ``python -m proxy.web.openapi_document``.
A test fails while the file and this builder disagree.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from proxy.core.free_time import (
    DEFAULT_INTERVAL_MINUTES,
    DEFAULT_RESULTS,
    FORMATS,
    MAX_BUFFER_MINUTES,
    MAX_MINUTES,
    MAX_OPEN_HOURS,
    MAX_PARTICIPANTS,
    MAX_RESULTS,
    MAX_WINDOW_DAYS,
    WEEKDAYS,
)
from proxy.core.model import ErrorCode, Status

EXAMPLE_ADDRESS = "adele.vance@contoso.example"
_STATUSES = [status.value for status in Status]
_ERROR_CODES = [code.value for code in ErrorCode]
_DATE_TIME = {"type": "string", "format": "date-time", "examples": ["2026-03-16T09:00:00Z"]}
_ADDRESS = {"type": "string", "format": "email", "maxLength": 254}
_JSON = "application/json"
_PROBLEM = "application/problem+json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _body(schema: dict[str, Any], media: str = _JSON, **extra: Any) -> dict[str, Any]:
    return {"content": {media: {"schema": schema, **extra}}}


def _errors(schema: str, media: str, statuses: dict[int, str]) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, description in statuses.items():
        response: dict[str, Any] = {"description": description, **_body(_ref(schema), media)}
        if status == 401:
            response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
        if status == 405:
            response["headers"] = {"Allow": {"schema": {"type": "string"}}}
        responses[str(status)] = response
    return responses


_COMMON_ERRORS = {
    400: (
        "Invalid request; the message says what is wrong (request_too_costly: over "
        "limits.max_request_cost)."
    ),
    401: "No API key, or not a valid one.",
    403: (
        "The key may not query one of the addresses (schedule_not_allowed), or may only ask "
        "for free slots (slots_only); nothing was fetched."
    ),
    404: "No such path.",
    405: "Method not allowed here.",
    408: "The request body did not arrive within server.body_timeout_seconds.",
    413: "Request body too large.",
    415: "The body is not application/json.",
    429: "Over the API key's rate_per_minute; Retry-After says when to try again.",
    500: "A bug; details go to the proxy's log only.",
    502: "Microsoft Graph (or the token request) failed for the whole request.",
    504: "Every Graph call of the request timed out.",
}


def _schemas() -> dict[str, Any]:
    item = {
        "type": "object",
        "description": "One calendar item, minimized: nothing but status, start and end.",
        "required": ["status", "start", "end"],
        "additionalProperties": False,
        "properties": {"status": {"enum": _STATUSES}, "start": _DATE_TIME, "end": _DATE_TIME},
    }
    date_time_time_zone = {
        "type": "object",
        "required": ["dateTime", "timeZone"],
        "properties": {
            "dateTime": {"type": "string", "examples": ["2026-03-16T09:00:00.0000000"]},
            "timeZone": {"type": "string", "examples": ["UTC", "Pacific Standard Time"]},
        },
    }
    return {
        "Problem": {
            "type": "object",
            "description": "RFC 9457 problem document; every field written by the proxy.",
            "required": ["type", "title", "status", "detail", "code"],
            "additionalProperties": False,
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
                "code": {"type": "string"},
            },
        },
        "AvailabilityRequest": {
            "type": "object",
            "required": ["schedules", "start", "end"],
            "additionalProperties": False,
            "properties": {
                "schedules": {"type": "array", "minItems": 1, "items": _ADDRESS},
                "start": _DATE_TIME,
                "end": _DATE_TIME,
            },
            "examples": [
                {
                    "schedules": [EXAMPLE_ADDRESS],
                    "start": "2026-03-16T00:00:00Z",
                    "end": "2026-03-17T00:00:00Z",
                }
            ],
        },
        "Item": item,
        "AvailabilityResponse": {
            "type": "object",
            "required": ["start", "end", "schedules"],
            "additionalProperties": False,
            "properties": {
                "start": _DATE_TIME,
                "end": _DATE_TIME,
                "schedules": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["schedule", "items", "error", "stale"],
                        "additionalProperties": False,
                        "properties": {
                            "schedule": {"type": "string"},
                            "items": {"type": "array", "items": _ref("Item")},
                            "stale": {
                                "type": "boolean",
                                "description": "True when served from the cache past its TTL "
                                "because Graph failed (serve-stale).",
                            },
                            "error": {
                                "oneOf": [
                                    {"type": "null"},
                                    {
                                        "type": "object",
                                        "required": ["code"],
                                        "additionalProperties": False,
                                        "properties": {"code": {"enum": _ERROR_CODES}},
                                    },
                                ]
                            },
                        },
                    },
                },
            },
        },
        **_slot_schemas(),
        "Health": {
            "type": "object",
            "required": ["status"],
            "properties": {"status": {"const": "ok"}},
        },
        "Readiness": {
            "type": "object",
            "description": (
                "Anyone reads the checks as fixed words and connection counts; with the admin "
                "key, also why a check failed (a code from a fixed list) and which connections "
                "need attention."
            ),
            "required": ["status", "checks"],
            "properties": {
                "status": {"enum": ["ready", "not_ready"]},
                "checks": {
                    "type": "object",
                    "description": (
                        "With [cluster] set, also cluster: ok, or degraded (Redis unreachable, "
                        "local limits), which never makes the replica not ready."
                    ),
                    "additionalProperties": {"enum": ["ok", "failed", "unreachable", "degraded"]},
                },
                "problems": {"type": "object", "additionalProperties": {"type": "string"}},
                "connections": {
                    "type": "object",
                    "additionalProperties": {"type": "integer", "minimum": 0},
                },
                "attention": {
                    "type": "object",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
        **_admin_schemas(),
        "DateTimeTimeZone": date_time_time_zone,
        "GetScheduleRequest": {
            "type": "object",
            "description": (
                "Graph's getSchedule body. Property names are matched case-insensitively "
                "(the SDKs send PascalCase); availabilityViewInterval may be a digit string."
            ),
            "required": ["schedules", "startTime", "endTime"],
            "properties": {
                "schedules": {"type": "array", "minItems": 1, "items": _ADDRESS},
                "startTime": _ref("DateTimeTimeZone"),
                "endTime": _ref("DateTimeTimeZone"),
                "availabilityViewInterval": {
                    "type": "integer",
                    "minimum": 5,
                    "maximum": 1440,
                    "default": 30,
                },
            },
            "examples": [
                {
                    "schedules": [EXAMPLE_ADDRESS],
                    "startTime": {"dateTime": "2026-03-16T00:00:00", "timeZone": "UTC"},
                    "endTime": {"dateTime": "2026-03-17T00:00:00", "timeZone": "UTC"},
                    "availabilityViewInterval": 60,
                }
            ],
        },
        "ScheduleInformation": {
            "oneOf": [
                {
                    "type": "object",
                    "required": ["scheduleId", "availabilityView", "scheduleItems"],
                    "additionalProperties": False,
                    "properties": {
                        "scheduleId": {"type": "string"},
                        "availabilityView": {"type": "string", "pattern": "^[0-3]*$"},
                        "scheduleItems": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["status", "start", "end"],
                                "additionalProperties": False,
                                "properties": {
                                    "status": {"enum": _STATUSES},
                                    "start": _ref("DateTimeTimeZone"),
                                    "end": _ref("DateTimeTimeZone"),
                                },
                            },
                        },
                    },
                },
                {
                    "type": "object",
                    "required": ["scheduleId", "error"],
                    "additionalProperties": False,
                    "properties": {
                        "scheduleId": {"type": "string"},
                        "error": {
                            "type": "object",
                            "required": ["responseCode", "message"],
                            "additionalProperties": False,
                            "properties": {
                                "responseCode": {"enum": ["5009", *_ERROR_CODES]},
                                "message": {"type": "string"},
                            },
                        },
                    },
                },
            ]
        },
        "GetScheduleResponse": {
            "type": "object",
            "required": ["@odata.context", "value"],
            "additionalProperties": False,
            "properties": {
                "@odata.context": {"type": "string"},
                "value": {"type": "array", "items": _ref("ScheduleInformation")},
            },
        },
        "GraphError": {
            "type": "object",
            "required": ["error"],
            "additionalProperties": False,
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message", "innerError"],
                    "additionalProperties": False,
                    "properties": {
                        "code": {"type": "string"},
                        "message": {"type": "string"},
                        "innerError": {
                            "type": "object",
                            "description": "code is the proxy's own stable error code.",
                            "required": ["code", "date", "request-id"],
                            "additionalProperties": False,
                            "properties": {
                                "code": {"type": "string"},
                                "date": _DATE_TIME,
                                "request-id": {"type": "string", "format": "uuid"},
                                "client-request-id": {"type": "string", "format": "uuid"},
                            },
                        },
                    },
                }
            },
        },
        "FreeBusyRequest": {
            "type": "object",
            "required": ["timeMin", "timeMax", "items"],
            "additionalProperties": False,
            "properties": {
                "timeMin": _DATE_TIME,
                "timeMax": _DATE_TIME,
                "timeZone": {"type": "string", "examples": ["Europe/Berlin"]},
                "groupExpansionMax": {"type": "integer", "minimum": 1, "maximum": 50},
                "calendarExpansionMax": {"type": "integer", "minimum": 1, "maximum": 50},
                "items": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 50,
                    "items": {
                        "type": "object",
                        "required": ["id"],
                        "additionalProperties": False,
                        "properties": {"id": _ADDRESS},
                    },
                },
            },
            "examples": [
                {
                    "timeMin": "2026-03-16T00:00:00Z",
                    "timeMax": "2026-03-17T00:00:00Z",
                    "items": [{"id": EXAMPLE_ADDRESS}],
                }
            ],
        },
        "FreeBusyResponse": {
            "type": "object",
            "required": ["kind", "timeMin", "timeMax", "calendars"],
            "additionalProperties": False,
            "properties": {
                "kind": {"const": "calendar#freeBusy"},
                "timeMin": _DATE_TIME,
                "timeMax": _DATE_TIME,
                "calendars": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "required": ["busy"],
                        "additionalProperties": False,
                        "properties": {
                            "busy": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["start", "end"],
                                    "additionalProperties": False,
                                    "properties": {"start": _DATE_TIME, "end": _DATE_TIME},
                                },
                            },
                            "errors": {
                                "type": "array",
                                "items": {
                                    "type": "object",
                                    "required": ["domain", "reason"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "domain": {"type": "string"},
                                        "reason": {"type": "string"},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
        "GoogleError": {
            "type": "object",
            "required": ["error"],
            "additionalProperties": False,
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message", "errors"],
                    "additionalProperties": False,
                    "properties": {
                        "code": {"type": "integer"},
                        "message": {"type": "string"},
                        "status": {"type": "string"},
                        "errors": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["domain", "reason", "message"],
                                "additionalProperties": False,
                                "properties": {
                                    "domain": {"type": "string"},
                                    "reason": {"type": "string"},
                                    "message": {"type": "string"},
                                },
                            },
                        },
                    },
                }
            },
        },
    }


def _slot_schemas() -> dict[str, Any]:
    def minutes(low: int, high: int, **extra: Any) -> dict[str, Any]:
        return {"type": "integer", "minimum": low, "maximum": high, **extra}

    clock_time = {"type": "string", "pattern": "^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"}
    return {
        "SlotsRequest": {
            "type": "object",
            "description": (
                "When could these participants meet? Busy time is what the key's busy_statuses "
                "count, widened to its granularity_minutes; a participant whose schedule "
                "cannot be read is busy throughout and listed in errors."
            ),
            "required": ["participants", "start", "end", "duration_minutes"],
            "additionalProperties": False,
            "properties": {
                "participants": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": MAX_PARTICIPANTS,
                    "description": "Each address once (in any letter case); the key's "
                    "max_schedules applies too.",
                    "items": {
                        "type": "object",
                        "required": ["schedule"],
                        "additionalProperties": False,
                        "properties": {
                            "schedule": _ADDRESS,
                            "optional": {
                                "type": "boolean",
                                "default": False,
                                "description": "Never blocks; counts towards an integer required.",
                            },
                        },
                    },
                },
                "required": {
                    "description": (
                        '"all": every participant who is not optional is free. An integer N '
                        "(at most the number of participants): those, and at least N "
                        "participants in all, optional ones counted; each slot then lists "
                        "who is free."
                    ),
                    "default": "all",
                    "oneOf": [{"const": "all"}, {"type": "integer", "minimum": 1}],
                },
                "start": _DATE_TIME,
                "end": {
                    **_DATE_TIME,
                    "description": f"At most {MAX_WINDOW_DAYS} days after start (and the "
                    "key's max_window_days).",
                },
                "duration_minutes": minutes(1, MAX_MINUTES),
                "interval_minutes": minutes(
                    1,
                    MAX_MINUTES,
                    default=DEFAULT_INTERVAL_MINUTES,
                    description="The grid of slot starts: every so many minutes from 00:00 "
                    "in the open hours' zone (UTC without open hours).",
                ),
                "buffer_before_minutes": minutes(0, MAX_BUFFER_MINUTES, default=0),
                "buffer_after_minutes": minutes(0, MAX_BUFFER_MINUTES, default=0),
                "open_hours": {
                    "type": "array",
                    "maxItems": MAX_OPEN_HOURS,
                    "description": "Wall-clock hours per weekday, every entry in the same zone.",
                    "items": {
                        "type": "object",
                        "required": ["days", "start", "end", "time_zone"],
                        "additionalProperties": False,
                        "properties": {
                            "days": {
                                "type": "array",
                                "minItems": 1,
                                "items": {"enum": list(WEEKDAYS)},
                            },
                            "start": clock_time,
                            "end": clock_time,
                            "time_zone": {
                                "type": "string",
                                "description": "An IANA or Windows time zone name.",
                                "examples": ["Europe/Berlin", "W. Europe Standard Time"],
                            },
                        },
                    },
                },
                "format": {
                    "enum": list(FORMATS),
                    "default": "slots",
                    "description": (
                        "slots: back to back from each free period's first grid point; "
                        "overlapping_slots: at every grid point; periods: maximal free "
                        "periods at least duration_minutes long."
                    ),
                },
                "max_results": minutes(1, MAX_RESULTS, default=DEFAULT_RESULTS),
            },
            "examples": [
                {
                    "participants": [
                        {"schedule": EXAMPLE_ADDRESS},
                        {"schedule": "megan.bowen@contoso.example", "optional": True},
                    ],
                    "required": "all",
                    "start": "2026-03-16T08:00:00Z",
                    "end": "2026-03-20T18:00:00Z",
                    "duration_minutes": 30,
                    "interval_minutes": 15,
                    "open_hours": [
                        {
                            "days": ["mon", "tue", "wed", "thu", "fri"],
                            "start": "09:00",
                            "end": "17:00",
                            "time_zone": "Europe/Berlin",
                        }
                    ],
                    "format": "slots",
                }
            ],
        },
        "Slot": {
            "type": "object",
            "description": "A time the meeting could go; nothing about anyone's calendar.",
            "required": ["start", "end"],
            "additionalProperties": False,
            "properties": {
                "start": _DATE_TIME,
                "end": _DATE_TIME,
                "available": {
                    "type": "array",
                    "description": "With an integer required: who is free, as requested.",
                    "items": {"type": "string"},
                },
            },
        },
        "SlotsResponse": {
            "type": "object",
            "required": ["slots", "truncated", "errors"],
            "additionalProperties": False,
            "properties": {
                "slots": {"type": "array", "items": _ref("Slot")},
                "truncated": {
                    "type": "boolean",
                    "description": "True when more than max_results were found.",
                },
                "errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["schedule", "code"],
                        "additionalProperties": False,
                        "properties": {
                            "schedule": {"type": "string"},
                            "code": {"enum": _ERROR_CODES},
                        },
                    },
                },
            },
        },
    }


def _slots_operation() -> dict[str, Any]:
    errors = {
        **_COMMON_ERRORS,
        403: "The key may not query one of the addresses; nothing was fetched.",
    }
    return {
        "post": {
            "operationId": "postSlots",
            "summary": "When a group is free, without anyone's calendar",
            "security": [{"apiKey": []}],
            "requestBody": {"required": True, **_body(_ref("SlotsRequest"))},
            "responses": {
                "200": {
                    "description": "The slots, whether more were left out, who could not be read.",
                    "headers": {"Cache-Control": {"schema": {"const": "no-store"}}},
                    **_body(_ref("SlotsResponse")),
                },
                **_errors("Problem", _PROBLEM, errors),
            },
        }
    }


def _admin_schemas() -> dict[str, Any]:
    counts = {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}}
    nullable_int = {"type": ["integer", "null"]}
    nullable_number = {"type": ["number", "null"]}
    return {
        "AdminReadiness": {
            "type": "object",
            "description": "Every check as one record shape; new sections add records.",
            "required": ["ready", "checks"],
            "additionalProperties": False,
            "properties": {
                "ready": {"type": "boolean", "description": "What /readyz answers."},
                "checks": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "ok", "state", "gates_readiness"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string", "examples": ["token", "graph", "breaker"]},
                            "ok": {"type": "boolean"},
                            "state": {"type": "string", "examples": ["ok", "closed"]},
                            "gates_readiness": {
                                "type": "boolean",
                                "description": "Whether /readyz depends on this check.",
                            },
                            "counts": counts,
                            "mode": {
                                "enum": ["shared", "fallback", "rejoining"],
                                "description": "The cluster record's: how the Redis link stands.",
                            },
                        },
                    },
                },
            },
        },
        "AdminConsumers": {
            "type": "object",
            "required": ["consumers"],
            "additionalProperties": False,
            "properties": {
                "consumers": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": [
                            "name",
                            "allowlist",
                            "policy",
                            "requests",
                            "rate_limited",
                            "refused",
                        ],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string"},
                            "allowlist": {
                                "type": "object",
                                "description": "Sizes only; the allowlist itself names people.",
                                "required": ["addresses", "domains"],
                                "additionalProperties": False,
                                "properties": {
                                    "addresses": {"type": "integer", "minimum": 0},
                                    "domains": {"type": "integer", "minimum": 0},
                                },
                            },
                            "policy": {
                                "type": "object",
                                "required": [
                                    "detail",
                                    "granularity_minutes",
                                    "busy_statuses",
                                    "max_lookback_days",
                                    "max_lookahead_days",
                                    "max_window_days",
                                    "max_schedules",
                                    "rate_per_minute",
                                ],
                                "additionalProperties": False,
                                "properties": {
                                    "detail": {"type": "string"},
                                    "granularity_minutes": {"type": "integer"},
                                    "busy_statuses": {
                                        "type": "array",
                                        "items": {"enum": _STATUSES},
                                    },
                                    "max_lookback_days": {"type": "integer"},
                                    "max_lookahead_days": {"type": "integer"},
                                    "max_window_days": nullable_int,
                                    "max_schedules": nullable_int,
                                    "rate_per_minute": {"type": "integer"},
                                },
                            },
                            "requests": {"type": "integer", "minimum": 0},
                            "rate_limited": {"type": "integer", "minimum": 0},
                            "refused": {
                                "type": "integer",
                                "minimum": 0,
                                "description": "Refused by the allowlist or the limits.",
                            },
                        },
                    },
                }
            },
        },
        "AdminEconomy": {
            "type": "object",
            "description": "What Graph cost since this process started, from /metrics' counters.",
            "required": [
                "get_schedule_calls",
                "cache_lookups",
                "cache_hit_rate",
                "cache_entries",
                "throttle_events",
                "breaker_state",
                "batches",
                "schedules_per_batch",
            ],
            "additionalProperties": False,
            "properties": {
                "get_schedule_calls": {**counts, "description": "By HTTP status or transport."},
                "cache_lookups": {**counts, "description": "hit, miss, coalesced, stale."},
                "cache_hit_rate": nullable_number,
                "cache_entries": {"type": "integer", "minimum": 0},
                "throttle_events": counts,
                "breaker_state": {"enum": ["closed", "half_open", "open"]},
                "batches": {"type": "integer", "minimum": 0},
                "schedules_per_batch": nullable_number,
            },
        },
    }


def _page_operation(operation_id: str, summary: str) -> dict[str, Any]:
    return {
        "get": {
            "operationId": operation_id,
            "summary": summary,
            "tags": ["Pages"],
            "security": [],
            "responses": {
                "200": {"description": "An HTML page.", **_body({"type": "string"}, "text/html")}
            },
        }
    }


def _admin_operation(operation_id: str, summary: str, schema: str) -> dict[str, Any]:
    errors = {
        401: "No admin key, or not the configured one.",
        404: "No such path.",
        405: "Method not allowed here.",
        500: _COMMON_ERRORS[500],
    }
    return {
        "get": {
            "operationId": operation_id,
            "summary": summary,
            "tags": ["Admin"],
            "security": [{"adminKey": []}],
            "responses": {
                "200": {"description": summary, **_body(_ref(schema))},
                **_errors("Problem", _PROBLEM, errors),
            },
        }
    }


def _cluster_fetch_operation() -> dict[str, Any]:
    binary = {"type": "string", "format": "binary"}
    errors = {
        400: "Not a forwarded fetch, or more than one getSchedule call's worth.",
        401: "Not signed by a replica: no signature, a wrong or expired one, or one used before.",
        404: "Not served here: no [cluster], or forward_misses is off.",
        405: "Method not allowed here.",
        413: _COMMON_ERRORS[413],
        500: _COMMON_ERRORS[500],
    }
    return {
        "post": {
            "operationId": "clusterFetch",
            "summary": "A miss another replica forwarded to the replica owning its window",
            "description": (
                "Replicas only: the body is msgpack (addresses and a window), signed with the "
                "cluster key in X-Freebusy-Cluster-Signature; the answer is msgpack holding, "
                "per address, an error code or items packed as integers (status, start, end)."
            ),
            "tags": ["Cluster"],
            "security": [{"clusterSignature": []}],
            "requestBody": {"required": True, **_body(binary, "application/octet-stream")},
            "responses": {
                "200": {
                    "description": "The fetch's results, packed.",
                    "headers": {"Cache-Control": {"schema": {"const": "no-store"}}},
                    **_body(binary, "application/octet-stream"),
                },
                **_errors("Problem", _PROBLEM, errors),
            },
        }
    }


def _availability_operations() -> dict[str, Any]:
    ok = {
        "200": {
            "description": "Minimized availability, one entry per requested address.",
            "headers": {"Cache-Control": {"schema": {"const": "no-store"}}},
            **_body(_ref("AvailabilityResponse")),
        }
    }
    get_errors = {k: v for k, v in _COMMON_ERRORS.items() if k not in (408, 413, 415)}
    return {
        "get": {
            "operationId": "getAvailability",
            "summary": "Free/busy of several addresses (query parameters)",
            "security": [{"apiKey": []}],
            "parameters": [
                {
                    "name": "schedules",
                    "in": "query",
                    "required": True,
                    "description": "Comma-separated addresses.",
                    "schema": {"type": "string", "examples": [EXAMPLE_ADDRESS]},
                },
                {"name": "start", "in": "query", "required": True, "schema": _DATE_TIME},
                {"name": "end", "in": "query", "required": True, "schema": _DATE_TIME},
            ],
            "responses": {**ok, **_errors("Problem", _PROBLEM, get_errors)},
        },
        "post": {
            "operationId": "postAvailability",
            "summary": "Free/busy of several addresses (JSON body)",
            "security": [{"apiKey": []}],
            "requestBody": {"required": True, **_body(_ref("AvailabilityRequest"))},
            "responses": {**ok, **_errors("Problem", _PROBLEM, _COMMON_ERRORS)},
        },
    }


def _graph_operation(operation_id: str, summary: str, with_id: bool) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {
            "name": "Prefer",
            "in": "header",
            "required": False,
            "description": 'outlook.timezone="<Windows or IANA zone>" for the response times.',
            "schema": {"type": "string", "examples": ['outlook.timezone="Pacific Standard Time"']},
        }
    ]
    if with_id:
        parameters.insert(
            0,
            {
                "name": "id",
                "in": "path",
                "required": True,
                "description": "Any user id; access is decided by the API key's allowlist.",
                "schema": {"type": "string", "minLength": 1, "examples": [EXAMPLE_ADDRESS]},
            },
        )
    errors = {
        **_COMMON_ERRORS,
        429: "Over the API key's rate_per_minute, or Graph kept throttling.",
        503: "Graph is unavailable.",
    }
    return {
        "post": {
            "operationId": operation_id,
            "summary": summary,
            "tags": ["Microsoft Graph drop-in"],
            "security": [{"apiKey": []}],
            "parameters": parameters,
            "requestBody": {"required": True, **_body(_ref("GetScheduleRequest"))},
            "responses": {
                "200": {
                    "description": "Graph's getSchedule answer with status/start/end only.",
                    **_body(_ref("GetScheduleResponse")),
                },
                **_errors("GraphError", _JSON, errors),
            },
        }
    }


def build_document() -> dict[str, Any]:
    """The OpenAPI 3.1 description of every consumer-facing endpoint."""
    google_errors = {
        **_COMMON_ERRORS,
        429: "Over the API key's rate_per_minute, or Graph kept throttling.",
    }
    problem_errors = {k: v for k, v in _COMMON_ERRORS.items() if k not in (408, 413, 415)}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "freebusy-proxy",
            "version": "1",
            "description": (
                "Minimized free/busy from Microsoft Graph: status, start and end of calendar "
                "items, nothing else, in the proxy's own JSON and in the dialects scheduling "
                "tools already speak (Graph getSchedule, Google freeBusy, iCalendar); or only "
                "the times a group could meet (/v1/slots)."
            ),
        },
        "servers": [{"url": "/"}],
        "paths": {
            "/v1/availability": _availability_operations(),
            "/v1/slots": _slots_operation(),
            "/v1/schedules/{address}/freebusy.ics": {
                "get": {
                    "operationId": "getFreeBusyFeed",
                    "summary": "One address's free/busy as an iCalendar VFREEBUSY",
                    "tags": ["iCalendar"],
                    "security": [{"apiKey": []}, {"feedToken": []}],
                    "parameters": [
                        {
                            "name": "address",
                            "in": "path",
                            "required": True,
                            "schema": {**_ADDRESS, "examples": [EXAMPLE_ADDRESS]},
                        },
                        {
                            "name": "start",
                            "in": "query",
                            "required": False,
                            "description": "With end; both omitted: [ical] default_days.",
                            "schema": _DATE_TIME,
                        },
                        {"name": "end", "in": "query", "required": False, "schema": _DATE_TIME},
                        {
                            "name": "If-None-Match",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "VCALENDAR with one VFREEBUSY, UTC, FBTYPE on each.",
                            "headers": {
                                "ETag": {"schema": {"type": "string"}},
                                "Cache-Control": {"schema": {"type": "string"}},
                            },
                            **_body({"type": "string"}, "text/calendar"),
                        },
                        "304": {
                            "description": "If-None-Match named the current ETag.",
                            "headers": {"ETag": {"schema": {"type": "string"}}},
                        },
                        **_errors(
                            "Problem",
                            _PROBLEM,
                            {**problem_errors, 404: "No such path, or Graph does not know it."},
                        ),
                    },
                }
            },
            "/v1.0/users/{id}/calendar/getSchedule": _graph_operation(
                "graphGetSchedule", "Graph getSchedule, minimized", with_id=True
            ),
            "/v1.0/me/calendar/getSchedule": _graph_operation(
                "graphMeGetSchedule",
                "Graph getSchedule for an API key allowed exactly one address",
                with_id=False,
            ),
            "/calendar/v3/freeBusy": {
                "post": {
                    "operationId": "googleFreeBusy",
                    "summary": "Google Calendar freeBusy.query, minimized",
                    "tags": ["Google Calendar"],
                    "security": [{"apiKey": []}],
                    "requestBody": {"required": True, **_body(_ref("FreeBusyRequest"))},
                    "responses": {
                        "200": {
                            "description": "Merged busy periods per calendar.",
                            **_body(_ref("FreeBusyResponse")),
                        },
                        **_errors("GoogleError", _JSON, google_errors),
                    },
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "summary": "Liveness",
                    "security": [],
                    "responses": {"200": {"description": "Serving.", **_body(_ref("Health"))}},
                }
            },
            "/readyz": {
                "get": {
                    "operationId": "readyz",
                    "summary": "Readiness: a token can be had and Graph answers",
                    "description": (
                        "No key needed. With the admin key (Authorization: Bearer, "
                        "[connect] admin_key_sha256) the answer also holds problems and "
                        "attention."
                    ),
                    "security": [],
                    "responses": {
                        "200": {"description": "Ready.", **_body(_ref("Readiness"))},
                        "503": {"description": "Not ready.", **_body(_ref("Readiness"))},
                        **_errors(
                            "Problem",
                            _PROBLEM,
                            {401: "An Authorization header that is not the admin key."},
                        ),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Prometheus metrics of this process (no personal data in labels)",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "Prometheus text exposition format.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/": _page_operation("home", "Start page: links to the console, the week view, API"),
            "/console": _page_operation("console", "Admin console (uses the /admin/ routes)"),
            "/view": _page_operation("weekView", "Week view of availability (uses the JSON API)"),
            "/static/{name}": {
                "get": {
                    "operationId": "staticFile",
                    "summary": "The pages' stylesheet and scripts",
                    "tags": ["Pages"],
                    "security": [],
                    "parameters": [
                        {
                            "name": "name",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string", "examples": ["site.css", "week.js"]},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "The file.",
                            "content": {
                                "text/css": {"schema": {"type": "string"}},
                                "text/javascript": {"schema": {"type": "string"}},
                                "image/svg+xml": {"schema": {"type": "string"}},
                            },
                        },
                        **_errors("Problem", _PROBLEM, {404: "No such file."}),
                    },
                }
            },
            "/admin/readiness": _admin_operation(
                "adminReadiness", "Readiness checks, the breaker and connections", "AdminReadiness"
            ),
            "/admin/consumers": _admin_operation(
                "adminConsumers", "Consumers: allowlist sizes, policies, counters", "AdminConsumers"
            ),
            "/admin/economy": _admin_operation(
                "adminEconomy", "Graph calls, cache hit rate, throttling", "AdminEconomy"
            ),
            "/cluster/fetch": _cluster_fetch_operation(),
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "security": [],
                    "responses": {
                        "200": {"description": "OpenAPI 3.1.", **_body({"type": "object"})}
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A consumer's API key (freebusy-proxy new-key).",
                },
                "adminKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The admin key ([connect] admin_key_sha256).",
                },
                "clusterSignature": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Freebusy-Cluster-Signature",
                    "description": (
                        "time.nonce.HMAC-SHA256 of the body, with a key derived from "
                        "FREEBUSY_PROXY_CLUSTER_KEY: replicas only."
                    ),
                },
                "feedToken": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "token",
                    "description": "A feed token for this one address (freebusy-proxy new-feed).",
                },
            },
            "schemas": _schemas(),
        },
    }


def render() -> str:
    """The document as written to proxy/openapi.json."""
    return json.dumps(build_document(), indent=2) + "\n"


if __name__ == "__main__":
    Path(__file__).with_name("openapi.json").write_text(render())
