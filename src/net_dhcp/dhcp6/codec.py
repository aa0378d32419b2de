"""Pure DHCPv6 (RFC 8415) message codec and client message builders, IA_NA only.

Everything here is a pure function of its arguments: no sockets, no I/O, no clock, no randomness.
Malformed wire input raises :class:`CodecError` from :meth:`Message6.decode` and from the typed
accessors (which decode an option's value only when asked); nothing else escapes them. Messages
keep every option in wire order, repeats included; the accessors read the first occurrence
(RFC 8415 21.1 allows most options only once per message or per IA, so a repeat is a server
bug and the first one is as good as any). Unknown option codes are kept and skipped.

Relay messages (RFC 8415 9) are not handled: a client never receives them.
"""

from __future__ import annotations

import enum
import re
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from ipaddress import IPv6Address

from ..text import printable
from ..wire.common import CodecError, check_mac

__all__ = [
    "ALL_SERVERS",
    "CLIENT_PORT",
    "INFINITY",
    "REQUESTED_OPTIONS",
    "SERVER_PORT",
    "ClientDuid",
    "CodecError",
    "IaAddress",
    "IaNa",
    "Message6",
    "MessageType",
    "Opt",
    "Status",
    "StatusCode",
    "confirm",
    "decline",
    "duid_ll",
    "fqdn_option",
    "iaid_for_mac",
    "rebind",
    "release",
    "renew",
    "request",
    "solicit",
]

#: UDP port clients listen on (RFC 8415 7.2).
CLIENT_PORT = 546
#: UDP port servers and relay agents listen on (RFC 8415 7.2).
SERVER_PORT = 547
#: All_DHCP_Relay_Agents_and_Servers, where a client sends everything (RFC 8415 7.1).
ALL_SERVERS = IPv6Address("ff02::1:2")
#: A lifetime or T1/T2 of all ones means infinity (RFC 8415 7.7); kept as the raw value.
INFINITY = 0xFFFFFFFF


class MessageType(enum.IntEnum):
    """DHCPv6 message types (RFC 8415 7.3)."""

    SOLICIT = 1
    ADVERTISE = 2
    REQUEST = 3
    CONFIRM = 4
    RENEW = 5
    REBIND = 6
    REPLY = 7
    RELEASE = 8
    DECLINE = 9
    RECONFIGURE = 10
    INFORMATION_REQUEST = 11


class Opt(enum.IntEnum):
    """DHCPv6 option codes used here (RFC 8415 21 unless noted)."""

    CLIENTID = 1  # 21.2
    SERVERID = 2  # 21.3
    IA_NA = 3  # 21.4
    IAADDR = 5  # 21.6
    ORO = 6  # 21.7
    PREFERENCE = 7  # 21.8
    ELAPSED_TIME = 8  # 21.9
    STATUS_CODE = 13  # 21.13
    RAPID_COMMIT = 14  # 21.14
    DNS_SERVERS = 23  # RFC 3646 3
    DOMAIN_LIST = 24  # RFC 3646 4
    CLIENT_FQDN = 39  # RFC 4704 4
    SOL_MAX_RT = 82  # 21.24


class Status(enum.IntEnum):
    """Status Code values (RFC 8415 21.13)."""

    SUCCESS = 0
    UNSPEC_FAIL = 1
    NO_ADDRS_AVAIL = 2
    NO_BINDING = 3
    NOT_ON_LINK = 4
    USE_MULTICAST = 5
    NO_PREFIX_AVAIL = 6


#: What every client message asks for in its Option Request option (RFC 8415 18.2.1 requires
#: SOL_MAX_RT; DNS servers and the search list are RFC 3646).
REQUESTED_OPTIONS: tuple[int, ...] = (Opt.DNS_SERVERS, Opt.DOMAIN_LIST, Opt.SOL_MAX_RT)
#: Status messages are cut near this many characters (after escaping) before anyone logs them.
STATUS_MESSAGE_LIMIT = 200

