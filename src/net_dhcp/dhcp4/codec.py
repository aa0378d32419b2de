"""Pure DHCPv4 (RFC 2131/2132), IPv4/UDP framing (RFC 791/768) and ARP (RFC 826/5227) codecs.

Everything here is a pure function of its arguments: no sockets, no I/O, no clock, no randomness.
Malformed wire input raises :class:`CodecError` (decoders) or yields ``None`` (the IPv4/UDP
parser and the typed option accessors, which never raise).
"""

from __future__ import annotations

import enum
import re
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

__all__ = [
    "ARP_REPLY",
    "ARP_REQUEST",
    "BROADCAST_FLAG",
    "CLIENT_PORT",
    "DEFAULT_PARAMS",
    "MAGIC_COOKIE",
    "SERVER_PORT",
    "ArpPacket",
    "CodecError",
    "DhcpMessage",
    "MessageType",
    "Opt",
    "UdpDatagram",
    "arp_announcement",
    "arp_conflicts",
    "arp_probe",
    "build_udp_ipv4",
    "client_id_for_mac",
    "decline",
    "discover",
    "mac_from_str",
    "mac_to_str",
    "parse_udp_ipv4",
    "release",
    "request_init_reboot",
    "request_rebinding",
    "request_renewing",
    "request_selecting",
]


class CodecError(ValueError):
    """Malformed input (wire bytes or builder arguments); the message says what was wrong."""


class MessageType(enum.IntEnum):
    """DHCP message types carried in option 53 (RFC 2132 section 9.6)."""

    DISCOVER = 1
    OFFER = 2
    REQUEST = 3
    DECLINE = 4
    ACK = 5
    NAK = 6
    RELEASE = 7
    INFORM = 8


class Opt(enum.IntEnum):
    """DHCP option codes used by this project (RFC 2132 unless noted)."""

    PAD = 0  # RFC 2132 3.1
    SUBNET_MASK = 1  # RFC 2132 3.3
    ROUTER = 3  # RFC 2132 3.5
    DNS = 6  # RFC 2132 3.8
    HOST_NAME = 12  # RFC 2132 3.14
    DOMAIN_NAME = 15  # RFC 2132 3.17
    MTU = 26  # RFC 2132 5.1
    BROADCAST = 28  # RFC 2132 5.3
    STATIC_ROUTES = 33  # RFC 2132 5.8
    REQUESTED_IP = 50  # RFC 2132 9.1
    LEASE_TIME = 51  # RFC 2132 9.2
    OVERLOAD = 52  # RFC 2132 9.3
    MESSAGE_TYPE = 53  # RFC 2132 9.6
    SERVER_ID = 54  # RFC 2132 9.7
    PARAMS = 55  # RFC 2132 9.8
    MESSAGE = 56  # RFC 2132 9.9
    MAX_SIZE = 57  # RFC 2132 9.10
    T1 = 58  # RFC 2132 9.11
    T2 = 59  # RFC 2132 9.12
    VENDOR_CLASS = 60  # RFC 2132 9.13
    CLIENT_ID = 61  # RFC 2132 9.14
    DOMAIN_SEARCH = 119  # RFC 3397
    CLASSLESS_ROUTES = 121  # RFC 3442
    END = 255  # RFC 2132 3.2


#: The BROADCAST bit of the ``flags`` field (RFC 2131 section 2, figure 2).
BROADCAST_FLAG = 0x8000
#: UDP port DHCP clients listen on (RFC 2131 section 4.1).
CLIENT_PORT = 68
#: UDP port DHCP servers listen on (RFC 2131 section 4.1).
SERVER_PORT = 67
#: Options a client asks for in option 55 (RFC 2132 9.8): mask, router, DNS, host name, domain,
#: MTU, broadcast, lease time, T1, T2, domain search (RFC 3397), classless routes (RFC 3442).
DEFAULT_PARAMS: tuple[int, ...] = (1, 3, 6, 12, 15, 26, 28, 51, 58, 59, 119, 121)
#: The four octets 99.130.83.99 that open the options field (RFC 2131 section 3, RFC 2132 2).
MAGIC_COOKIE = b"\x63\x82\x53\x63"
#: Value of option 57 put in DISCOVER and REQUEST: an Ethernet MTU (RFC 2132 9.10, >= 576).
MAX_MESSAGE_SIZE = 1500

BOOTREQUEST = 1  # RFC 2131 section 2, ``op``
BOOTREPLY = 2  # RFC 2131 section 2, ``op``

