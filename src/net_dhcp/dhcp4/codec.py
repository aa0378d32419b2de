"""Pure DHCPv4 (RFC 2131/2132) message codec and client message builders.

Everything here is a pure function of its arguments: no sockets, no I/O, no clock, no randomness.
Malformed wire input raises :class:`CodecError` (decoders) or yields ``None`` (the typed option
accessors, which never raise). IPv4/UDP framing is in :mod:`net_dhcp.wire.udp4`, ARP in
:mod:`net_dhcp.acd.arp_codec`.
"""

from __future__ import annotations

import enum
import re
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from ..wire.common import CodecError, check_mac

__all__ = [
    "BROADCAST_FLAG",
    "CLIENT_PORT",
    "DEFAULT_PARAMS",
    "FQDN_FLAGS",
    "MAC_PLACEHOLDER",
    "MAGIC_COOKIE",
    "SERVER_PORT",
    "ClientIdentity",
    "CodecError",
    "DhcpMessage",
    "MessageType",
    "Opt",
    "client_id_for_mac",
    "client_id_from_text",
    "decline",
    "discover",
    "fqdn_option",
    "mac_from_str",
    "mac_to_str",
    "release",
    "request_init_reboot",
    "request_rebinding",
    "request_renewing",
    "request_selecting",
]


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
    CLIENT_FQDN = 81  # RFC 4702
    RAPID_COMMIT = 80  # RFC 4039 4: no value (length 0)
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
#: Flags of the Client FQDN option we send (RFC 4702 2.1): S=1, the server does the A RR
#: update; E=1, the name is in canonical DNS wire format (2.3.1, what a client SHOULD use).
FQDN_FLAGS = 0x05
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


_SEARCH_LABEL_RE = re.compile(rb"[A-Za-z0-9_-]{1,63}\Z")
_MAX_NAME = 255


def _name_at(data: bytes, start: int) -> tuple[str, int] | None:
    """The DNS name at `start` of option 119's value (RFC 3397 2: RFC 1035 4.1.4 pointers,
    offsets into the option's value, allowed) and where the next name begins; None if
    malformed, a loop, the root name, or longer than 255 octets."""
    labels: list[str] = []
    i, end, size, jumps = start, None, 0, 0
    while True:
        if i >= len(data):
            return None
        length = data[i]
        if length & 0xC0 == 0xC0:
            if i + 1 >= len(data):
                return None
            target = ((length & 0x3F) << 8) | data[i + 1]
            if end is None:
                end = i + 2
            jumps += 1
            if target >= i or jumps > len(data):  # pointers go back, never loop
                return None
            i = target
            continue
        if length & 0xC0:
            return None
        if length == 0:
            if not labels:
                return None
            return ".".join(labels), (i + 1 if end is None else end)
        label = data[i + 1 : i + 1 + length]
        if len(label) != length or not _SEARCH_LABEL_RE.match(label):
            return None
        size += length + 1
        if size + 1 > _MAX_NAME:
            return None
        labels.append(label.decode("ascii"))
        i += 1 + length


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
    def domain_search(self) -> tuple[str, ...]:
        """Option 119 (RFC 3397) as names, compression pointers followed; () if absent or
        malformed, or if a label is not letters, digits, '-' or '_' (it may reach a
        container's resolv.conf)."""
        value = self.options.get(Opt.DOMAIN_SEARCH)
        if not value:
            return ()
        names: list[str] = []
        i = 0
        while i < len(value):
            got = _name_at(value, i)
            if got is None:
                return ()
            name, i = got
            names.append(name)
        return tuple(names)

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
    def rapid_commit(self) -> bool:
        """Option 80 (RFC 4039) present with length 0; False if absent or carrying a value."""
        return self.options.get(Opt.RAPID_COMMIT) == b""

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


class ClientIdentity(bytes):
    """A client identifier (option 61's value) with the identity options its network sends
    beside it: a Vendor Class Identifier (option 60) and whether to send the Client FQDN
    (option 81, RFC 4702) with the host name.

    It is bytes, so it goes wherever a client identifier goes: whatever keeps a client
    (the lease keepers) passes it on unchanged, and every message the client builds from
    it carries the same identity. Equal to the plain identifier it wraps.
    """

    vendor_class: bytes | None
    fqdn: bool

    def __new__(cls, value: bytes, *, vendor_class: bytes | None = None,
                fqdn: bool = False) -> ClientIdentity:
        self = super().__new__(cls, value)
        self.vendor_class = vendor_class
        self.fqdn = fqdn
        return self

    def __repr__(self) -> str:
        return (f"ClientIdentity({bytes(self)!r}, vendor_class={self.vendor_class!r}, "
                f"fqdn={self.fqdn!r})")


