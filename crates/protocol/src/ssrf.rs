//! The address policy of outbound fetches a client can point Sallyport at (client ID metadata
//! documents): only global unicast addresses, judged against the IANA special-purpose address
//! registries (RFC 6890 and their current contents), so that a URL cannot reach the deployment's
//! own network, the cloud metadata service, or a host behind a translation prefix.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IPv4 blocks that are not global unicast: (network, prefix length).
const V4_DENIED: &[([u8; 4], u8)] = &[
    ([0, 0, 0, 0], 8),       // "this network" (RFC 791)
    ([10, 0, 0, 0], 8),      // private use (RFC 1918)
    ([100, 64, 0, 0], 10),   // shared address space, carrier-grade NAT (RFC 6598)
    ([127, 0, 0, 0], 8),     // loopback
    ([169, 254, 0, 0], 16),  // link-local, the cloud metadata service lives here
    ([172, 16, 0, 0], 12),   // private use
    ([192, 0, 0, 0], 24),    // IETF protocol assignments (RFC 6890)
    ([192, 0, 2, 0], 24),    // documentation TEST-NET-1
    ([192, 88, 99, 0], 24),  // 6to4 relay anycast, deprecated (RFC 7526)
    ([192, 168, 0, 0], 16),  // private use
    ([198, 18, 0, 0], 15),   // benchmarking (RFC 2544)
    ([198, 51, 100, 0], 24), // documentation TEST-NET-2
    ([203, 0, 113, 0], 24),  // documentation TEST-NET-3
    ([224, 0, 0, 0], 4),     // multicast
    ([240, 0, 0, 0], 4),     // reserved, and the limited broadcast address
];

/// IPv6 blocks inside global unicast (2000::/3) that are still not global: (network, prefix length).
/// Everything outside 2000::/3 is refused anyway: `::`, `::1`, the IPv4-compatible and NAT64
/// prefixes (`64:ff9b::/96`, `64:ff9b:1::/48`), discard-only `100::/64`, unique local `fc00::/7`,
/// link-local `fe80::/10`, multicast `ff00::/8`. IPv4-mapped `::ffff:0:0/96` is judged as IPv4.
const V6_DENIED_GLOBAL: &[(u128, u8)] = &[
    (0x2001_0000 << 96, 23), // IETF protocol assignments: Teredo, benchmarking, ORCHID (RFC 2928)
    (0x2001_0db8 << 96, 32), // documentation (RFC 3849)
    (0x2002 << 112, 16),     // 6to4: an IPv4 address of any kind is inside (RFC 3056)
    (0x3fff_0000 << 96, 20), // documentation (RFC 9637)
];

fn in_v4(ip: Ipv4Addr, (net, len): ([u8; 4], u8)) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    ip.to_bits() & mask == u32::from_be_bytes(net) & mask
}

fn in_v6(ip: Ipv6Addr, (net, len): (u128, u8)) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    ip.to_bits() & mask == net & mask
}

/// Whether `ip` is anything but a global unicast address: no fetch may go there unless the
/// operator allows private hosts.
pub fn is_forbidden_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => V4_DENIED.iter().any(|block| in_v4(v4, *block)),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_forbidden_ip(IpAddr::V4(v4));
            }
            !in_v6(v6, (0x2000 << 112, 3)) || V6_DENIED_GLOBAL.iter().any(|block| in_v6(v6, *block))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_global_unicast_is_allowed() {
        let refused = [
            // IPv4
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "127.255.0.1",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.1",
            "192.0.0.9",
            "192.0.0.255",
            "192.0.2.10",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            // IPv6 outside 2000::/3
            "::",
            "::1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::8.8.8.8",
            "64:ff9b:1::1",
            "100::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "ff02::1",
            "ff0e::1",
            // IPv4-mapped: judged as the IPv4 inside
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:198.18.0.1",
            // special blocks inside 2000::/3
            "2001::1",
            "2001:0:4136:e378::1",
            "2001:2::1",
            "2001:10::1",
            "2001:1ff:ffff::1",
            "2001:db8::1",
            "2001:db8:ffff::1",
            "2002::1",
            "2002:c0a8:101::1",
            "2002:ffff::1",
            "3fff::1",
            "3fff:fff::1",
        ];
        for ip in refused {
            assert!(is_forbidden_ip(ip.parse().expect(ip)), "{ip} must be refused");
        }
        let allowed = [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.1",
            "169.253.255.255",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.1",
            "192.0.3.1",
            "192.88.98.255",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "::ffff:8.8.8.8",
            "2001:200::1",
            "2001:4860:4860::8888",
            "2003::1",
            "2606:2800:220:1:248:1893:25c8:1946",
            "2a00:1450:4001::1",
            "3ffe::1",
            "3fff:1000::1",
        ];
        for ip in allowed {
            assert!(!is_forbidden_ip(ip.parse().expect(ip)), "{ip} must be allowed");
        }
    }
}