_RELAY_TYPES = (12, 13)  # RELAY-FORW, RELAY-REPL (RFC 8415 7.3, 9)
_HEADER_LEN = 4  # msg-type (1) + transaction-id (3), RFC 8415 8
_OPT_HEADER = struct.Struct("!HH")  # option-code, option-len (RFC 8415 21.1)
_IA_NA_FIXED = struct.Struct("!III")  # IAID, T1, T2 (RFC 8415 21.4)
_IAADDR_FIXED = struct.Struct("!16sII")  # address, preferred, valid (RFC 8415 21.6)
_U16_MAX = 0xFFFF
_XID_MAX = 0xFFFFFF
_DUID_MIN, _DUID_MAX = 3, 130  # 2-octet type + 1..128 octets (RFC 8415 11.1)
_DUID_LL = 3  # RFC 8415 11.4
_HW_ETHERNET = 1  # IANA hardware type, RFC 8415 11.4
_FQDN_FLAG_S = 0x01  # RFC 4704 4.1: the server performs the AAAA update
_MAX_NAME = 255  # RFC 1035 3.1: a name's wire form, length octets included
_MAX_LABEL = 63  # RFC 1035 3.1
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)\Z")  # RFC 1123 2.1
_DOMAIN_LABEL = re.compile(rb"[A-Za-z0-9_-]+\Z")  # what may reach resolv.conf and logs


# -- options ---------------------------------------------------------------------------------


def _walk(data: bytes, where: str) -> Iterator[tuple[int, bytes]]:
    """(code, value) of each option in ``data`` (RFC 8415 21.1); CodecError if one overruns."""
    i, n = 0, len(data)
    while i < n:
        if n - i < _OPT_HEADER.size:
            raise CodecError(f"option header in {where} at offset {i} is cut short "
                             f"({n - i} octets left)")
        code, length = _OPT_HEADER.unpack_from(data, i)
        end = i + _OPT_HEADER.size + length
        if end > n:
            raise CodecError(f"option {code} in {where} at offset {i} runs past the end "
                             f"(length {length}, {n - i - _OPT_HEADER.size} octets left)")
        yield code, data[i + _OPT_HEADER.size : end]
        i = end


def _first(options: Iterable[tuple[int, bytes]], code: int) -> bytes | None:
    """The value of the first option ``code``; repeats are ignored (see the module docstring)."""
    return next((value for c, value in options if c == code), None)


def _option(code: int, value: bytes) -> bytes:
    """One option on the wire (RFC 8415 21.1); CodecError if code or length do not fit."""
    if not isinstance(code, int) or not 0 <= code <= _U16_MAX:
        raise CodecError(f"option code {code!r} is not in 0..65535")
    if not isinstance(value, bytes | bytearray | memoryview):
        raise CodecError(f"option {code} value must be bytes, not {type(value).__name__}")
    if len(value) > _U16_MAX:
        raise CodecError(f"option {code} value is {len(value)} octets, at most 65535 fit")
    return _OPT_HEADER.pack(code, len(value)) + bytes(value)


def _u32s(*fields: tuple[str, int]) -> bytes:
    for name, value in fields:
        if not isinstance(value, int) or not 0 <= value <= INFINITY:
            raise CodecError(f"{name} {value!r} is not a 32-bit unsigned integer")
    return struct.pack(f"!{len(fields)}I", *(value for _, value in fields))


def _status(value: bytes, where: str) -> StatusCode:
    """A Status Code option's value (RFC 8415 21.13): 2-octet code + UTF-8 message."""
    if len(value) < 2:
        raise CodecError(f"status code in {where} is {len(value)} octets, at least 2 needed")
    text = value[2:].decode("utf-8", errors="replace")
    return StatusCode(int.from_bytes(value[:2], "big"), printable(text, STATUS_MESSAGE_LIMIT))


# -- values ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusCode:
    """A Status Code option (RFC 8415 21.13); ``code`` is kept even if unknown, ``message`` is
    made printable (control characters escaped) and cut near 200 characters."""

    code: int
    message: str


@dataclass(frozen=True)
class IaAddress:
    """An IA Address option (RFC 8415 21.6); lifetimes in seconds, 0xFFFFFFFF = infinity."""

    address: IPv6Address
    preferred_s: int
    valid_s: int
    status: StatusCode | None = None

    def _encode(self) -> bytes:
        if not isinstance(self.address, IPv6Address):
            raise CodecError(f"IA address {self.address!r} is not an IPv6Address")
        lifetimes = _u32s(("preferred lifetime", self.preferred_s),
                          ("valid lifetime", self.valid_s))
        return _option(Opt.IAADDR, self.address.packed + lifetimes)

    @classmethod
    def _decode(cls, value: bytes) -> IaAddress:
        """RFC 8415 21.6: 24 fixed octets, then options (a Status Code; others skipped)."""
        if len(value) < _IAADDR_FIXED.size:
            raise CodecError(f"IAADDR is {len(value)} octets, at least 24 needed")
        packed, preferred, valid = _IAADDR_FIXED.unpack_from(value)
        nested = list(_walk(value[_IAADDR_FIXED.size :], "IAADDR"))  # all checked, not just one
        status = _first(nested, Opt.STATUS_CODE)
        return cls(IPv6Address(packed), preferred, valid,
                   None if status is None else _status(status, "IAADDR"))