def _check_client_id(client_id: bytes) -> bytes:
    if not 2 <= len(client_id) <= 255:
        raise CodecError(f"client_id must be 2..255 octets (RFC 2132 9.14), got {len(client_id)}")
    return bytes(client_id)


_IDENTITY_MESSAGES = (MessageType.DISCOVER, MessageType.REQUEST)


def _check_vendor_class(value: bytes) -> bytes:
    if not 1 <= len(value) <= 255:
        raise CodecError(f"vendor class must be 1..255 octets (RFC 2132 9.13), got {len(value)}")
    return bytes(value)


def fqdn_option(host_name: str) -> bytes:
    """Client FQDN value (RFC 4702 2): flags FQDN_FLAGS (S=1: the server updates the A RR;
    E=1: canonical wire format), RCODE1 and RCODE2 0 (2.2), then the name in DNS wire format
    (2.3.1): a single label as a partial name (no terminating zero), a dotted name as fully
    qualified (with it). CodecError unless an RFC 1123 host name of at most 252 octets."""
    labels = _check_host_name(host_name).split(b".")
    wire = b"".join(bytes((len(label),)) + label for label in labels)
    if len(labels) > 1:
        wire += b"\x00"
    if len(wire) > _MAX_OPTION_CHUNK - 3:
        raise CodecError(f"host name is {len(wire)} octets on the wire, at most 252 fit "
                         "in option 81")
    return bytes((FQDN_FLAGS, 0, 0)) + wire


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
    if isinstance(client_id, ClientIdentity) and mtype in _IDENTITY_MESSAGES:
        # RFC 2131 table 5: Vendor Class in DISCOVER and REQUEST only (MUST NOT in DECLINE
        # and RELEASE); RFC 4702 3: the Client FQDN in DISCOVER and REQUEST.
        if client_id.vendor_class:
            options[Opt.VENDOR_CLASS] = _check_vendor_class(client_id.vendor_class)
        if host_name and client_id.fqdn:
            options[Opt.CLIENT_FQDN] = fqdn_option(host_name)
    if params is not None:
        encoded = _check_params(params)
        if encoded:
            options[Opt.PARAMS] = encoded
    mac = check_mac(chaddr, "chaddr")
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
    rapid_commit: bool = False,
    requested_ip: IPv4Address | None = None,
) -> DhcpMessage:
    """DHCPDISCOVER: options 53, 61, [50], [80], 57, [12], 55; ciaddr 0 (RFC 2131 4.4.1).

    ``rapid_commit`` adds the empty option 80: a server that supports RFC 4039 may then
    answer with a DHCPACK at once; one that does not ignores the option.
    ``requested_ip`` adds option 50, the address the client would like (the server may
    offer another)."""
    middle: dict[int, bytes] = {}
    if requested_ip is not None:
        middle[Opt.REQUESTED_IP] = requested_ip.packed
    if rapid_commit:
        middle[Opt.RAPID_COMMIT] = b""
    return _build(
        MessageType.DISCOVER,
        xid=xid,
        chaddr=chaddr,
        client_id=client_id,
        middle=middle,
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
    return b"\x01" + check_mac(mac, "mac")


_HEX_OCTETS_RE = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2})+\Z")
MAC_PLACEHOLDER = "{mac}"


def client_id_from_text(text: str, mac: bytes) -> bytes:
    """Option 61's value for a network's `client_id` option and one container's MAC.

    ``{mac}`` in `text` becomes the MAC ("aa:bb:cc:dd:ee:ff"). Then hex octets separated by
    colons ("01:aa:bb:cc:dd:ee:ff", at least two) are sent as those raw octets (the first is
    the type, RFC 2132 9.14); anything else as type 0 followed by the text (ASCII).
    CodecError unless 2..255 octets of printable ASCII."""
    text = text.replace(MAC_PLACEHOLDER, mac_to_str(mac))
    if _HEX_OCTETS_RE.match(text):
        return _check_client_id(bytes.fromhex(text.replace(":", "")))
    if not text or any(ord(c) < 0x20 or ord(c) > 0x7E for c in text):
        raise CodecError(f"client id {text!r} is not printable ASCII")
    return _check_client_id(b"\x00" + text.encode("ascii"))


def mac_to_str(mac: bytes) -> str:
    """6 octets -> "aa:bb:cc:dd:ee:ff" (lower case); CodecError if not 6 octets."""
    return ":".join(f"{b:02x}" for b in check_mac(mac, "mac"))


_MAC_RE = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}\Z")


def mac_from_str(text: str) -> bytes:
    """Text "aa:bb:cc:dd:ee:ff" (either case) -> 6 octets; CodecError on any other text."""
    if not isinstance(text, str) or not _MAC_RE.match(text):
        raise CodecError(f"not a colon-separated MAC address: {text!r}")
    return bytes.fromhex(text.replace(":", ""))
