//! Address helpers for the SSRF guard: canonical forms, IPv4 addresses embedded in
//! IPv6 by transition mechanisms, and IP literals in every form the C resolver accepts.
//! Which addresses are internal is [`super::ranges`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Maps IPv4-mapped and IPv4-compatible IPv6 addresses to IPv4; the dial goes to this
/// address. Other embeddings (NAT64, 6to4, Teredo, SIIT) stay IPv6, because the packet
/// really goes to the IPv6 address and a translator forwards it.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            // ::a.b.c.d (deprecated IPv4-compatible), excluding :: and ::1.
            if s[..6] == [0; 6] && !(s[6] == 0 && s[7] <= 1) {
                return IpAddr::V4(ipv4(s[6], s[7]));
            }
            IpAddr::V6(v6)
        }
        v4 => v4,
    }
}

/// The IPv4 addresses an IPv6 address carries, with the mechanism: IPv4-mapped
/// (`::ffff:0:0/96`), IPv4-compatible (`::/96` except `::` and `::1`), IPv4-translated
/// (SIIT, `::ffff:0:0:0/96`), NAT64 (`64:ff9b::/96`, and `64:ff9b:1::/48` read in the
/// /96 format), 6to4 (`2002::/16`, bits 16..48) and Teredo (`2001::/32`: the server is
/// bits 32..64, the client the last 32 bits inverted).
pub fn embedded_ipv4(v6: Ipv6Addr) -> impl Iterator<Item = (Ipv4Addr, &'static str)> {
    let s = v6.segments();
    let low = ipv4(s[6], s[7]);
    let found = match s {
        [0, 0, 0, 0, 0, 0xffff, _, _] => [Some((low, "IPv4-mapped")), None],
        [0, 0, 0, 0, 0xffff, 0, _, _] => [Some((low, "IPv4-translated (SIIT)")), None],
        [0, 0, 0, 0, 0, 0, 0, 0 | 1] => [None, None],
        [0, 0, 0, 0, 0, 0, _, _] => [Some((low, "IPv4-compatible")), None],
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => [Some((low, "NAT64")), None],
        [0x64, 0xff9b, 1, _, _, _, _, _] => [Some((low, "local-use NAT64")), None],
        [0x2002, hi, lo, _, _, _, _, _] => [Some((ipv4(hi, lo), "6to4")), None],
        [0x2001, 0, hi, lo, _, _, c1, c2] => [
            Some((ipv4(hi, lo), "Teredo server")),
            Some((ipv4(!c1, !c2), "Teredo client")),
        ],
        _ => [None, None],
    };
    found.into_iter().flatten()
}

/// The IPv4 address of two IPv6 segments.
pub(super) fn ipv4(hi: u16, lo: u16) -> Ipv4Addr {
    Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo))
}

/// Parses an IP literal the way the C resolver's `inet_aton` does, so that forms such
/// as `127.1`, `2130706433`, `0x7f.1` and `0177.0.0.1` are recognised (and checked)
/// as the addresses they mean; also accepts bracketed and plain IPv6.
pub fn parse_ip_literal(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(v6) = bare.parse::<Ipv6Addr>() {
        return Some(IpAddr::V6(v6));
    }
    let parts: Vec<&str> = bare.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let nums = parts
        .iter()
        .map(|p| parse_c_number(p))
        .collect::<Option<Vec<u64>>>()?;
    let (last, head) = nums.split_last()?;
    if head.iter().any(|&n| n > 255) {
        return None;
    }
    let tail_bits = 8 * (4 - head.len() as u32);
    if *last >= 1u64 << tail_bits {
        return None;
    }
    let mut value: u32 = 0;
    for (i, n) in head.iter().enumerate() {
        value |= (*n as u32) << (24 - 8 * i as u32);
    }
    value |= *last as u32;
    Some(IpAddr::V4(Ipv4Addr::from(value)))
}

/// A C-style integer: `0x` hex, leading-zero octal, or decimal.
fn parse_c_number(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return if hex.is_empty() {
            Some(0)
        } else {
            u64::from_str_radix(hex, 16).ok()
        };
    }
    if s.len() > 1 && s.starts_with('0') {
        return u64::from_str_radix(&s[1..], 8).ok();
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    /// Teredo address for server `server` and client `client` (flags and port zero).
    fn teredo(server: Ipv4Addr, client: Ipv4Addr) -> Ipv6Addr {
        let bits = (0x2001_u128 << 112)
            | (u128::from(u32::from(server)) << 64)
            | u128::from(!u32::from(client));
        Ipv6Addr::from(bits)
    }

    #[test]
    fn embedded_addresses_are_decoded() {
        let embedded = |s: &str| match ip(s) {
            IpAddr::V6(v6) => embedded_ipv4(v6).collect::<Vec<_>>(),
            IpAddr::V4(_) => Vec::new(),
        };
        let v4 = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(
            embedded("64:ff9b::a9fe:a9fe"),
            [(v4("169.254.169.254"), "NAT64")]
        );
        assert_eq!(embedded("2002:0a00:0001::1"), [(v4("10.0.0.1"), "6to4")]);
        assert_eq!(
            embedded("::ffff:0:7f00:1"),
            [(v4("127.0.0.1"), "IPv4-translated (SIIT)")]
        );
        assert_eq!(
            embedded("::ffff:7f00:1"),
            [(v4("127.0.0.1"), "IPv4-mapped")]
        );
        assert_eq!(embedded("::1"), []);
        let server = Ipv4Addr::new(65, 54, 227, 120);
        assert_eq!(
            embedded_ipv4(teredo(server, Ipv4Addr::LOCALHOST)).collect::<Vec<_>>(),
            [
                (server, "Teredo server"),
                (Ipv4Addr::LOCALHOST, "Teredo client")
            ]
        );
    }

    #[test]
    fn canonical_maps_only_mapped_and_compatible() {
        assert_eq!(canonical(ip("::ffff:10.0.0.1")), ip("10.0.0.1"));
        assert_eq!(canonical(ip("::7f00:1")), ip("127.0.0.1"));
        assert_eq!(canonical(ip("::1")), ip("::1"));
        assert_eq!(canonical(ip("::")), ip("::"));
        for stays in ["64:ff9b::a9fe:a9fe", "2002:a00:1::1", "::ffff:0:7f00:1"] {
            assert_eq!(canonical(ip(stays)), ip(stays));
        }
    }

    #[test]
    fn inet_aton_forms_are_loopback() {
        for form in [
            "127.1",
            "2130706433",
            "0x7f.1",
            "0177.0.0.1",
            "127.0.0.1",
            "0x7f000001",
            "[::1]",
            "::ffff:127.0.0.1",
            "[::ffff:7f00:1]",
        ] {
            let ip = parse_ip_literal(form).unwrap_or_else(|| panic!("{form} not parsed"));
            assert!(canonical(ip).is_loopback(), "{form} -> {ip}");
        }
        assert_eq!(parse_ip_literal("0"), Some("0.0.0.0".parse().unwrap()));
        assert_eq!(parse_ip_literal("example.com"), None);
        assert_eq!(parse_ip_literal("256.1.1.1"), None);
    }
}
