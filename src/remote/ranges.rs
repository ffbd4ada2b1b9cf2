//! Which addresses the SSRF guard refuses: the IANA IPv4 and IPv6 special-purpose
//! address registries, and any IPv6 address that embeds a special-purpose IPv4 address
//! (`64:ff9b::a9fe:a9fe` reaches 169.254.169.254 through a NAT64 gateway,
//! `2002:7f00:1::1` reaches 127.0.0.1 through a 6to4 relay).

use super::addr::embedded_ipv4;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// The IANA IPv4 special-purpose address registry, plus multicast and the reserved
/// 240.0.0.0/4 (which holds the limited broadcast address), as (network, prefix length,
/// name). Every entry is refused, including the few marked globally reachable (AS112,
/// AMT, the anycast entries inside 192.0.0.0/24): no plugin server lives there.
const V4_SPECIAL: &[(u32, u8, &str)] = &[
    (0x0000_0000, 8, "\"this network\" 0.0.0.0/8"),
    (0x0a00_0000, 8, "private 10.0.0.0/8"),
    (0x6440_0000, 10, "shared (CGNAT) 100.64.0.0/10"),
    (0x7f00_0000, 8, "loopback 127.0.0.0/8"),
    (0xa9fe_0000, 16, "link-local 169.254.0.0/16"),
    (0xac10_0000, 12, "private 172.16.0.0/12"),
    (0xc000_0000, 24, "IETF protocol assignments 192.0.0.0/24"),
    (0xc000_0200, 24, "documentation 192.0.2.0/24"),
    (0xc01f_c400, 24, "AS112 192.31.196.0/24"),
    (0xc034_c100, 24, "AMT 192.52.193.0/24"),
    (0xc058_6300, 24, "6to4 relay anycast 192.88.99.0/24"),
    (0xc0a8_0000, 16, "private 192.168.0.0/16"),
    (0xc0af_3000, 24, "AS112 direct delegation 192.175.48.0/24"),
    (0xc612_0000, 15, "benchmarking 198.18.0.0/15"),
    (0xc633_6400, 24, "documentation 198.51.100.0/24"),
    (0xcb00_7100, 24, "documentation 203.0.113.0/24"),
    (0xe000_0000, 4, "multicast 224.0.0.0/4"),
    (
        0xf000_0000,
        4,
        "reserved 240.0.0.0/4 (with broadcast 255.255.255.255)",
    ),
];

/// The IANA IPv6 special-purpose address registry, with the deprecated site-local range
/// and multicast. Entries outside 2000::/3 are refused by the global-unicast rule
/// anyway; they are listed so the refusal names the range.
const V6_SPECIAL: &[(u128, u8, &str)] = &[
    (0, 128, "unspecified ::/128"),
    (1, 128, "loopback ::1/128"),
    (0x0064_ff9b_0001 << 80, 48, "local-use NAT64 64:ff9b:1::/48"),
    (0x0100 << 112, 64, "discard-only 100::/64"),
    (
        0x0100_0000_0000_0001 << 64,
        64,
        "dummy prefix 100:0:0:1::/64",
    ),
    (
        0x2001 << 112,
        23,
        "IETF protocol assignments 2001::/23 (with Teredo 2001::/32)",
    ),
    (0x2001_0db8 << 96, 32, "documentation 2001:db8::/32"),
    (
        0x2620_004f_8000 << 80,
        48,
        "AS112 direct delegation 2620:4f:8000::/48",
    ),
    (0x3fff << 112, 20, "documentation 3fff::/20"),
    (0x5f00 << 112, 16, "SRv6 SIDs 5f00::/16"),
    (0xfc00 << 112, 7, "unique local fc00::/7"),
    (0xfe80 << 112, 10, "link-local fe80::/10"),
    (0xfec0 << 112, 10, "site-local fec0::/10"),
    (0xff00 << 112, 8, "multicast ff00::/8"),
];

