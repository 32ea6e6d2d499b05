"""The nginx router's config, rendered from the deploy state: the one routing template.

Blue-green, canary and shadow are values of one desired routing state, not three
configs: the live slot takes the traffic; a candidate takes `weight` percent of it
(chosen per request from its id; `X-Canary: always|never` forces a side); a mirror gets
a copy of `sample` percent. The template is router.conf.tmpl beside this module; its
`{{ name }}` fields are filled here, and nginx's own `$variables` pass through untouched.
Only the routing goes into it (no revision, no time): an unchanged routing renders the
same file, and nginx is not reloaded for nothing (a reload closes idle keep-alive
connections, see README "Serving on the box").
"""

from __future__ import annotations

import importlib.resources
import re
from typing import Any

from ..system import layout
from .state import model_label

TEMPLATE = "router.conf.tmpl"
_FIELD = re.compile(r"\{\{ (\w+) \}\}")
_INDENT = " " * 8
# What the router answers while no model is live (before a first deploy, after a stop).
NOTHING_LIVE = (
    '{"error_code": "NO_MODEL_LIVE", "message": "No model is live on this box: '
    'deploy one with `fab deploy.blue-green --model URI`."}'
)


def render(state: dict[str, Any]) -> str:
    """The router's nginx config for `state`."""
    live = state.get("live")
    candidate = state.get("candidate")
    mirror = state.get("mirror")
    values = {
        "summary": summary(state),
        "upstreams": _upstreams(),
        "route": _route(live, candidate),
        "versions": _versions(live, candidate, mirror),
        "mirror_sample": _mirror_sample(mirror),
        "port": str(layout.ROUTER_PORT),
        "access_log": layout.ROUTER_LOG,
        "main": _main(live, mirror),
        "mirror_location": _mirror_location(mirror),
        "mirror_relay": _mirror_relay(mirror),
    }
    template = importlib.resources.files(__package__).joinpath(TEMPLATE).read_text()
    return _FIELD.sub(lambda match: values[match.group(1)], template)


def summary(state: dict[str, Any]) -> str:
    live, candidate, mirror = state.get("live"), state.get("candidate"), state.get("mirror")
    if not live:
        return "no model is live"
    parts = [f"live {live['slot']} ({model_label(live['model'])})"]
    if candidate:
        parts.append(
            f"candidate {candidate['slot']} ({model_label(candidate['model'])}) "
            f"at {candidate['weight']}%"
        )
    if mirror:
        parts.append(
            f"mirror to {mirror['slot']} ({model_label(mirror['model'])}) of {mirror['sample']}%"
        )
    return ", ".join(parts)


def _upstreams() -> str:
    blocks = [
        "# Upstream keep-alive below the slots' own (75 s): nginx always closes an idle\n"
        "# connection first, so it never sends a request on one a slot has closed."
    ]
    for slot, port in layout.SLOT_PORTS.items():
        blocks.append(
            f"upstream mlops_{slot} {{\n"
            f"    server 127.0.0.1:{port} max_fails=0;\n"
            "    keepalive 16;\n"
            "    keepalive_timeout 60s;\n"
            "}"
        )
    return "\n".join(blocks)


def _percent(value: float) -> str:
    return f"{float(value):.2f}".rstrip("0").rstrip(".") + "%"


def _route(live: dict[str, Any] | None, candidate: dict[str, Any] | None) -> str:
    if not live:
        return 'map $mlops_request_id $mlops_route {\n    default "";\n}'
    stable = live["slot"]
    if not candidate or float(candidate["weight"]) <= 0:
        return f"map $mlops_request_id $mlops_route {{\n    default {stable};\n}}"
    other = candidate["slot"]
    if float(candidate["weight"]) >= 100:
        share = f"map $mlops_request_id $mlops_split {{\n    default {other};\n}}"
    else:
        share = (
            f'split_clients "${{mlops_request_id}}" $mlops_split {{\n'
            f"    {_percent(candidate['weight'])} {other};\n"
            f"    * {stable};\n}}"
        )
    return (
        f"{share}\nmap $http_x_canary $mlops_route {{\n"
        f"    always  {other};\n    never   {stable};\n    default $mlops_split;\n}}"
    )


def _versions(*assignments: dict[str, Any] | None) -> str:
    lines = [
        f'    {a["slot"]} "{model_label(a["model"])}";'
        for a in assignments
        if a and _safe(model_label(a["model"]))
    ]
    return "\n".join(dict.fromkeys(lines))


def _safe(text: str) -> bool:
    """A model label that can stand in a quoted nginx string as it is."""
    return not any(ch in text for ch in '"\\$;{}\n\r')


