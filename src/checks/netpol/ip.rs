//! Address ranges for `ipBlock` peers: CIDRs (IPv4 and IPv6) as inclusive
//! integer intervals, and the split of the address space into the fewest
//! ranges on which every ipBlock (and `except`) agrees.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn max(self) -> u128 {
        match self {
            Family::V4 => u128::from(u32::MAX),
            Family::V6 => u128::MAX,
        }
    }
    fn bits(self) -> u32 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
}

/// An inclusive address interval of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IpRange {
    pub family: Family,
    pub lo: u128,
    pub hi: u128,
}

impl IpRange {
    pub fn whole(family: Family) -> Self {
        IpRange {
            family,
            lo: 0,
            hi: family.max(),
        }
    }
    pub fn contains(&self, o: &IpRange) -> bool {
        self.family == o.family && self.lo <= o.lo && o.hi <= self.hi
    }
    pub fn contains_addr(&self, a: IpAddr) -> bool {
        let (family, v) = addr_value(a);
        self.family == family && self.lo <= v && v <= self.hi
    }
    /// `self` is a single CIDR block: its `a.b.c.d/n` form.
    pub fn as_cidr(&self) -> Option<String> {
        let size = self.hi.wrapping_sub(self.lo).wrapping_add(1);
        let bits = self.family.bits();
        let prefix = if size == 0 {
            0 // the whole IPv6 space
        } else if size.is_power_of_two() && self.lo.is_multiple_of(size) {
            bits - size.trailing_zeros()
        } else {
            return None;
        };
        if prefix > bits {
            return None;
        }
        Some(format!("{}/{prefix}", addr(self.family, self.lo)))
    }
}

fn addr_value(a: IpAddr) -> (Family, u128) {
    match a {
        IpAddr::V4(v) => (Family::V4, u128::from(u32::from(v))),
        IpAddr::V6(v) => (Family::V6, u128::from(v)),
    }
}

fn addr(f: Family, v: u128) -> IpAddr {
    match f {
        Family::V4 => IpAddr::V4(Ipv4Addr::from(v as u32)),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(v)),
    }
}

/// `0.0.0.0-255.255.255.255`, or a single address.
impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", addr(self.family, self.lo))
        } else {
            write!(
                f,
                "{}-{}",
                addr(self.family, self.lo),
                addr(self.family, self.hi)
            )
        }
    }
}

/// Parse `10.0.0.0/8` or `2001:db8::/32` (host bits are masked, as the API
/// server did before it required canonical CIDRs).
pub fn parse_cidr(s: &str) -> Result<IpRange, String> {
    let (a, p) = s
        .split_once('/')
        .ok_or_else(|| format!("`{s}` is not a CIDR (expected ADDRESS/PREFIX)"))?;
    let ip: IpAddr = a
        .parse()
        .map_err(|_| format!("`{s}`: `{a}` is not an IP address"))?;
    let (family, v) = addr_value(ip);
    let prefix: u32 = p
        .parse()
        .ok()
        .filter(|n| *n <= family.bits())
        .ok_or_else(|| format!("`{s}`: prefix must be 0-{}", family.bits()))?;
    let host_bits = family.bits() - prefix;
    let host_mask: u128 = if host_bits == 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    let lo = v & !host_mask;
    Ok(IpRange {
        family,
        lo,
        hi: lo | host_mask,
    })
}

/// Split each family's whole space at every block boundary: the result is
/// sorted, covers the space, and every block either contains a piece or is
/// disjoint from it.
pub fn atoms(blocks: &[IpRange], families: &[Family]) -> Vec<IpRange> {
    let mut out = Vec::new();
    for &family in families {
        let mut cuts: Vec<u128> = vec![0];
        for b in blocks.iter().filter(|b| b.family == family) {
            cuts.push(b.lo);
            if b.hi < family.max() {
                cuts.push(b.hi + 1);
            }
        }
        cuts.sort_unstable();
        cuts.dedup();
        for (i, &lo) in cuts.iter().enumerate() {
            let hi = cuts.get(i + 1).map_or(family.max(), |n| n - 1);
            out.push(IpRange { family, lo, hi });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display() {
        let r = parse_cidr("10.1.2.3/8").unwrap();
        assert_eq!(r.to_string(), "10.0.0.0-10.255.255.255");
        assert_eq!(r.as_cidr().unwrap(), "10.0.0.0/8");
        assert_eq!(
            parse_cidr("0.0.0.0/0").unwrap().to_string(),
            "0.0.0.0-255.255.255.255"
        );
        assert_eq!(parse_cidr("192.0.2.7/32").unwrap().to_string(), "192.0.2.7");
        let v6 = parse_cidr("2001:db8::/32").unwrap();
        assert_eq!(
            v6.to_string(),
            "2001:db8::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"
        );
        assert_eq!(parse_cidr("::/0").unwrap().as_cidr().unwrap(), "::/0");
        assert!(parse_cidr("10.0.0.0").is_err());
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("nope/8").is_err());
    }

    #[test]
    fn atoms_split_at_boundaries_only() {
        let b = [
            parse_cidr("10.0.0.0/8").unwrap(),
            parse_cidr("10.1.0.0/16").unwrap(),
        ];
        let a = atoms(&b, &[Family::V4]);
        let s: Vec<String> = a.iter().map(ToString::to_string).collect();
        assert_eq!(
            s,
            [
                "0.0.0.0-9.255.255.255",
                "10.0.0.0-10.0.255.255",
                "10.1.0.0-10.1.255.255",
                "10.2.0.0-10.255.255.255",
                "11.0.0.0-255.255.255.255"
            ]
        );
        assert_eq!(atoms(&[], &[Family::V4, Family::V6]).len(), 2);
    }
}