@dataclass(frozen=True)
class IaNa:
    """An IA_NA option (RFC 8415 21.4): IAID, T1/T2 in seconds, its addresses and status."""

    iaid: int
    t1_s: int
    t2_s: int
    addresses: tuple[IaAddress, ...] = ()
    status: StatusCode | None = None

    def encode(self) -> bytes:
        """The option's value: IAID, T1, T2, one IAADDR per address (their status and ours are
        never sent: only servers send Status Code, RFC 8415 21.13)."""
        out = _u32s(("iaid", self.iaid), ("t1", self.t1_s), ("t2", self.t2_s))
        return out + b"".join(_as_ia_address(a)._encode() for a in self.addresses)

    @classmethod
    def _decode(cls, value: bytes) -> IaNa:
        """RFC 8415 21.4: 12 fixed octets, then IAADDR and Status Code options (others
        skipped; the first Status Code wins)."""
        if len(value) < _IA_NA_FIXED.size:
            raise CodecError(f"IA_NA is {len(value)} octets, at least 12 needed")
        iaid, t1, t2 = _IA_NA_FIXED.unpack_from(value)
        addresses: list[IaAddress] = []
        status: StatusCode | None = None
        for code, sub in _walk(value[_IA_NA_FIXED.size :], "IA_NA"):
            if code == Opt.IAADDR:
                addresses.append(IaAddress._decode(sub))
            elif code == Opt.STATUS_CODE and status is None:
                status = _status(sub, "IA_NA")
        return cls(iaid, t1, t2, tuple(addresses), status)


def _as_ia_address(value: object) -> IaAddress:
    if not isinstance(value, IaAddress):
        raise CodecError(f"IA_NA addresses must be IaAddress, not {type(value).__name__}")
    return value