def _mirror_sample(mirror: dict[str, Any] | None) -> str:
    """Which requests are copied: `sample` percent by request id, or as `X-Shadow` says;
    and the zone that caps the copies in flight to the shadow."""
    if not mirror:
        return ""
    return (
        '\nsplit_clients "${mlops_request_id}mirror" $mlops_mirror_sampled {\n'
        f"    {_percent(mirror['sample'])} 1;\n    * 0;\n}}\n"
        "map $http_x_shadow $mlops_mirrored {\n"
        "    always  1;\n    never   0;\n    default $mlops_mirror_sampled;\n}\n"
        "limit_conn_zone $server_port zone=mlops_mirror:1m;\n"
    )


def _main(live: dict[str, Any] | None, mirror: dict[str, Any] | None) -> str:
    """The main location: to the routed slot (the split is in the maps), a copy to the
    mirror while one runs."""
    if not live:
        return f"{_INDENT}default_type application/json;\n{_INDENT}return 503 '{NOTHING_LIVE}\\n';"
    lines = ["proxy_pass http://mlops_$mlops_route;"]
    if mirror:
        lines += ["mirror /__mlops/mirror;", "mirror_request_body on;"]
    return "\n".join(_INDENT + line for line in lines)


# nginx finishes a request only once its mirror subrequests have: the next request on the
# same keep-alive connection waits for them. So the router's mirror never waits for the
# shadow slot: it hands the copy to the relay below on a new loopback connection, and the
# relay answers at once (its content handler runs right after it spawned its own mirror)
# while it forwards the copy to the shadow slot. A slow or dead shadow holds only relay
# requests, capped by `limit_conn` so it can never take the connections live traffic needs.
MIRROR_IN_FLIGHT = 64


def _mirror_location(mirror: dict[str, Any] | None) -> str:
    if not mirror:
        return ""
    return (
        "\n    location = /__mlops/mirror {\n"
        "        internal;\n"
        "        if ($mlops_mirrored = 0) {\n"
        "            return 204;\n"
        "        }\n"
        "        proxy_http_version 1.0;\n"
        '        proxy_set_header Connection "close";\n'
        "        proxy_set_header Host $host;\n"
        "        proxy_set_header X-Request-ID $mlops_request_id;\n"
        "        proxy_connect_timeout 100ms;\n"
        "        proxy_send_timeout 1s;\n"
        "        proxy_read_timeout 1s;\n"
        f"        proxy_pass http://127.0.0.1:{layout.MIRROR_RELAY_PORT}$request_uri;\n"
        "    }\n"
    )


def _mirror_relay(mirror: dict[str, Any] | None) -> str:
    if not mirror:
        return ""
    return f"""
# The mirror relay: takes a copy from the router, answers it at once, forwards it to the
# shadow slot on its own. Its log says how the shadow slot answered each copy.
log_format mlops_mirror escape=json
    '{{"time":"$time_iso8601","msec":$msec,"request_id":"$http_x_request_id",'
    '"slot":"{mirror["slot"]}","uri":"$uri","status":$status,'
    '"upstream_status":"$upstream_status","request_time":$request_time,'
    '"upstream_time":"$upstream_response_time"}}';
# A copy the relay refused at its cap (503) is logged too: the report counts it dropped.
map $status $mlops_mirror_dropped {{
    503     1;
    default 0;
}}

server {{
    listen 127.0.0.1:{layout.MIRROR_RELAY_PORT};
    server_name _;
    access_log off;
    log_subrequest on;
    keepalive_timeout 0;
    client_max_body_size 64m;
    client_body_buffer_size 1m;
    limit_conn mlops_mirror {MIRROR_IN_FLIGHT};
    limit_conn_log_level info;

    location / {{
        access_log {layout.MIRROR_LOG} mlops_mirror if=$mlops_mirror_dropped;
        mirror /__mlops/shadow;
        mirror_request_body on;
        # Any content handler answers at once; this one refuses a POST (405), which the
        # router ignores: all that matters is that the copy went to the shadow.
        empty_gif;
    }}

    location = /__mlops/shadow {{
        internal;
        access_log {layout.MIRROR_LOG} mlops_mirror;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Request-ID $http_x_request_id;
        proxy_set_header X-Mlops-Mirror 1;
        proxy_ignore_client_abort on;
        proxy_connect_timeout 1s;
        proxy_read_timeout 30s;
        proxy_next_upstream off;
        proxy_pass http://mlops_{mirror["slot"]}$request_uri;
    }}
}}
"""
