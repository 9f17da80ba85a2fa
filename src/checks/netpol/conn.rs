//! Connection sets: per protocol (TCP, UDP, SCTP), a normalized list of port
//! ranges in 1..=65535. Union and intersection keep the normal form, so two
//! sets are equal exactly when they allow the same connections.

use std::fmt;

use serde::Serialize;

/// A NetworkPolicy protocol (TCP when a port entry omits it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    pub const ALL: [Protocol; 3] = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp];

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
    fn index(self) -> usize {
        self as usize
    }
}

pub const MIN_PORT: u16 = 1;
pub const MAX_PORT: u16 = 65535;

/// Sorted, disjoint, non-adjacent inclusive port ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ranges(Vec<(u16, u16)>);

impl Ranges {
    pub fn full() -> Self {
        Ranges(vec![(MIN_PORT, MAX_PORT)])
    }
    pub fn range(lo: u16, hi: u16) -> Self {
        let lo = lo.max(MIN_PORT);
        if lo > hi {
            Ranges::default()
        } else {
            Ranges(vec![(lo, hi)])
        }
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn is_full(&self) -> bool {
        self.0 == [(MIN_PORT, MAX_PORT)]
    }
    pub fn contains(&self, port: u16) -> bool {
        self.0.iter().any(|&(lo, hi)| lo <= port && port <= hi)
    }
    pub fn ranges(&self) -> &[(u16, u16)] {
        &self.0
    }
    pub fn union(&self, other: &Ranges) -> Ranges {
        let mut all: Vec<(u16, u16)> = self.0.iter().chain(&other.0).copied().collect();
        all.sort_unstable();
        let mut out: Vec<(u16, u16)> = Vec::with_capacity(all.len());
        for (lo, hi) in all {
            match out.last_mut() {
                Some(last) if u32::from(lo) <= u32::from(last.1) + 1 => last.1 = last.1.max(hi),
                _ => out.push((lo, hi)),
            }
        }
        Ranges(out)
    }
    pub fn intersect(&self, other: &Ranges) -> Ranges {
        let (mut i, mut j, mut out) = (0, 0, Vec::new());
        while i < self.0.len() && j < other.0.len() {
            let (a, b) = (self.0[i], other.0[j]);
            let (lo, hi) = (a.0.max(b.0), a.1.min(b.1));
            if lo <= hi {
                out.push((lo, hi));
            }
            if a.1 < b.1 { i += 1 } else { j += 1 }
        }
        Ranges(out)
    }
    /// `self` minus `other`.
    pub fn subtract(&self, other: &Ranges) -> Ranges {
        let mut out = Vec::new();
        for &(lo, hi) in &self.0 {
            let mut cur = u32::from(lo);
            for &(olo, ohi) in &other.0 {
                if ohi < lo || olo > hi {
                    continue;
                }
                if u32::from(olo) > cur {
                    out.push((cur as u16, olo - 1));
                }
                cur = cur.max(u32::from(ohi) + 1);
            }
            if cur <= u32::from(hi) {
                out.push((cur as u16, hi));
            }
        }
        Ranges(out)
    }
}

impl fmt::Display for Ranges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (lo, hi)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if lo == hi {
                write!(f, "{lo}")?;
            } else {
                write!(f, "{lo}-{hi}")?;
            }
        }
        Ok(())
    }
}

/// What may flow from one peer to another: port ranges per protocol.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnSet([Ranges; 3]);

impl ConnSet {
    pub fn all() -> Self {
        ConnSet([Ranges::full(), Ranges::full(), Ranges::full()])
    }
    pub fn none() -> Self {
        ConnSet::default()
    }
    /// Every port of one protocol.
    pub fn protocol(p: Protocol) -> Self {
        ConnSet::ports(p, Ranges::full())
    }
    pub fn ports(p: Protocol, r: Ranges) -> Self {
        let mut c = ConnSet::none();
        c.0[p.index()] = r;
        c
    }
    pub fn port(p: Protocol, port: u16) -> Self {
        ConnSet::ports(p, Ranges::range(port, port))
    }
    pub fn get(&self, p: Protocol) -> &Ranges {
        &self.0[p.index()]
    }
    pub fn is_all(&self) -> bool {
        self.0.iter().all(Ranges::is_full)
    }
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(Ranges::is_empty)
    }
    pub fn allows(&self, p: Protocol, port: u16) -> bool {
        self.get(p).contains(port)
    }
    pub fn union(&self, o: &ConnSet) -> ConnSet {
        ConnSet(std::array::from_fn(|i| self.0[i].union(&o.0[i])))
    }
    pub fn intersect(&self, o: &ConnSet) -> ConnSet {
        ConnSet(std::array::from_fn(|i| self.0[i].intersect(&o.0[i])))
    }
    pub fn subtract(&self, o: &ConnSet) -> ConnSet {
        ConnSet(std::array::from_fn(|i| self.0[i].subtract(&o.0[i])))
    }
    pub fn add(&mut self, o: &ConnSet) {
        *self = self.union(o);
    }
}

/// `All Connections`, `No Connections`, or e.g. `TCP 8000,UDP 53`.
impl fmt::Display for ConnSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_all() {
            return f.write_str("All Connections");
        }
        if self.is_empty() {
            return f.write_str("No Connections");
        }
        let mut first = true;
        for p in Protocol::ALL {
            let r = self.get(p);
            if r.is_empty() {
                continue;
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{} {r}", p.as_str())?;
        }
        Ok(())
    }
}

impl Serialize for ConnSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_normalize_on_union() {
        let a = Ranges::range(80, 80).union(&Ranges::range(81, 90));
        assert_eq!(a.ranges(), &[(80, 90)]);
        let b = a
            .union(&Ranges::range(100, 200))
            .union(&Ranges::range(85, 95));
        assert_eq!(b.to_string(), "80-95,100-200");
        assert!(
            Ranges::range(1, 100)
                .union(&Ranges::range(101, 65535))
                .is_full()
        );
    }

    #[test]
    fn intersect_and_subtract() {
        let a = Ranges::range(1, 100).union(&Ranges::range(200, 300));
        let b = Ranges::range(50, 250);
        assert_eq!(a.intersect(&b).to_string(), "50-100,200-250");
        assert_eq!(a.subtract(&b).to_string(), "1-49,251-300");
        assert!(Ranges::full().subtract(&Ranges::full()).is_empty());
        assert_eq!(
            Ranges::full().subtract(&Ranges::range(1, 1)).to_string(),
            "2-65535"
        );
        assert_eq!(
            Ranges::full()
                .subtract(&Ranges::range(65535, 65535))
                .to_string(),
            "1-65534"
        );
    }

    #[test]
    fn display() {
        assert_eq!(ConnSet::all().to_string(), "All Connections");
        assert_eq!(ConnSet::none().to_string(), "No Connections");
        let c = ConnSet::port(Protocol::Udp, 53).union(&ConnSet::port(Protocol::Tcp, 53));
        assert_eq!(c.to_string(), "TCP 53,UDP 53");
        let all_tcp = ConnSet::protocol(Protocol::Tcp);
        assert_eq!(all_tcp.to_string(), "TCP 1-65535");
        assert!(
            all_tcp
                .union(&ConnSet::protocol(Protocol::Udp))
                .union(&ConnSet::protocol(Protocol::Sctp))
                .is_all()
        );
    }
}