@dataclass(frozen=True)
class Message6:
    """One client/server message (RFC 8415 8): type, 24-bit transaction id, options in wire
    order as (code, value), repeats kept."""

    msg_type: int
    xid: int
    options: tuple[tuple[int, bytes], ...]

    def encode(self) -> bytes:
        """Wire bytes: msg-type, transaction-id, the options in order; CodecError if a field
        does not fit."""
        if not isinstance(self.msg_type, int) or not 0 <= self.msg_type <= 0xFF:
            raise CodecError(f"msg_type {self.msg_type!r} is not in 0..255")
        _check_xid(self.xid)
        body = b"".join(_option(code, value) for code, value in self.options)
        return bytes((self.msg_type,)) + self.xid.to_bytes(3, "big") + body

    @classmethod
    def decode(cls, data: bytes) -> Message6:
        """Parse wire bytes (RFC 8415 8, 21.1); option values are not looked into.
        CodecError if shorter than the 4-octet header, a relay message (RFC 8415 9), or an
        option header or length runs past the end."""
        data = bytes(data)
        if len(data) < _HEADER_LEN:
            raise CodecError(f"message is {len(data)} octets, shorter than the 4-octet header")
        if data[0] in _RELAY_TYPES:
            raise CodecError(f"message type {data[0]} is a relay message (RFC 8415 9)")
        options = tuple(_walk(data[_HEADER_LEN:], "message"))
        return cls(data[0], int.from_bytes(data[1:4], "big"), options)

    def option(self, code: int) -> bytes | None:
        """The value of the first option ``code``; None if absent."""
        return _first(self.options, code)

    @property
    def client_id(self) -> bytes | None:
        """Client Identifier (RFC 8415 21.2): the DUID; None if absent, CodecError if not a
        3..130-octet DUID (RFC 8415 11.1)."""
        value = self.option(Opt.CLIENTID)
        return None if value is None else _check_duid(value, "client identifier")

    @property
    def server_id(self) -> bytes | None:
        """Server Identifier (RFC 8415 21.3): the DUID; None if absent, CodecError if not a
        3..130-octet DUID (RFC 8415 11.1)."""
        value = self.option(Opt.SERVERID)
        return None if value is None else _check_duid(value, "server identifier")

    @property
    def status(self) -> StatusCode | None:
        """The top-level Status Code (RFC 8415 21.13); None if absent (RFC 8415 says absence
        means Success), CodecError if shorter than 2 octets."""
        value = self.option(Opt.STATUS_CODE)
        return None if value is None else _status(value, "message")

    @property
    def preference(self) -> int:
        """Preference (RFC 8415 21.8); 0 when absent (RFC 8415 18.2.9), CodecError if not one
        octet."""
        value = self.option(Opt.PREFERENCE)
        if value is None:
            return 0
        if len(value) != 1:
            raise CodecError(f"preference option is {len(value)} octets, 1 expected")
        return value[0]

    @property
    def rapid_commit(self) -> bool:
        """Whether Rapid Commit (RFC 8415 21.14) is present; CodecError if it is not empty."""
        value = self.option(Opt.RAPID_COMMIT)
        if value:
            raise CodecError(f"rapid commit option is {len(value)} octets, 0 expected")
        return value is not None

    @property
    def dns_servers(self) -> tuple[IPv6Address, ...]:
        """DNS Recursive Name Servers (RFC 3646 3); () if absent, CodecError if the length is
        not a multiple of 16."""
        value = self.option(Opt.DNS_SERVERS)
        if value is None:
            return ()
        if len(value) % 16:
            raise CodecError(f"DNS servers option is {len(value)} octets, not a multiple of 16")
        return tuple(IPv6Address(value[i : i + 16]) for i in range(0, len(value), 16))

    @property
    def domains(self) -> tuple[str, ...]:
        """Domain Search List (RFC 3646 4) as dotted names; () if absent. CodecError unless
        every name is in uncompressed DNS wire format (RFC 8415 10, RFC 1035 3.1), ends with
        the zero octet, and has labels of letters, digits, '-' and '_' only."""
        value = self.option(Opt.DOMAIN_LIST)
        return () if value is None else _decode_names(value)

    def ia_na(self, iaid: int) -> IaNa | None:
        """The first IA_NA with this IAID, its IAADDR and Status Code options decoded; None if
        there is none. CodecError if it, or an IA_NA before it, is malformed (RFC 8415 21.4,
        21.6, 21.13)."""
        for code, value in self.options:
            if code != Opt.IA_NA:
                continue
            ia = IaNa._decode(value)
            if ia.iaid == iaid:
                return ia
        return None


# -- names and identifiers --------------------------------------------------------------------


def _decode_names(value: bytes) -> tuple[str, ...]:
    """A list of uncompressed DNS wire-format names (RFC 8415 10, RFC 1035 3.1)."""
    names: list[str] = []
    labels: list[str] = []
    size = 0
    i, n = 0, len(value)
    while i < n:
        length = value[i]
        if length == 0:
            if not labels:
                raise CodecError(f"empty (root) domain name at offset {i}")
            names.append(".".join(labels))
            labels, size = [], 0
            i += 1
            continue
        if length > _MAX_LABEL:
            raise CodecError(f"label length {length} at offset {i} is over 63 "
                             "(compression is not allowed, RFC 8415 10)")
        end = i + 1 + length
        if end > n:
            raise CodecError(f"label at offset {i} runs past the end of the domain list")
        label = value[i + 1 : end]
        if not _DOMAIN_LABEL.match(label):
            raise CodecError(f"label at offset {i} is not letters, digits, '-' or '_': "
                             f"{printable(label.decode('latin-1'), 80)!r}")
        size += 1 + length
        if size + 1 > _MAX_NAME:
            raise CodecError(f"domain name at offset {i} is longer than 255 octets")
        labels.append(label.decode("ascii"))
        i = end
    if labels:
        raise CodecError("the last domain name is not terminated by a zero octet")
    return tuple(names)


def _check_duid(duid: bytes, what: str) -> bytes:
    if not isinstance(duid, bytes | bytearray) or not _DUID_MIN <= len(duid) <= _DUID_MAX:
        size = len(duid) if isinstance(duid, bytes | bytearray) else type(duid).__name__
        raise CodecError(f"{what} must be a 3..130-octet DUID (RFC 8415 11.1), got {size}")
    return bytes(duid)