/// Translation prefixes that are only as internal as the IPv4 address they carry: the
/// IPv4-mapped, IPv4-compatible, NAT64 (well-known prefix) or 6to4 address of a public
/// IPv4 address is allowed.
const V6_BY_EMBEDDED: &[(u128, u8)] = &[
    (0xffff << 32, 96),
    (0, 96),
    (0x0064_ff9b << 96, 96),
    (0x2002 << 112, 16),
];

/// Why an address is internal: the special-purpose range it is in, or the embedded IPv4
/// address that is in one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Internal {
    /// The special-purpose range, named, e.g. `link-local 169.254.0.0/16`.
    pub range: &'static str,
    /// The embedded IPv4 address in `range` and the mechanism that embeds it.
    pub embedded: Option<(Ipv4Addr, &'static str)>,
}

impl Internal {
    /// The address itself is in `range`.
    fn in_range(range: &'static str) -> Internal {
        Internal {
            range,
            embedded: None,
        }
    }
}

impl fmt::Display for Internal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.embedded {
            Some((v4, how)) => write!(f, "{how} of {v4}, {}", self.range),
            None => f.write_str(self.range),
        }
    }
}

/// The special-purpose range `ip` is in or, for IPv6, the special-purpose IPv4 address
/// it embeds; `None` for global unicast addresses.
pub fn special_purpose(ip: IpAddr) -> Option<Internal> {
    let v6 = match ip {
        IpAddr::V4(v4) => return v4_range(v4).map(Internal::in_range),
        IpAddr::V6(v6) => v6,
    };
    for (v4, how) in embedded_ipv4(v6) {
        if let Some(range) = v4_range(v4) {
            return Some(Internal {
                range,
                embedded: Some((v4, how)),
            });
        }
    }
    let bits = u128::from(v6);
    if let Some((_, _, range)) = V6_SPECIAL
        .iter()
        .find(|(net, len, _)| same_prefix(bits, *net, *len))
    {
        return Some(Internal::in_range(range));
    }
    if V6_BY_EMBEDDED
        .iter()
        .any(|(net, len)| same_prefix(bits, *net, *len))
    {
        return None;
    }
    // IANA allocates global unicast only from 2000::/3.
    (!same_prefix(bits, 0x2000 << 112, 3))
        .then_some(Internal::in_range("not global unicast (outside 2000::/3)"))
}

/// Whether `ip` is special-purpose or embeds a special-purpose IPv4 address.
pub fn is_internal(ip: IpAddr) -> bool {
    special_purpose(ip).is_some()
}

/// The named special-purpose IPv4 range `v4` is in.
fn v4_range(v4: Ipv4Addr) -> Option<&'static str> {
    let bits = u128::from(u32::from(v4)) << 96;
    V4_SPECIAL
        .iter()
        .find(|(net, len, _)| same_prefix(bits, u128::from(*net) << 96, *len))
        .map(|(_, _, range)| *range)
}

