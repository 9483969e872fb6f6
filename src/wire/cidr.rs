//! IPv4/IPv6 network prefixes (`10.1.0.0/16`, `fd00::/64`): parsing, containment, and the
//! n-th host of a prefix (how the address plan turns a host rank into an address).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;


/// An IPv4 or IPv6 network prefix, `ADDRESS/LEN`, with no host bits set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// Why a string is not a [`Cidr`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    #[error("`{0}` is not a prefix: expected ADDRESS/LENGTH, e.g. 10.0.0.0/8 or fd00::/64")]
    MissingLength(String),
    #[error("`{0}` is not an IPv4 or IPv6 address")]
    BadAddress(String),
    #[error("`{0}` is not a prefix length (a number)")]
    BadLength(String),
    #[error("prefix length {len} is too long for {family} (at most {max})")]
    LengthTooLong { len: u32, max: u8, family: &'static str },
    #[error("host bits are set after /{prefix}: did you mean {network}?")]
    HostBitsSet { prefix: u8, network: Cidr },
}

impl Cidr {
    /// A prefix from its parts; fails when `prefix` is too long for the family or when
    /// `addr` has bits set after the prefix.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Cidr, CidrError> {
        let max = max_len(addr);
        if prefix > max {
            let family = if addr.is_ipv4() { "IPv4" } else { "IPv6" };
            return Err(CidrError::LengthTooLong { len: u32::from(prefix), max, family });
        }
        let network = Cidr { addr: mask(addr, prefix), prefix };
        if network.addr != addr {
            return Err(CidrError::HostBitsSet { prefix, network });
        }
        Ok(network)
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length in bits.
    pub fn prefix_len(&self) -> u8 {
        self.prefix
    }

    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// True when `ip` lies inside this prefix (always false across families).
    pub fn contains_addr(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.prefix) == self.addr
    }

    /// True when all of `other` lies inside this prefix.
    pub fn contains(&self, other: &Cidr) -> bool {
        other.prefix >= self.prefix && self.contains_addr(other.addr)
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Cidr, CidrError> {
        let (addr, len) =
            s.split_once('/').ok_or_else(|| CidrError::MissingLength(s.to_owned()))?;
        let addr: IpAddr = addr.parse().map_err(|_| CidrError::BadAddress(addr.to_owned()))?;
        // Digits only: `u8::from_str` would accept "+8".
        if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CidrError::BadLength(len.to_owned()));
        }
        let len: u32 = len.parse().map_err(|_| CidrError::BadLength(len.to_owned()))?;
        let max = max_len(addr);
        let prefix =
            u8::try_from(len).ok().filter(|p| *p <= max).ok_or(CidrError::LengthTooLong {
                len,
                max,
                family: if addr.is_ipv4() { "IPv4" } else { "IPv6" },
            })?;
        Cidr::new(addr, prefix)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn max_len(addr: IpAddr) -> u8 {
    if addr.is_ipv4() {
        32
    } else {
        128
    }
}

/// `addr` with every bit after the first `prefix` bits cleared.
fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let keep = u32::MAX.checked_shl(32 - u32::from(prefix.min(32))).unwrap_or(0);
            IpAddr::V4((u32::from(a) & keep).into())
        }
        IpAddr::V6(a) => {
            let keep = u128::MAX.checked_shl(128 - u32::from(prefix.min(128))).unwrap_or(0);
            IpAddr::V6((u128::from(a) & keep).into())
        }
    }
}

impl Cidr {
    /// Number of addresses in the prefix (saturating at u128::MAX for ::/0).
    pub fn size(&self) -> u128 {
        let bits = u32::from(max_len(self.addr) - self.prefix);
        1u128.checked_shl(bits).unwrap_or(u128::MAX)
    }

    /// The `n`-th usable host address, counting from network + 1 and wrapping inside the prefix
    /// (the network address itself, and the IPv4 broadcast address, are skipped).
    pub fn host(&self, n: u64) -> IpAddr {
        let size = self.size();
        let usable = match self.addr {
            IpAddr::V4(_) if size > 2 => size - 2,
            _ if size > 1 => size - 1,
            _ => 1,
        };
        let off = if size > 1 { 1 + u128::from(n) % usable } else { 0 };
        match self.addr {
            IpAddr::V4(a) => IpAddr::V4((u32::from(a).wrapping_add(off as u32)).into()),
            IpAddr::V6(a) => IpAddr::V6((u128::from(a).wrapping_add(off)).into()),
        }
    }
}

impl serde::Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Cidr, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_wrap_inside_the_prefix() {
        let c: Cidr = "10.1.0.0/30".parse().unwrap();
        let hosts: Vec<String> = (0..3).map(|n| c.host(n).to_string()).collect();
        assert_eq!(hosts, ["10.1.0.1", "10.1.0.2", "10.1.0.1"]);
        let c: Cidr = "fd00::/120".parse().unwrap();
        assert_eq!(c.host(0).to_string(), "fd00::1");
        assert_eq!(c.host(254).to_string(), "fd00::ff");
        assert_eq!(c.host(255).to_string(), "fd00::1");
        assert_eq!("10.9.9.9/32".parse::<Cidr>().unwrap().host(5).to_string(), "10.9.9.9");
    }
}