def _check_xid(xid: int) -> None:
    if not isinstance(xid, int) or not 0 <= xid <= _XID_MAX:
        raise CodecError(f"xid {xid!r} is not a 24-bit unsigned integer (RFC 8415 8)")


def duid_ll(mac: bytes) -> bytes:
    """DUID-LL (RFC 8415 11.4): type 3, hardware type 1 (Ethernet), the 6-octet MAC."""
    return struct.pack("!HH", _DUID_LL, _HW_ETHERNET) + check_mac(mac, "mac")


def iaid_for_mac(mac: bytes) -> int:
    """An IAID that stays the same for this MAC (RFC 8415 12: consistent across restarts):
    the MAC's last 4 octets as a big-endian integer."""
    return int.from_bytes(check_mac(mac, "mac")[2:], "big")


class ClientDuid(bytes):
    """A client's DUID with its network's wish about DNS: `register_dns` says whether the
    Client FQDN option asks the server to update the AAAA RR (S=1) or not (S=0). Being
    bytes, it is the socket's `client_id` and reaches every message built from it; a plain
    DUID asks for the update (S=1)."""

    register_dns: bool

    def __new__(cls, value: bytes, *, register_dns: bool) -> ClientDuid:
        self = super().__new__(cls, value)
        self.register_dns = register_dns
        return self


def fqdn_option(hostname: str, *, server_updates: bool = True) -> bytes:
    """Client FQDN value (RFC 4704 4): flags with S=1 (the server updates AAAA, 4.1) if
    `server_updates`, else 0 (S=0, N=0: the name is given, no update is asked for), then the
    name in DNS wire format (4.2): a single label as a partial name (no terminating zero), a
    dotted name as fully qualified (with it). CodecError unless an RFC 1123 host name whose
    wire form fits 255 octets."""
    if not isinstance(hostname, str):
        raise CodecError(f"host name must be a string, not {type(hostname).__name__}")
    labels = hostname.split(".")
    for label in labels:
        if not _HOST_LABEL.match(label):
            raise CodecError(f"host name {printable(hostname, 80)!r} has an invalid label "
                             f"{printable(label, 80)!r} (RFC 1123 2.1)")
    wire = b"".join(bytes((len(label),)) + label.encode("ascii") for label in labels)
    if len(labels) > 1:
        wire += b"\x00"
    if len(wire) > _MAX_NAME:
        raise CodecError(f"host name is {len(wire)} octets on the wire, at most 255 allowed")
    return bytes((_FQDN_FLAG_S if server_updates else 0,)) + wire


# -- client message builders (RFC 8415 18.2) --------------------------------------------------


def _elapsed(elapsed_cs: int) -> bytes:
    """Elapsed Time (RFC 8415 21.9): hundredths of a second, 0xFFFF for anything longer."""
    if not isinstance(elapsed_cs, int) or elapsed_cs < 0:
        raise CodecError(f"elapsed_cs {elapsed_cs!r} is not a non-negative integer")
    return min(elapsed_cs, _U16_MAX).to_bytes(2, "big")


def _to_server(ia: IaNa, *, need_address: bool) -> IaNa:
    """``ia`` as a client sends it: T1/T2 and lifetimes 0, statuses dropped. RFC 8415 21.4 and
    21.6: in client messages these SHOULD be 0 and the server MUST ignore them; the server
    decides the lifetimes, and 0 keeps the message free of stale values."""
    if not isinstance(ia, IaNa):
        raise CodecError(f"ia must be an IaNa, not {type(ia).__name__}")
    if need_address and not ia.addresses:
        raise CodecError(f"IA_NA {ia.iaid!r} has no address")
    addresses = tuple(IaAddress(_as_ia_address(a).address, 0, 0) for a in ia.addresses)
    return IaNa(ia.iaid, 0, 0, addresses)