/// Whether the first `len` bits of `a` and `b` agree.
fn same_prefix(a: u128, b: u128, len: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    a & mask == b & mask
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    /// Teredo address for server `server` and client `client` (flags and port zero).
    fn teredo(server: Ipv4Addr, client: Ipv4Addr) -> IpAddr {
        let bits = (0x2001_u128 << 112)
            | (u128::from(u32::from(server)) << 64)
            | u128::from(!u32::from(client));
        IpAddr::V6(Ipv6Addr::from(bits))
    }

    #[test]
    fn special_purpose_and_embedding_addresses_are_internal() {
        let table = [
            // IPv4 special-purpose registry, multicast, reserved, broadcast.
            "0.0.0.0",
            "0.1.2.3",
            "10.1.2.3",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.0.170",
            "192.0.2.1",
            "192.31.196.1",
            "192.52.193.1",
            "192.88.99.1",
            "192.168.1.1",
            "192.175.48.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            // IPv6 special-purpose registry, site-local, multicast, non-global-unicast.
            "::",
            "::1",
            "64:ff9b:1::1",
            "64:ff9b:1:ffff::808:808",
            "100::1",
            "100:0:0:1::1",
            "2001::1",
            "2001:1::1",
            "2001:2::1",
            "2001:20::1",
            "2001:1ff:ffff::1",
            "2001:db8::1",
            "2620:4f:8000::1",
            "3fff::1",
            "3fff:fff::1",
            "5f00::1",
            "fc00::1",
            "fd00::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "feff::1",
            "ff02::1",
            "1::1",
            "4000::1",
            // IPv4-mapped and IPv4-compatible forms of internal IPv4.
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::7f00:1",
            "::a9fe:a9fe",
            // SIIT IPv4-translated, of internal and of public IPv4 (the form is not global).
            "::ffff:0:7f00:1",
            "::ffff:0:a9fe:a9fe",
            "::ffff:0:808:808",
            // NAT64 (well-known prefix) of 169.254.169.254, 127.0.0.1, 10.0.0.1.
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::169.254.169.254",
            "64:ff9b::7f00:1",
            "64:ff9b::a00:1",
            "64:ff9b::c0a8:101",
            "64:ff9b::ffff:ffff",
            // 6to4 of 10.0.0.1, 127.0.0.1, 169.254.169.254.
            "2002:0a00:0001::1",
            "2002:7f00:1::",
            "2002:a9fe:a9fe:1:2:3:4:5",
        ];
        for text in table {
            assert!(is_internal(ip(text)), "{text} must be internal");
        }
        // Teredo embedding 127.0.0.1 as client or as server.
        let public = Ipv4Addr::new(65, 54, 227, 120);
        for addr in [
            teredo(public, Ipv4Addr::LOCALHOST),
            teredo(Ipv4Addr::LOCALHOST, public),
            teredo(Ipv4Addr::new(10, 0, 0, 1), public),
        ] {
            assert!(is_internal(addr), "{addr} must be internal");
        }
    }

    #[test]
    fn global_unicast_addresses_stay_allowed() {
        for text in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.216.34",
            "172.32.0.1",
            "100.128.0.1",
            "192.0.3.1",
            "198.20.0.1",
            "223.255.255.255",
            "2606:4700::1111",
            "2001:4860:4860::8888",
            "2001:200::1",
            "2001:db9::1",
            "2a00:1450:4001::1",
            // NAT64 and 6to4 of 8.8.8.8, mapped and compatible forms of public IPv4.
            "64:ff9b::808:808",
            "64:ff9b::8.8.8.8",
            "2002:808:808::1",
            "2002:0808:0808:1:2:3:4:5",
            "::ffff:8.8.8.8",
            "::808:808",
        ] {
            let addr = ip(text);
            assert_eq!(special_purpose(addr), None, "{text} must be allowed");
        }
    }

    #[test]
    fn refusals_name_the_range_and_the_embedded_address() {
        let why = |s: &str| special_purpose(ip(s)).map(|w| w.to_string());
        assert_eq!(
            why("64:ff9b::a9fe:a9fe").as_deref(),
            Some("NAT64 of 169.254.169.254, link-local 169.254.0.0/16")
        );
        assert_eq!(
            why("2002:a00:1::1").as_deref(),
            Some("6to4 of 10.0.0.1, private 10.0.0.0/8")
        );
        let client = teredo(Ipv4Addr::new(65, 54, 227, 120), Ipv4Addr::LOCALHOST);
        assert_eq!(
            special_purpose(client).map(|w| w.to_string()).as_deref(),
            Some("Teredo client of 127.0.0.1, loopback 127.0.0.0/8")
        );
        assert_eq!(why("fec0::1").as_deref(), Some("site-local fec0::/10"));
        assert_eq!(why("::1").as_deref(), Some("loopback ::1/128"));
        assert_eq!(
            why("::ffff:0:808:808").as_deref(),
            Some("not global unicast (outside 2000::/3)")
        );
    }
}