# RFC 2131 section 2: op htype hlen hops xid secs flags ciaddr yiaddr siaddr giaddr
# chaddr(16) sname(64) file(128) -- 236 octets before the options field.
_HEADER = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")
_HEADER_LEN = _HEADER.size
_SNAME_LEN = 64
_FILE_LEN = 128
_CHADDR_LEN = 16
# RFC 951/1542: a BOOTP message is at least 300 octets (236 header + 64 vendor area).
_BOOTP_MIN_LEN = 300
_MAX_OPTION_CHUNK = 255  # RFC 3396 section 6: longer options are split into <=255-octet pieces
# RFC 2132 9.3 option overload values.
_OVERLOAD_FILE = 1
_OVERLOAD_SNAME = 2
_MIN_MTU = 68  # RFC 2132 5.1: the minimum legal MTU value
_IP0 = IPv4Address(0)


def _ip_from(raw: bytes) -> IPv4Address:
    return IPv4Address(raw)


def _ip_list(value: bytes | None) -> list[IPv4Address]:
    if not value or len(value) % 4:
        return []
    return [IPv4Address(value[i : i + 4]) for i in range(0, len(value), 4)]


def _text(value: bytes | None) -> str | None:
    """NVT ASCII text with trailing NULs removed; None if absent, empty or not printable ASCII."""
    if value is None:
        return None
    value = value.rstrip(b"\x00")
    if not value or any(b < 0x20 or b > 0x7E for b in value):
        return None
    return value.decode("ascii")


def _iter_option_area(area: bytes, where: str) -> Iterator[tuple[int, bytes]]:
    """Yield (code, value) of each option in ``area`` up to END; CodecError on overrun."""
    i = 0
    n = len(area)
    while i < n:
        code = area[i]
        if code == Opt.PAD:
            i += 1
            continue
        if code == Opt.END:
            return
        if i + 1 >= n:
            raise CodecError(f"option {code} in {where} at offset {i} has no length octet")
        length = area[i + 1]
        end = i + 2 + length
        if end > n:
            raise CodecError(
                f"option {code} in {where} at offset {i} runs past the end "
                f"(length {length}, {n - i - 2} octets left)"
            )
        yield code, area[i + 2 : end]
        i = end


def _encode_options(options: dict[int, bytes]) -> bytes:
    out = bytearray()
    codes = list(options)
    if Opt.MESSAGE_TYPE in options:
        codes.remove(Opt.MESSAGE_TYPE)
        codes.insert(0, Opt.MESSAGE_TYPE)
    for code in codes:
        if not isinstance(code, int) or not 1 <= code <= 254:
            raise CodecError(f"option code {code!r} is not in 1..254")
        value = options[code]
        if not isinstance(value, bytes | bytearray | memoryview):
            raise CodecError(f"option {code} value must be bytes, not {type(value).__name__}")
        value = bytes(value)
        if not value:
            out += bytes((code, 0))
            continue
        for start in range(0, len(value), _MAX_OPTION_CHUNK):
            chunk = value[start : start + _MAX_OPTION_CHUNK]
            out += bytes((code, len(chunk)))
            out += chunk
    out.append(Opt.END)
    return bytes(out)


def _u32(value: bytes | None) -> int | None:
    if value is None or len(value) != 4:
        return None
    return int.from_bytes(value, "big")


def _one_ip(value: bytes | None) -> IPv4Address | None:
    if value is None or len(value) != 4:
        return None
    return IPv4Address(value)


def _mask_prefixlen(mask: IPv4Address) -> int | None:
    bits = int(mask)
    inverted = ~bits & 0xFFFFFFFF
    if inverted & (inverted + 1):
        return None  # ones are not contiguous from the top
    return 32 - inverted.bit_length()


