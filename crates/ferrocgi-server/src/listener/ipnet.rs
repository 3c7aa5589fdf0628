//! [`IpNet`]: the networks `allow_from` lets in, and the test a peer's address must pass.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IP network for `allow_from`: an address (`10.0.0.1`) or a CIDR block (`10.0.0.0/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    /// The network address (host bits are cleared).
    pub addr: IpAddr,
    /// The prefix length: 32 (IPv4) or 128 (IPv6) for a single address.
    pub prefix: u8,
}

impl IpNet {
    /// Whether `ip` is inside this network. An IPv4-mapped IPv6 peer (`::ffff:10.0.0.1`, as a
    /// dual-stack `[::]` listener reports IPv4 clients) matches IPv4 networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                mask_v4(u32::from(a), self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                mask_v6(u128::from(a), self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }
}

fn mask_v4(a: u32, prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        a & (u32::MAX << (32 - u32::from(prefix)))
    }
}

fn mask_v6(a: u128, prefix: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        a & (u128::MAX << (128 - u32::from(prefix)))
    }
}

impl FromStr for IpNet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not an IP address or CIDR block");
        let t = s.trim();
        let (a, p) = match t.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (t, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max => n,
                _ => return Err(bad()),
            },
        };
        // `::ffff:10.0.0.1` (an IPv4-mapped entry, as dual-stack tools print addresses) is the
        // IPv4 network it names: peers are compared as IPv4 (see `contains`).
        let (addr, prefix) = match addr {
            IpAddr::V6(v) if prefix >= 96 && v.to_ipv4_mapped().is_some() => (
                IpAddr::V4(v.to_ipv4_mapped().expect("checked")),
                prefix - 96,
            ),
            a => (a, prefix),
        };
        let addr = match addr {
            IpAddr::V4(v) => IpAddr::V4(mask_v4(u32::from(v), prefix).into()),
            IpAddr::V6(v) => IpAddr::V6(mask_v6(u128::from(v), prefix).into()),
        };
        Ok(IpNet { addr, prefix })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}
