"""What mitmproxy needs in a flow's state before it loads it, checked without mitmproxy.

mitmproxy refuses a whole flow file over one bad value, often with an assertion rather
than a message, so :mod:`pcapflows.mitmfile` checks every flow here before writing it
(:func:`checked_state`) and every TCP flow it reads (:func:`read_state`): every key and
no other, ``str`` where mitmproxy wants text and ``bytes`` where it wants bytes, float
timestamps, a proxy mode its parser accepts, metadata made of JSON-like values. Each
failure is a ``ValueError`` naming the flow and the key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pcapflows import tnetstring
from pcapflows.model.flow import FLOW_FORMAT_VERSION, Flow

Check = Callable[[Any, str], Any]


def _fail(where: str, want: str, value: Any) -> ValueError:
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return ValueError(f"{where} must be {want}, not {type(value).__name__} {shown}")


def _of(kind: type, want: str) -> Check:
    def check(value: Any, where: str) -> Any:
        # type() rather than isinstance: a bool is not an int here, nor a str subclass
        # a str (mitmproxy's reader would not give it back as the same class).
        if type(value) is not kind:
            raise _fail(where, want, value)
        return value

    return check


_str = _of(str, "text (str)")
_bytes = _of(bytes, "bytes")
_bool = _of(bool, "a bool")


def _float(value: Any, where: str) -> float:
    if type(value) not in (int, float):
        raise _fail(where, "a timestamp (float)", value)
    return float(value)


def _optional(check: Check) -> Check:
    def optional(value: Any, where: str) -> Any:
        return None if value is None else check(value, where)

    return optional


def _list_of(check: Check) -> Check:
    def list_of(value: Any, where: str) -> Any:
        if type(value) not in (list, tuple):
            raise _fail(where, "a list", value)
        return [check(item, f"{where}[{i}]") for i, item in enumerate(value)]

    return list_of


def _one_of(*allowed: str) -> Check:
    def one_of(value: Any, where: str) -> Any:
        if type(value) is not str or value not in allowed:
            raise _fail(where, "one of " + ", ".join(allowed), value)
        return value

    return one_of


def _address(value: Any, where: str) -> tuple[Any, ...]:
    """``(host, port)``, or the 4-tuple of an IPv6 socket address (as mitmproxy allows)."""
    if type(value) not in (list, tuple) or len(value) not in (2, 4):
        raise _fail(where, "a (host, port) pair", value)
    _str(value[0], f"{where}[0]")
    for i, part in enumerate(value[1:], 1):
        _int(part, f"{where}[{i}]")
    return tuple(value)


#: mitmproxy's proxy modes, and whether the part after ``:`` is required (True),
#: forbidden (False) or optional (None), as its ``ProxyMode.parse`` decides.
_MODES: dict[str, bool | None] = {
    "regular": False,
    "transparent": False,
    "socks5": False,
    "upstream": True,
    "reverse": True,
    "dns": False,
    "wireguard": None,
    "local": None,
    "tun": None,
}


def _proxy_mode(value: Any, where: str) -> str:
    """A mode spec mitmproxy parses: ``MODE[:DATA][@[HOST:]PORT]`` (pcapflows writes
    ``"regular"``; mitmproxy refuses to load a file with a spec it cannot parse)."""
    _str(value, where)
    head, at, listen = value.rpartition("@")
    if not at:
        head, listen = listen, ""
    mode, colon, data = head.partition(":")
    needs = _MODES.get(mode.lower(), "unknown")
    ok = needs != "unknown" and (needs is None or needs == bool(data))
    if ok and colon and not data:
        ok = needs is None
    if ok and at:
        port = listen.rpartition(":")[2]
        ok = port.isdigit() and port.isascii() and int(port) <= 65535
    if not ok:
        raise _fail(where, "a mitmproxy proxy mode (such as 'regular')", value)
    return str(value)


def _via(value: Any, where: str) -> Any:
    if value is None:
        return None
    if type(value) not in (list, tuple) or len(value) != 2:
        raise _fail(where, "None or a (scheme, (host, port)) pair", value)
    schemes = ("http", "https", "http3", "tls", "dtls", "tcp", "udp", "dns", "quic")
    return (_one_of(*schemes)(value[0], f"{where}[0]"), _address(value[1], f"{where}[1]"))


_TLS_VERSIONS = (
    *("SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"),
    *("DTLSv0.9", "DTLSv1", "DTLSv1.2", "QUICv1"),
)

_CONNECTION: dict[str, Check] = {
    "peername": _optional(_address),
    "sockname": _optional(_address),
    "id": _str,
    "transport_protocol": _one_of("tcp", "udp"),
    "error": _optional(_str),
    "tls": _bool,
    # Certificates are kept in their state form, PEM bytes.
    "certificate_list": _list_of(_bytes),
    "alpn": _optional(_bytes),
    "alpn_offers": _list_of(_bytes),
    "cipher": _optional(_str),
    "cipher_list": _list_of(_str),
    "tls_version": _optional(_one_of(*_TLS_VERSIONS)),
    "sni": _optional(_str),
    "timestamp_start": _optional(_float),
    "timestamp_end": _optional(_float),
    "timestamp_tls_setup": _optional(_float),
}
_CLIENT: dict[str, Check] = {
    **_CONNECTION,
    "peername": _address,
    "sockname": _address,
    "mitmcert": _optional(_bytes),
    "proxy_mode": _proxy_mode,
    # mitmproxy's Client has no "unknown" start time.
    "timestamp_start": _float,
}
_SERVER: dict[str, Check] = {
    **_CONNECTION,
    "address": _optional(_address),
    "timestamp_tcp_setup": _optional(_float),
    "via": _via,
}


def _record(keys: dict[str, Check]) -> Check:
    def record(value: Any, where: str) -> dict[str, Any]:
        _dict(value, where)
        missing = [k for k in keys if k not in value]
        extra = [k for k in value if k not in keys]
        if missing or extra:
            what = []
            if missing:
                what.append(f"missing {', '.join(map(str, missing))}")
            if extra:
                what.append(f"unexpected {', '.join(map(repr, extra))}")
            raise ValueError(f"{where}: {'; '.join(what)}")
        return {k: check(value[k], f"{where}.{k}") for k, check in keys.items()}

    return record


def _message(value: Any, where: str) -> tuple[bool, bytes, float]:
    if type(value) not in (list, tuple) or len(value) != 3:
        raise _fail(where, "a (from_client, content, timestamp) triple", value)
    return (
        _bool(value[0], f"{where}.from_client"),
        _bytes(value[1], f"{where}.content"),
        _float(value[2], f"{where}.timestamp"),
    )


def _json_like(value: Any, where: str, depth: int = 0) -> Any:
    """Metadata values that come back from a flow file exactly as they went in."""
    if depth > tnetstring.MAX_DEPTH:
        raise ValueError(f"{where} is nested too deep")
    kind = type(value)
    if value is None or kind in (bool, int, float, str):
        return value
    if kind is list:
        return [_json_like(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if kind is dict:
        for key in value:
            if type(key) is not str:
                raise _fail(f"{where} key {key!r}", "text (str)", key)
        return {k: _json_like(v, f"{where}[{k!r}]", depth + 1) for k, v in value.items()}
    raise _fail(where, "JSON-like (dict with str keys, list, str, int, float, bool, None)", value)


def _dict(value: Any, where: str) -> Any:
    if type(value) is not dict:
        raise _fail(where, "a dict", value)
    return value


def _flow_keys(metadata: Check, kind: str = "tcp") -> dict[str, Check]:
    keys: dict[str, Check] = {
        "version": _one_of_int(FLOW_FORMAT_VERSION),
        "type": _one_of(kind),
        "id": _str,
        "error": _optional(_record({"msg": _str, "timestamp": _float})),
        "client_conn": _record(_CLIENT),
        "server_conn": _record(_SERVER),
        "intercepted": _bool,
        "is_replay": _optional(_one_of("request", "response")),
        "marked": _str,
        "metadata": metadata,
        "comment": _str,
        "timestamp_created": _float,
        "backup": _optional(_dict),
    }
    if kind == "http":
        keys["request"] = _record(_REQUEST)
        keys["response"] = _optional(_record(_RESPONSE))
        keys["websocket"] = _optional(_record(_WEBSOCKET))
    else:
        keys["messages"] = _list_of(_message)
    return keys


def _int(value: Any, where: str) -> int:
    if type(value) is not int:
        raise _fail(where, "an int", value)
    return value


def _headers(value: Any, where: str) -> tuple[tuple[bytes, bytes], ...]:
    if type(value) not in (list, tuple):
        raise _fail(where, "a sequence of (name, value) byte pairs", value)
    out = []
    for i, f in enumerate(value):
        if type(f) not in (list, tuple) or len(f) != 2:
            raise _fail(f"{where}[{i}]", "a (name, value) pair", f)
        out.append((_bytes(f[0], f"{where}[{i}].name"), _bytes(f[1], f"{where}[{i}].value")))
    return tuple(out)


_HTTP_MESSAGE: dict[str, Check] = {
    "http_version": _bytes,
    "headers": _headers,
    "content": _optional(_bytes),
    "trailers": _optional(_headers),
    "timestamp_start": _float,
    "timestamp_end": _optional(_float),
}
_REQUEST: dict[str, Check] = {
    **_HTTP_MESSAGE,
    "host": _str,
    "port": _int,
    "method": _bytes,
    "scheme": _bytes,
    "authority": _bytes,
    "path": _bytes,
}
_RESPONSE: dict[str, Check] = {**_HTTP_MESSAGE, "status_code": _int, "reason": _bytes}


def _ws_message(value: Any, where: str) -> tuple[int, bool, bytes, float, bool, bool]:
    if type(value) not in (list, tuple) or len(value) != 6:
        raise _fail(where, "a WebSocket message 6-tuple", value)
    return (
        _int(value[0], f"{where}.type"),
        _bool(value[1], f"{where}.from_client"),
        _bytes(value[2], f"{where}.content"),
        _float(value[3], f"{where}.timestamp"),
        _bool(value[4], f"{where}.dropped"),
        _bool(value[5], f"{where}.injected"),
    )


_WEBSOCKET: dict[str, Check] = {
    "messages": _list_of(_ws_message),
    "closed_by_client": _optional(_bool),
    "close_code": _optional(_int),
    "close_reason": _optional(_str),
    "timestamp_end": _optional(_float),
}


def _one_of_int(version: int) -> Check:
    def check(value: Any, where: str) -> Any:
        if type(value) is not int or value != version:
            raise _fail(where, str(version), value)
        return value

    return check


def _metadata(value: Any, where: str) -> Any:
    return _json_like(_dict(value, where), where)


#: Writing: metadata must be JSON-like. Reading: whatever mitmproxy wrote is kept.
_WRITE = {kind: _record(_flow_keys(_metadata, kind)) for kind in ("tcp", "http")}
_READ = _record(_flow_keys(_dict))


def read_state(state: Any, where: str) -> dict[str, Any]:
    """A TCP flow's state read from a file, checked as :func:`checked_state` checks a
    written one (its metadata taken as it is): ``ValueError`` naming ``where`` and
    the key when mitmproxy would not load it."""
    result: dict[str, Any] = _READ(state, where)
    return result


def checked_state(flow: Flow) -> dict[str, Any]:
    """``flow.get_state()`` as it will be written, after checking that mitmproxy loads it.

    Integer timestamps become floats; anything else mitmproxy would refuse (a key too
    many or missing, text where it wants bytes, an unknown proxy mode, metadata that
    would not come back the same) raises ``ValueError`` naming the flow and the key.
    """
    state = flow.get_state()
    name = f"flow {state.get('id')!r}" if isinstance(state, dict) else "flow"
    kind = state.get("type") if isinstance(state, dict) else None
    result: dict[str, Any] = _WRITE.get(kind if isinstance(kind, str) else "", _WRITE["tcp"])(
        state, name
    )
    return result


__all__ = ["checked_state", "read_state"]