def _build(
    msg_type: MessageType,
    *,
    xid: int,
    client_id: bytes,
    ia: IaNa,
    elapsed_cs: int,
    server_id: bytes | None = None,
    hostname: str | None = None,
    rapid_commit: bool = False,
) -> Message6:
    """Options in this order: CLIENTID, [SERVERID], IA_NA, ELAPSED_TIME, ORO, [RAPID_COMMIT],
    [CLIENT_FQDN]. RFC 8415 21.9: Elapsed Time in every client message; 21.7: an ORO."""
    _check_xid(xid)
    options: list[tuple[int, bytes]] = [(Opt.CLIENTID, _check_duid(client_id, "client_id"))]
    if server_id is not None:
        options.append((Opt.SERVERID, _check_duid(server_id, "server_id")))
    options.append((Opt.IA_NA, ia.encode()))
    options.append((Opt.ELAPSED_TIME, _elapsed(elapsed_cs)))
    options.append((Opt.ORO, struct.pack(f"!{len(REQUESTED_OPTIONS)}H", *REQUESTED_OPTIONS)))
    if rapid_commit:
        options.append((Opt.RAPID_COMMIT, b""))
    if hostname:
        updates = client_id.register_dns if isinstance(client_id, ClientDuid) else True
        options.append((Opt.CLIENT_FQDN, fqdn_option(hostname, server_updates=updates)))
    return Message6(msg_type, xid, tuple(options))


def solicit(*, xid: int, client_id: bytes, iaid: int, rapid_commit: bool = True,
            hostname: str | None = None, elapsed_cs: int = 0) -> Message6:
    """SOLICIT (RFC 8415 18.2.1): an IA_NA with T1=T2=0 and no address hint, Rapid Commit if
    we accept a two-message exchange (18.2.1, 21.14)."""
    return _build(MessageType.SOLICIT, xid=xid, client_id=client_id, ia=IaNa(iaid, 0, 0),
                  elapsed_cs=elapsed_cs, hostname=hostname, rapid_commit=rapid_commit)


def request(*, xid: int, client_id: bytes, server_id: bytes, ia: IaNa,
            hostname: str | None = None, elapsed_cs: int = 0) -> Message6:
    """REQUEST (RFC 8415 18.2.2) to the server that advertised ``ia``: its addresses asked for,
    T1/T2 and lifetimes sent as 0 (21.4, 21.6)."""
    return _build(MessageType.REQUEST, xid=xid, client_id=client_id, server_id=server_id,
                  ia=_to_server(ia, need_address=False), elapsed_cs=elapsed_cs,
                  hostname=hostname)


def renew(*, xid: int, client_id: bytes, server_id: bytes, ia: IaNa,
          hostname: str | None = None, elapsed_cs: int = 0) -> Message6:
    """RENEW (RFC 8415 18.2.4) to the server that granted ``ia``; T1/T2 and lifetimes 0."""
    return _build(MessageType.RENEW, xid=xid, client_id=client_id, server_id=server_id,
                  ia=_to_server(ia, need_address=False), elapsed_cs=elapsed_cs,
                  hostname=hostname)


def rebind(*, xid: int, client_id: bytes, ia: IaNa, hostname: str | None = None,
           elapsed_cs: int = 0) -> Message6:
    """REBIND (RFC 8415 18.2.5): like RENEW but to any server, so no Server Identifier."""
    return _build(MessageType.REBIND, xid=xid, client_id=client_id,
                  ia=_to_server(ia, need_address=False), elapsed_cs=elapsed_cs,
                  hostname=hostname)


def confirm(*, xid: int, client_id: bytes, ia: IaNa, elapsed_cs: int = 0) -> Message6:
    """CONFIRM (RFC 8415 18.2.3): are ``ia``'s addresses still on link? No Server Identifier,
    T1/T2 and lifetimes 0; CodecError if ``ia`` has no address."""
    return _build(MessageType.CONFIRM, xid=xid, client_id=client_id,
                  ia=_to_server(ia, need_address=True), elapsed_cs=elapsed_cs)


def release(*, xid: int, client_id: bytes, server_id: bytes, ia: IaNa,
            elapsed_cs: int = 0) -> Message6:
    """RELEASE (RFC 8415 18.2.7) of ``ia``'s addresses; CodecError if it has none."""
    return _build(MessageType.RELEASE, xid=xid, client_id=client_id, server_id=server_id,
                  ia=_to_server(ia, need_address=True), elapsed_cs=elapsed_cs)


def decline(*, xid: int, client_id: bytes, server_id: bytes, ia: IaNa,
            elapsed_cs: int = 0) -> Message6:
    """DECLINE (RFC 8415 18.2.8) of ``ia``'s addresses (found in use); CodecError if none."""
    return _build(MessageType.DECLINE, xid=xid, client_id=client_id, server_id=server_id,
                  ia=_to_server(ia, need_address=True), elapsed_cs=elapsed_cs)