@dataclass
class DhcpMessage:
    """One BOOTP/DHCP message (RFC 2131 section 2); ``options`` maps code -> value in wire order."""

    op: int
    xid: int
    chaddr: bytes
    secs: int = 0
    flags: int = 0
    ciaddr: IPv4Address = _IP0
    yiaddr: IPv4Address = _IP0
    siaddr: IPv4Address = _IP0
    giaddr: IPv4Address = _IP0
    options: dict[int, bytes] = field(default_factory=dict)
    htype: int = 1
    hlen: int = 6
    hops: int = 0
    sname: bytes = b""
    file: bytes = b""

    # -- wire format ---------------------------------------------------------------------------

    def encode(self) -> bytes:
        """Wire bytes: header, cookie, options (53 first, then dict order; >255 split per RFC 3396),
        END, PAD up to 300 octets; CodecError if a field does not fit."""
        if len(self.chaddr) > _CHADDR_LEN:
            raise CodecError(f"chaddr is {len(self.chaddr)} octets, at most 16 fit")
        if not 0 <= self.hlen <= _CHADDR_LEN:
            raise CodecError(f"hlen {self.hlen} is not in 0..16")
        if len(self.sname) > _SNAME_LEN:
            raise CodecError(f"sname is {len(self.sname)} octets, at most 64 fit")
        if len(self.file) > _FILE_LEN:
            raise CodecError(f"file is {len(self.file)} octets, at most 128 fit")
        try:
            header = _HEADER.pack(
                self.op,
                self.htype,
                self.hlen,
                self.hops,
                self.xid,
                self.secs,
                self.flags,
                self.ciaddr.packed,
                self.yiaddr.packed,
                self.siaddr.packed,
                self.giaddr.packed,
                self.chaddr,
                self.sname,
                self.file,
            )
        except struct.error as exc:
            raise CodecError(f"header field out of range: {exc}") from exc
        data = header + MAGIC_COOKIE + _encode_options(self.options)
        if len(data) < _BOOTP_MIN_LEN:
            data += bytes(_BOOTP_MIN_LEN - len(data))
        return data

    @classmethod
    def decode(cls, data: bytes) -> DhcpMessage:
        """Parse wire bytes; repeated options are concatenated (RFC 3396), PAD skipped, stops at
        END, sname/file parsed when option 52 says so; CodecError on short, bad cookie, hlen>16 or
        an option running past its area."""
        data = bytes(data)
        if len(data) < _HEADER_LEN + len(MAGIC_COOKIE):
            raise CodecError(f"message is {len(data)} octets, shorter than the 240-octet minimum")
        (
            op,
            htype,
            hlen,
            hops,
            xid,
            secs,
            flags,
            ciaddr,
            yiaddr,
            siaddr,
            giaddr,
            chaddr,
            sname,
            file_,
        ) = _HEADER.unpack_from(data)
        if hlen > _CHADDR_LEN:
            raise CodecError(f"hlen {hlen} is larger than the 16-octet chaddr field")
        cookie = data[_HEADER_LEN : _HEADER_LEN + 4]
        if cookie != MAGIC_COOKIE:
            raise CodecError(f"bad magic cookie {cookie.hex()} (expected 63825363)")

        options: dict[int, bytes] = {}

        def collect(area: bytes, where: str) -> None:
            for code, value in _iter_option_area(area, where):
                options[code] = options.get(code, b"") + value

        collect(data[_HEADER_LEN + 4 :], "options")
        overload = options.get(Opt.OVERLOAD)
        overload_flags = overload[0] if overload is not None and len(overload) == 1 else 0
        if overload_flags not in (1, 2, 3):
            overload_flags = 0  # RFC 2132 9.3 allows only 1..3; ignore anything else
        # RFC 2131 4.1: options field first, then 'file', then 'sname'.
        if overload_flags & _OVERLOAD_FILE:
            collect(file_, "file")
            file_ = b""
        else:
            file_ = file_.split(b"\x00", 1)[0]
        if overload_flags & _OVERLOAD_SNAME:
            collect(sname, "sname")
            sname = b""
        else:
            sname = sname.split(b"\x00", 1)[0]
        return cls(
            op=op,
            xid=xid,
            chaddr=chaddr[:hlen],
            secs=secs,
            flags=flags,
            ciaddr=_ip_from(ciaddr),
            yiaddr=_ip_from(yiaddr),
            siaddr=_ip_from(siaddr),
            giaddr=_ip_from(giaddr),
            options=options,
            htype=htype,
            hlen=hlen,
            hops=hops,
            sname=sname,
            file=file_,
        )

    # -- typed accessors (never raise) --------------------------------------------------------

    @property
    def message_type(self) -> MessageType | None:
        """Option 53 as a MessageType; None if absent, not one octet or an unknown type."""
        value = self.options.get(Opt.MESSAGE_TYPE)
        if value is None or len(value) != 1:
            return None
        try:
            return MessageType(value[0])
        except ValueError:
            return None

    @property
    def server_id(self) -> IPv4Address | None:
        """Option 54 (server identifier); None if absent or not 4 octets."""
        return _one_ip(self.options.get(Opt.SERVER_ID))

    @property
    def requested_ip(self) -> IPv4Address | None:
        """Option 50 (requested IP address); None if absent or not 4 octets."""
        return _one_ip(self.options.get(Opt.REQUESTED_IP))

    @property
    def lease_time_s(self) -> int | None:
        """Option 51 in seconds (0xffffffff = infinite, returned as is); None if absent/bad."""
        return _u32(self.options.get(Opt.LEASE_TIME))

    @property
    def renewal_time_s(self) -> int | None:
        """Option 58 (T1) in seconds; None if absent or not 4 octets."""
        return _u32(self.options.get(Opt.T1))

    @property
    def rebinding_time_s(self) -> int | None:
        """Option 59 (T2) in seconds; None if absent or not 4 octets."""
        return _u32(self.options.get(Opt.T2))

    @property
    def subnet_mask(self) -> IPv4Address | None:
        """Option 1 (subnet mask); None if absent or not 4 octets."""
        return _one_ip(self.options.get(Opt.SUBNET_MASK))

    @property
    def prefixlen(self) -> int | None:
        """Prefix length of option 1; None if absent, malformed or not a contiguous mask."""
        mask = self.subnet_mask
        return None if mask is None else _mask_prefixlen(mask)

    @property
    def routers(self) -> list[IPv4Address]:
        """Option 3 (routers, preferred first); [] if absent or not a multiple of 4 octets."""
        return _ip_list(self.options.get(Opt.ROUTER))

    @property
    def dns_servers(self) -> list[IPv4Address]:
        """Option 6 (DNS servers); [] if absent or not a multiple of 4 octets."""
        return _ip_list(self.options.get(Opt.DNS))

    @property
    def domain_name(self) -> str | None:
        """Option 15 as text (trailing NULs dropped); None if absent, empty or not printable."""
        return _text(self.options.get(Opt.DOMAIN_NAME))

    @property
    def host_name(self) -> str | None:
        """Option 12 as text (trailing NULs dropped); None if absent, empty or not printable."""
        return _text(self.options.get(Opt.HOST_NAME))

    @property
    def mtu(self) -> int | None:
        """Option 26 (interface MTU); None if absent, not 2 octets or below the legal 68."""
        value = self.options.get(Opt.MTU)
        if value is None or len(value) != 2:
            return None
        mtu = int.from_bytes(value, "big")
        return mtu if mtu >= _MIN_MTU else None

    @property
    def error_message(self) -> str | None:
        """Option 56 as text (non-ASCII replaced, trailing NULs dropped); None if absent/empty."""
        value = self.options.get(Opt.MESSAGE)
        if value is None:
            return None
        value = value.rstrip(b"\x00")
        return value.decode("ascii", errors="replace") if value else None

    @property
    def classless_routes(self) -> list[tuple[IPv4Network, IPv4Address]]:
        """Option 121 (RFC 3442) as (destination, gateway); gateway 0.0.0.0 = on-link; [] if
        absent or malformed. Bits beyond the prefix width are masked off."""
        value = self.options.get(Opt.CLASSLESS_ROUTES)
        if not value:
            return []
        routes: list[tuple[IPv4Network, IPv4Address]] = []
        i = 0
        n = len(value)
        while i < n:
            width = value[i]
            if width > 32:
                return []
            significant = (width + 7) // 8
            end = i + 1 + significant + 4
            if end > n:
                return []
            dest = value[i + 1 : i + 1 + significant] + bytes(4 - significant)
            gateway = IPv4Address(value[i + 1 + significant : end])
            routes.append((IPv4Network((dest, width), strict=False), gateway))
            i = end
        return routes

    @property
    def static_routes(self) -> list[tuple[IPv4Network, IPv4Address]]:
        """Option 33 (RFC 2132 5.8) as (destination/32, router), 0.0.0.0 destinations skipped;
        [] if absent or not a multiple of 8 octets."""
        value = self.options.get(Opt.STATIC_ROUTES)
        if not value or len(value) % 8:
            return []
        routes: list[tuple[IPv4Network, IPv4Address]] = []
        for i in range(0, len(value), 8):
            dest = IPv4Address(value[i : i + 4])
            if dest == _IP0:
                continue  # RFC 2132 5.8: the default route is illegal here
            routes.append((IPv4Network((dest, 32)), IPv4Address(value[i + 4 : i + 8])))
        return routes

    @property
    def client_id(self) -> bytes | None:
        """Option 61 raw value (type octet + identifier); None if absent or shorter than 2."""
        value = self.options.get(Opt.CLIENT_ID)
        if value is None or len(value) < 2:
            return None
        return value


# -- client message builders (RFC 2131 section 4.4.1, table 5) ----------------------------------

_LABEL_RE = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)\Z")


def _check_host_name(name: str) -> bytes:
    """ASCII bytes of an RFC 1123 host name or FQDN (<= 255 octets); CodecError otherwise."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise CodecError(f"host name {name!r} contains control characters")
    try:
        raw = name.encode("ascii")
    except UnicodeEncodeError as exc:
        raise CodecError(f"host name {name!r} is not ASCII") from exc
    if len(raw) > 255:
        raise CodecError(f"host name is {len(raw)} octets, at most 255 allowed")
    for label in name.split("."):
        if not _LABEL_RE.match(label):
            raise CodecError(f"host name {name!r} has an invalid label {label!r} (RFC 1123)")
    return raw


def _check_mac(mac: bytes, what: str = "chaddr") -> bytes:
    if not isinstance(mac, bytes | bytearray) or len(mac) != 6:
        raise CodecError(f"{what} must be a 6-octet MAC address, got {mac!r}")
    return bytes(mac)


def _check_client_id(client_id: bytes) -> bytes:
    if not 2 <= len(client_id) <= 255:
        raise CodecError(f"client_id must be 2..255 octets (RFC 2132 9.14), got {len(client_id)}")
    return bytes(client_id)


def _check_params(params: Sequence[int]) -> bytes:
    for code in params:
        if not 1 <= code <= 254:
            raise CodecError(f"parameter request code {code} is not in 1..254")
    return bytes(params)


def _build(
    mtype: MessageType,
    *,
    xid: int,
    chaddr: bytes,
    client_id: bytes,
    middle: dict[int, bytes],
    host_name: str | None = None,
    params: Sequence[int] | None = None,
    max_size: bool = False,
    broadcast: bool = False,
    secs: int = 0,
    ciaddr: IPv4Address = _IP0,
) -> DhcpMessage:
    if not 0 <= xid <= 0xFFFFFFFF:
        raise CodecError(f"xid {xid} is not a 32-bit unsigned integer")
    if not 0 <= secs <= 0xFFFF:
        raise CodecError(f"secs {secs} is not a 16-bit unsigned integer")
    options: dict[int, bytes] = {
        Opt.MESSAGE_TYPE: bytes((mtype,)),
        Opt.CLIENT_ID: _check_client_id(client_id),
    }
    options.update(middle)
    if max_size:
        options[Opt.MAX_SIZE] = MAX_MESSAGE_SIZE.to_bytes(2, "big")
    if host_name:
        options[Opt.HOST_NAME] = _check_host_name(host_name)
    if params is not None:
        encoded = _check_params(params)
        if encoded:
            options[Opt.PARAMS] = encoded
    mac = _check_mac(chaddr)
    return DhcpMessage(
        op=BOOTREQUEST,
        xid=xid,
        chaddr=mac,
        secs=secs,
        flags=BROADCAST_FLAG if broadcast else 0,
        ciaddr=ciaddr,
        options=options,
        hlen=len(mac),
    )


def discover(
    *,
    xid: int,
    chaddr: bytes,
    client_id: bytes,
    host_name: str | None = None,
    params: Sequence[int] = DEFAULT_PARAMS,
    broadcast: bool = True,
    secs: int = 0,
) -> DhcpMessage:
    """DHCPDISCOVER: options 53, 61, 57, [12], 55; ciaddr 0 (RFC 2131 4.4.1)."""
    return _build(
        MessageType.DISCOVER,
        xid=xid,
        chaddr=chaddr,
        client_id=client_id,
        middle={},
        host_name=host_name,
        params=params,
        max_size=True,
        broadcast=broadcast,
        secs=secs,
    )


def request_selecting(
    *,
    offer: DhcpMessage,
    xid: int,
    chaddr: bytes,
    client_id: bytes,
    host_name: str | None = None,
    params: Sequence[int] = DEFAULT_PARAMS,
    broadcast: bool = True,
    secs: int = 0,
) -> DhcpMessage:
    """DHCPREQUEST (SELECTING): 50 = offer.yiaddr, 54 = offer's server id, ciaddr 0 (RFC 2131
    4.3.2); CodecError if the offer lacks a server id or yiaddr."""
    server_id = offer.server_id
    if server_id is None:
        raise CodecError("offer carries no valid server identifier (option 54)")
    if offer.yiaddr == _IP0:
        raise CodecError("offer carries no address (yiaddr is 0.0.0.0)")
    return _build(
        MessageType.REQUEST,
        xid=xid,
        chaddr=chaddr,
        client_id=client_id,
        middle={Opt.REQUESTED_IP: offer.yiaddr.packed, Opt.SERVER_ID: server_id.packed},
        host_name=host_name,
        params=params,
        max_size=True,
        broadcast=broadcast,
        secs=secs,
    )


def request_init_reboot(
    *,
    xid: int,
    chaddr: bytes,
    client_id: bytes,
    requested: IPv4Address,
    host_name: str | None = None,
    params: Sequence[int] = DEFAULT_PARAMS,
    broadcast: bool = True,
    secs: int = 0,
) -> DhcpMessage:
    """DHCPREQUEST (INIT-REBOOT): option 50 = requested, no 54, ciaddr 0 (RFC 2131 4.3.2)."""
    return _build(
        MessageType.REQUEST,
        xid=xid,
        chaddr=chaddr,
        client_id=client_id,
        middle={Opt.REQUESTED_IP: requested.packed},
        host_name=host_name,
        params=params,
        max_size=True,
        broadcast=broadcast,
        secs=secs,
    )


def _request_bound(
    *,
    xid: int,
    chaddr: bytes,
    client_id: bytes,
    ciaddr: IPv4Address,
    host_name: str | None,
    params: Sequence[int],
    secs: int,
) -> DhcpMessage:
    if ciaddr == _IP0:
        raise CodecError("ciaddr must be the bound address, not 0.0.0.0")
    return _build(
        MessageType.REQUEST,
        xid=xid,
        chaddr=chaddr,
        client_id=client_id,
        middle={},
        host_name=host_name,
        params=params,
        max_size=True,
        broadcast=False,
        secs=secs,
        ciaddr=ciaddr,
    )


def request_renewing(
    *,
    xid: int,
    chaddr: bytes,
    client_id: bytes,
    ciaddr: IPv4Address,
    host_name: str | None = None,
    params: Sequence[int] = DEFAULT_PARAMS,
    secs: int = 0,
) -> DhcpMessage:
    """DHCPREQUEST (RENEWING, unicast to the server): ciaddr set, no 50, no 54, flags 0
    (RFC 2131 4.3.2); CodecError if ciaddr is 0.0.0.0."""
    return _request_bound(
        xid=xid,
        chaddr=chaddr,
        client_id=client_id,
        ciaddr=ciaddr,
        host_name=host_name,
        params=params,
        secs=secs,
    )


def request_rebinding(
    *,
    xid: int,
    chaddr: bytes,
    client_id: bytes,
    ciaddr: IPv4Address,
    host_name: str | None = None,
    params: Sequence[int] = DEFAULT_PARAMS,
    secs: int = 0,
) -> DhcpMessage:
    """DHCPREQUEST (REBINDING, broadcast): same fields as RENEWING (RFC 2131 4.3.2)."""
    return _request_bound(
        xid=xid,
        chaddr=chaddr,
        client_id=client_id,
        ciaddr=ciaddr,
        host_name=host_name,
        params=params,
        secs=secs,
    )


def decline(
    *,
    xid: int,
    chaddr: bytes,
    client_id: bytes,
    requested: IPv4Address,
    server_id: IPv4Address,
    message: str | None = None,
) -> DhcpMessage:
    """DHCPDECLINE: ciaddr 0, options 53, 61, 50, 54, [56]; no 55/57/12 (RFC 2131 table 5)."""
    middle: dict[int, bytes] = {
        Opt.REQUESTED_IP: requested.packed,
        Opt.SERVER_ID: server_id.packed,
    }
    if message:
        middle[Opt.MESSAGE] = _ascii_message(message)
    return _build(
        MessageType.DECLINE,
        xid=xid,
        chaddr=chaddr,
        client_id=client_id,
        middle=middle,
    )


def _ascii_message(message: str) -> bytes:
    if any(ord(c) < 0x20 or ord(c) > 0x7E for c in message):
        raise CodecError(f"message {message!r} is not printable ASCII")
    return message.encode("ascii")


def release(
    *,
    xid: int,
    chaddr: bytes,
    client_id: bytes,
    ciaddr: IPv4Address,
    server_id: IPv4Address,
) -> DhcpMessage:
    """DHCPRELEASE: ciaddr set, options 53, 61, 54; no 50/55/57 (RFC 2131 table 5)."""
    return _build(
        MessageType.RELEASE,
        xid=xid,
        chaddr=chaddr,
        client_id=client_id,
        middle={Opt.SERVER_ID: server_id.packed},
        ciaddr=ciaddr,
    )


def client_id_for_mac(mac: bytes) -> bytes:
    """Client identifier for an Ethernet MAC: type 1 followed by the 6 octets (RFC 2132 9.14)."""
    return b"\x01" + _check_mac(mac, "mac")


def mac_to_str(mac: bytes) -> str:
    """6 octets -> "aa:bb:cc:dd:ee:ff" (lower case); CodecError if not 6 octets."""
    return ":".join(f"{b:02x}" for b in _check_mac(mac, "mac"))


_MAC_RE = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}\Z")


def mac_from_str(text: str) -> bytes:
    """Text "aa:bb:cc:dd:ee:ff" (either case) -> 6 octets; CodecError on any other text."""
    if not isinstance(text, str) or not _MAC_RE.match(text):
        raise CodecError(f"not a colon-separated MAC address: {text!r}")
    return bytes.fromhex(text.replace(":", ""))


# -- IPv4 (RFC 791) + UDP (RFC 768) framing ------------------------------------------------------

_IPV4_HEADER = struct.Struct("!BBHHHBBH4s4s")
_UDP_HEADER = struct.Struct("!HHHH")
_IPPROTO_UDP = 17
_IP_MF = 0x2000
_IP_OFFSET_MASK = 0x1FFF


@dataclass(frozen=True)
class UdpDatagram:
    """A UDP datagram lifted out of an IPv4 packet."""

    src: IPv4Address
    dst: IPv4Address
    sport: int
    dport: int
    payload: bytes


def _ones_complement_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _checksum(data: bytes) -> int:
    """RFC 1071 Internet checksum of ``data``."""
    return ~_ones_complement_sum(data) & 0xFFFF


def _udp_pseudo_header(src: IPv4Address, dst: IPv4Address, udp_length: int) -> bytes:
    return src.packed + dst.packed + struct.pack("!BBH", 0, _IPPROTO_UDP, udp_length)


def build_udp_ipv4(
    *,
    src: IPv4Address,
    dst: IPv4Address,
    sport: int,
    dport: int,
    payload: bytes,
    ttl: int = 64,
) -> bytes:
    """IPv4 packet (IHL 5, id 0, DF clear, TOS 0) carrying one UDP datagram, both checksums
    valid; CodecError on an out-of-range port/TTL or oversize payload."""
    for name, port in (("sport", sport), ("dport", dport)):
        if not 0 <= port <= 0xFFFF:
            raise CodecError(f"{name} {port} is not in 0..65535")
    if not 0 <= ttl <= 0xFF:
        raise CodecError(f"ttl {ttl} is not in 0..255")
    udp_length = _UDP_HEADER.size + len(payload)
    total_length = _IPV4_HEADER.size + udp_length
    if total_length > 0xFFFF:
        raise CodecError(f"payload of {len(payload)} octets does not fit in one IPv4 packet")
    udp_header = _UDP_HEADER.pack(sport, dport, udp_length, 0)
    udp_sum = _checksum(_udp_pseudo_header(src, dst, udp_length) + udp_header + payload)
    if udp_sum == 0:
        udp_sum = 0xFFFF  # RFC 768: a computed zero is sent as all ones
    udp_header = _UDP_HEADER.pack(sport, dport, udp_length, udp_sum)
    ip_header = _IPV4_HEADER.pack(
        0x45, 0, total_length, 0, 0, ttl, _IPPROTO_UDP, 0, src.packed, dst.packed
    )
    ip_header = ip_header[:10] + _checksum(ip_header).to_bytes(2, "big") + ip_header[12:]
    return ip_header + udp_header + bytes(payload)


def parse_udp_ipv4(packet: bytes, *, verify_udp_checksum: bool = True) -> UdpDatagram | None:
    """The UDP datagram in an IPv4 packet, or None (never raises) if not IPv4/UDP, truncated, bad
    header checksum, a fragment, or a bad nonzero UDP checksum (checked unless
    ``verify_udp_checksum`` is False, for packets the kernel flags TP_STATUS_CSUMNOTREADY)."""
    packet = bytes(packet)
    if len(packet) < _IPV4_HEADER.size:
        return None
    ver_ihl, _tos, total_length, _ident, frag, _ttl, proto, _sum, src, dst = (
        _IPV4_HEADER.unpack_from(packet)
    )
    if ver_ihl >> 4 != 4:
        return None
    ihl = (ver_ihl & 0x0F) * 4
    if ihl < _IPV4_HEADER.size or total_length < ihl or total_length > len(packet):
        return None
    if _ones_complement_sum(packet[:ihl]) != 0xFFFF:
        return None
    if frag & _IP_MF or frag & _IP_OFFSET_MASK:
        return None
    if proto != _IPPROTO_UDP:
        return None
    segment = packet[ihl:total_length]
    if len(segment) < _UDP_HEADER.size:
        return None
    sport, dport, udp_length, udp_sum = _UDP_HEADER.unpack_from(segment)
    if udp_length < _UDP_HEADER.size or udp_length > len(segment):
        return None
    datagram = segment[:udp_length]
    src_ip = IPv4Address(src)
    dst_ip = IPv4Address(dst)
    if (
        verify_udp_checksum
        and udp_sum != 0
        and _ones_complement_sum(_udp_pseudo_header(src_ip, dst_ip, udp_length) + datagram)
        != 0xFFFF
    ):
        return None
    return UdpDatagram(
        src=src_ip, dst=dst_ip, sport=sport, dport=dport, payload=datagram[_UDP_HEADER.size :]
    )


# -- ARP (RFC 826) for address conflict detection (RFC 5227) -------------------------------------

#: ARP opcode for a request (RFC 826; RFC 5227 probes and announcements are requests).
ARP_REQUEST = 1
#: ARP opcode for a reply (RFC 826).
ARP_REPLY = 2
_ARP = struct.Struct("!HHBBH6s4s6s4s")
_ARP_HTYPE_ETHERNET = 1
_ARP_PTYPE_IPV4 = 0x0800
_ZERO_MAC = bytes(6)


@dataclass(frozen=True)
class ArpPacket:
    """An Ethernet/IPv4 ARP payload (RFC 826), without the Ethernet header."""

    op: int
    sender_mac: bytes
    sender_ip: IPv4Address
    target_mac: bytes
    target_ip: IPv4Address

    def encode(self) -> bytes:
        """28 wire octets (htype 1, ptype 0x0800); CodecError on a bad MAC length or opcode."""
        if not 0 <= self.op <= 0xFFFF:
            raise CodecError(f"ARP opcode {self.op} is not in 0..65535")
        return _ARP.pack(
            _ARP_HTYPE_ETHERNET,
            _ARP_PTYPE_IPV4,
            6,
            4,
            self.op,
            _check_mac(self.sender_mac, "sender_mac"),
            self.sender_ip.packed,
            _check_mac(self.target_mac, "target_mac"),
            self.target_ip.packed,
        )

    @classmethod
    def decode(cls, data: bytes) -> ArpPacket:
        """Parse the first 28 octets (trailing padding ignored); CodecError if short or not
        Ethernet/IPv4 ARP."""
        data = bytes(data)
        if len(data) < _ARP.size:
            raise CodecError(f"ARP packet is {len(data)} octets, shorter than 28")
        htype, ptype, hlen, plen, op, sha, spa, tha, tpa = _ARP.unpack_from(data)
        if (htype, ptype, hlen, plen) != (_ARP_HTYPE_ETHERNET, _ARP_PTYPE_IPV4, 6, 4):
            raise CodecError(
                f"not an Ethernet/IPv4 ARP packet (htype {htype}, ptype {ptype:#06x}, "
                f"hlen {hlen}, plen {plen})"
            )
        return cls(
            op=op,
            sender_mac=sha,
            sender_ip=IPv4Address(spa),
            target_mac=tha,
            target_ip=IPv4Address(tpa),
        )


def arp_probe(*, sender_mac: bytes, target_ip: IPv4Address) -> ArpPacket:
    """ARP Probe (RFC 5227 2.1.1): request, sender IP 0.0.0.0, target MAC zero, target = ip."""
    return ArpPacket(
        op=ARP_REQUEST,
        sender_mac=_check_mac(sender_mac, "sender_mac"),
        sender_ip=_IP0,
        target_mac=_ZERO_MAC,
        target_ip=target_ip,
    )


def arp_announcement(*, sender_mac: bytes, ip: IPv4Address) -> ArpPacket:
    """ARP Announcement (RFC 5227 2.3): request, sender IP = target IP = ip, target MAC zero."""
    return ArpPacket(
        op=ARP_REQUEST,
        sender_mac=_check_mac(sender_mac, "sender_mac"),
        sender_ip=ip,
        target_mac=_ZERO_MAC,
        target_ip=ip,
    )


def arp_conflicts(packet: ArpPacket, *, probed_ip: IPv4Address, own_mac: bytes) -> bool:
    """RFC 5227 2.1.1: True if ``packet`` is from another MAC and either claims ``probed_ip`` as
    its sender IP or is another host's probe (sender IP 0.0.0.0) for ``probed_ip``."""
    if packet.sender_mac == own_mac:
        return False
    if packet.sender_ip == probed_ip:
        return True
    return packet.sender_ip == _IP0 and packet.target_ip == probed_ip
