//! The address plan: where generated flows live on the testbed.
//!
//! This module owns the mapping from a flow (its host ranks, its protocol, its id) to stable
//! endpoints: client and server addresses drawn from configured IPv4/IPv6 prefixes, a MAC per
//! host derived deterministically from its address (locally administered), server ports from
//! the record or a configured list, and client ports from an ephemeral range, never shared by
//! two live flows of the same client host. It does not build frames.

use std::net::IpAddr;

use rustc_hash::{FxHashMap, FxHashSet};

use super::cidr::Cidr;
use crate::rng::SplitMix64;
use crate::synth::{Proto, Side, PLAN_CHOOSES};

/// Everything about addresses and frames a user can set (CLI flags and the daemon's TOML).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WireConfig {
    pub client_v4: Cidr,
    pub server_v4: Cidr,
    pub client_v6: Cidr,
    pub server_v6: Cidr,
    /// How many client and server hosts the plan uses (host rank r maps to host r mod n, and
    /// that wraps within the prefix). The defaults are a /16's usable hosts: every rank a
    /// model has, and every host of its own a flow is given, is a host apart.
    pub client_hosts: u32,
    pub server_hosts: u32,
    /// Client port range, inclusive.
    pub ephemeral_ports: [u16; 2],
    /// Server ports for records that do not name one.
    pub tcp_server_ports: Vec<u16>,
    pub udp_server_ports: Vec<u16>,
    /// Largest IP packet (bytes). A TCP record above it goes out in pieces (as a NIC's
    /// segmentation offload sends it); a UDP or ICMP one is clamped and counted as a repair.
    pub mtu: u32,
    /// TTL / hop limit of generated packets.
    pub ttl: u8,
    /// Payload fill, repeated; empty = zeros (the default: zero-filled payloads keep protocol
    /// dissectors such as tshark's DNS one from calling generated packets malformed).
    pub payload_pattern: String,
    /// A flow with no record for this long is forgotten (its port is released).
    pub flow_idle_s: f64,
    /// The idle time that ends a UDP flow in a flow table (trafgen's `--udp-idle`, 60 s). A
    /// UDP flow from a fixed client port (DHCP's 68, mDNS's 5353) whose 4-tuple carried a flow
    /// less than this ago, or carries one now, goes to the next client host: a flow table
    /// would merge the two into one longer flow, which the model did not draw. 0: no such
    /// move.
    pub udp_idle_s: f64,
}

impl Default for WireConfig {
    fn default() -> Self {
        let p = |s: &str| s.parse::<Cidr>().expect("valid default prefix");
        WireConfig {
            client_v4: p("10.1.0.0/16"),
            server_v4: p("10.2.0.0/16"),
            client_v6: p("fd00:1::/64"),
            server_v6: p("fd00:2::/64"),
            client_hosts: 65_534,
            server_hosts: 65_534,
            ephemeral_ports: [32768, 60999],
            tcp_server_ports: vec![443, 80],
            udp_server_ports: vec![53, 123],
            mtu: 1500,
            ttl: 64,
            payload_pattern: String::new(),
            flow_idle_s: 300.0,
            udp_idle_s: 60.0,
        }
    }
}

/// Why a wire configuration cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WireConfigError {
    #[error("{field}: {cidr} is an {got} prefix, expected {want}")]
    Family { field: &'static str, cidr: Cidr, got: &'static str, want: &'static str },
    #[error("{field} must be at least 1")]
    NoHosts { field: &'static str },
    #[error("ephemeral_ports: [{0}, {1}] is not a range of ports ≥ 1024")]
    Ports(u16, u16),
    #[error("mtu {0} is outside 576..=9000")]
    Mtu(u32),
    #[error("{0} is empty: at least one server port is needed")]
    NoServerPorts(&'static str),
    #[error("flow_idle_s must be > 0")]
    Idle,
    #[error("udp_idle_s must be a number of seconds ≥ 0")]
    UdpIdle,
}

/// Failure to load a wire configuration file.
#[derive(Debug, thiserror::Error)]
pub enum WireConfigFileError {
    #[error("{path}: cannot read: {source}")]
    Read { path: std::path::PathBuf, source: std::io::Error },
    #[error("{path}: {msg}")]
    Parse { path: std::path::PathBuf, msg: String },
    #[error("{path}: {source}")]
    Invalid { path: std::path::PathBuf, source: WireConfigError },
}

impl WireConfig {
    /// Reads a TOML file with any of the fields of [`WireConfig`] (the rest keep their
    /// defaults), and validates it. Errors name the file, and the line:column for syntax.
    pub fn load(path: &std::path::Path) -> Result<WireConfig, WireConfigFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| WireConfigFileError::Read { path: path.into(), source })?;
        WireConfig::from_toml_str(&text, path)
    }

    /// Parses and validates `text` like [`WireConfig::load`]; `path` only names the file in
    /// errors.
    pub fn from_toml_str(text: &str, path: &std::path::Path) -> Result<WireConfig, WireConfigFileError> {
        let cfg: WireConfig = toml::from_str(text).map_err(|e| {
            let at = e.span().map(|s| crate::text_position::line_column(text, s.start));
            let msg = e.message().to_string();
            WireConfigFileError::Parse {
                path: path.into(),
                msg: match at {
                    Some((l, c)) => format!("{l}:{c}: {msg}"),
                    None => msg,
                },
            }
        })?;
        cfg.validate().map_err(|source| WireConfigFileError::Invalid { path: path.into(), source })?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), WireConfigError> {
        for (field, c, v4) in [
            ("client_v4", self.client_v4, true),
            ("server_v4", self.server_v4, true),
            ("client_v6", self.client_v6, false),
            ("server_v6", self.server_v6, false),
        ] {
            if c.is_ipv4() != v4 {
                let fam = |b: bool| if b { "IPv4" } else { "IPv6" };
                return Err(WireConfigError::Family { field, cidr: c, got: fam(c.is_ipv4()), want: fam(v4) });
            }
        }
        if self.client_hosts == 0 {
            return Err(WireConfigError::NoHosts { field: "client_hosts" });
        }
        if self.server_hosts == 0 {
            return Err(WireConfigError::NoHosts { field: "server_hosts" });
        }
        let [lo, hi] = self.ephemeral_ports;
        if lo < 1024 || hi < lo {
            return Err(WireConfigError::Ports(lo, hi));
        }
        if !(576..=9000).contains(&self.mtu) {
            return Err(WireConfigError::Mtu(self.mtu));
        }
        if self.tcp_server_ports.is_empty() {
            return Err(WireConfigError::NoServerPorts("tcp_server_ports"));
        }
        if self.udp_server_ports.is_empty() {
            return Err(WireConfigError::NoServerPorts("udp_server_ports"));
        }
        if !(self.flow_idle_s > 0.0) {
            return Err(WireConfigError::Idle);
        }
        if !(self.udp_idle_s >= 0.0 && self.udp_idle_s.is_finite()) {
            return Err(WireConfigError::UdpIdle);
        }
        Ok(())
    }

    /// Every prefix the plan draws addresses from (for the daemon's allowlist check).
    pub fn prefixes(&self) -> [Cidr; 4] {
        [self.client_v4, self.server_v4, self.client_v6, self.server_v6]
    }
}

/// One host: its address (IPv4 in the first 4 bytes) and MAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Host {
    pub ip: [u8; 16],
    pub mac: [u8; 6],
}

/// The endpoints of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoints {
    pub client: Host,
    pub server: Host,
    pub client_port: u16,
    pub server_port: u16,
}

/// Locally administered unicast MAC derived from an address.
pub fn mac_for(ip: &[u8; 16]) -> [u8; 6] {
    let mut h = 0xcbf2_9ce4_8422_2325u64; // FNV-1a
    for b in ip {
        h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    }
    let h = SplitMix64::new(h).next_u64().to_be_bytes();
    [0x02, h[0], h[1], h[2], h[3], h[4]]
}

fn host(c: &Cidr, n: u64) -> Host {
    let mut ip = [0u8; 16];
    match c.host(n) {
        IpAddr::V4(a) => ip[..4].copy_from_slice(&a.octets()),
        IpAddr::V6(a) => ip.copy_from_slice(&a.octets()),
    }
    Host { ip, mac: mac_for(&ip) }
}

#[derive(Default)]
struct PortPool {
    next: u16,
    used: FxHashSet<u16>,
}

/// Allocates endpoints for flows and takes the client ports back when flows end.
pub struct AddressPlan {
    cfg: WireConfig,
    pools: FxHashMap<[u8; 16], PortPool>,
    /// Allocations that found every port of a client host in use (the port is then shared).
    pub ports_exhausted: u64,
}

impl AddressPlan {
    pub fn new(cfg: WireConfig) -> AddressPlan {
        AddressPlan { cfg, pools: FxHashMap::default(), ports_exhausted: 0 }
    }

    pub fn config(&self) -> &WireConfig {
        &self.cfg
    }

    /// Endpoints for a new flow. `hosts` are the client's and the server's (side, rank): the
    /// side whose prefix and host count the rank is of (a host seen on both sides in training
    /// keeps one side's address, [`crate::model::shared_hosts`]), and its rank there or
    /// [`PLAN_CHOOSES`]. `ports` are the client and server ports asked for (0: the plan
    /// picks). `rng` is the flow's own stream.
    pub fn allocate(&mut self, proto: Proto, v6: bool, hosts: [(Side, u32); 2], ports: [u16; 2], rng: &mut SplitMix64) -> Endpoints {
        let [client_port, server_port] = ports;
        let v6 = v6 && proto != Proto::Arp;
        let cfg = &self.cfg;
        let mut pick = |(side, rank): (Side, u32)| {
            let (n, prefix) = match (side, v6) {
                (Side::Client, false) => (cfg.client_hosts, &cfg.client_v4),
                (Side::Client, true) => (cfg.client_hosts, &cfg.client_v6),
                (Side::Server, false) => (cfg.server_hosts, &cfg.server_v4),
                (Side::Server, true) => (cfg.server_hosts, &cfg.server_v6),
            };
            host(prefix, if rank == PLAN_CHOOSES { rng.below(u64::from(n)) } else { u64::from(rank % n) })
        };
        let (client, server) = (pick(hosts[0]), pick(hosts[1]));
        let server_port = match (proto, server_port) {
            (Proto::Tcp, 0) => self.cfg.tcp_server_ports[rng.below(self.cfg.tcp_server_ports.len() as u64) as usize],
            (Proto::Udp, 0) => self.cfg.udp_server_ports[rng.below(self.cfg.udp_server_ports.len() as u64) as usize],
            (Proto::Tcp | Proto::Udp, p) => p,
            _ => 0,
        };
        let client_port = match (proto, client_port) {
            (Proto::Tcp | Proto::Udp, 0) => self.take_port(client.ip, rng),
            // a TCP connection from a port the client host has in use would share a live
            // connection's 4-tuple (and sequence space): an ephemeral one then
            (Proto::Tcp, p) if self.pools.get(&client.ip).is_some_and(|pool| pool.used.contains(&p)) => self.take_port(client.ip, rng),
            (Proto::Tcp | Proto::Udp, p) => {
                // held like an ephemeral one while the flow lives
                self.pools.entry(client.ip).or_default().used.insert(p);
                p
            }
            // the ICMP echo identifier plays the client port's part
            (Proto::IcmpEcho, _) => (rng.next_u32() & 0xffff) as u16,
            (Proto::Arp, _) => 0,
        };
        Endpoints { client, server, client_port, server_port }
    }

    fn take_port(&mut self, ip: [u8; 16], rng: &mut SplitMix64) -> u16 {
        let [lo, hi] = self.cfg.ephemeral_ports;
        let span = u32::from(hi - lo) + 1;
        let pool = self.pools.entry(ip).or_insert_with(|| PortPool {
            next: lo + rng.below(u64::from(span)) as u16,
            used: FxHashSet::default(),
        });
        if !(lo..=hi).contains(&pool.next) {
            // a pool a fixed port made (it held no ephemeral port yet)
            pool.next = lo + rng.below(u64::from(span)) as u16;
        }
        let mut p = pool.next;
        for _ in 0..span {
            if !pool.used.contains(&p) {
                pool.used.insert(p);
                pool.next = if p >= hi { lo } else { p + 1 };
                return p;
            }
            p = if p >= hi { lo } else { p + 1 };
        }
        self.ports_exhausted += 1;
        pool.next
    }

    /// Gives a TCP/UDP client port back.
    pub fn release(&mut self, proto: Proto, e: &Endpoints) {
        if matches!(proto, Proto::Tcp | Proto::Udp) {
            if let Some(pool) = self.pools.get_mut(&e.client.ip) {
                pool.used.remove(&e.client_port);
            }
        }
    }

    /// Client ports currently held (all hosts).
    pub fn ports_in_use(&self) -> usize {
        self.pools.values().map(|p| p.used.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::OWN_SIDES;

    /// Each rank of its own side.
    fn own(client: u32, server: u32) -> [(Side, u32); 2] {
        [(OWN_SIDES[0], client), (OWN_SIDES[1], server)]
    }

    #[test]
    fn ports_never_collide_among_live_flows_and_come_back() {
        let cfg = WireConfig { client_hosts: 1, ephemeral_ports: [40000, 40009], ..WireConfig::default() };
        let mut plan = AddressPlan::new(cfg);
        let mut rng = SplitMix64::new(1);
        let eps: Vec<Endpoints> = (0..10).map(|_| plan.allocate(Proto::Tcp, false, own(0, 0), [0, 0], &mut rng)).collect();
        let mut ports: Vec<u16> = eps.iter().map(|e| e.client_port).collect();
        ports.sort();
        assert_eq!(ports, (40000..40010).collect::<Vec<_>>());
        assert_eq!(plan.ports_exhausted, 0);
        plan.allocate(Proto::Tcp, false, own(0, 0), [0, 0], &mut rng);
        assert_eq!(plan.ports_exhausted, 1);
        plan.release(Proto::Tcp, &eps[3]);
        let e = plan.allocate(Proto::Tcp, false, own(0, 0), [0, 0], &mut rng);
        assert_eq!(e.client_port, eps[3].client_port);
    }

    #[test]
    fn a_fixed_client_port_in_use_is_not_given_to_a_second_tcp_connection() {
        let mut plan = AddressPlan::new(WireConfig::default());
        let mut rng = SplitMix64::new(4);
        let a = plan.allocate(Proto::Tcp, false, own(0, 0), [502, 502], &mut rng);
        let b = plan.allocate(Proto::Tcp, false, own(0, 0), [502, 502], &mut rng);
        assert_eq!(a.client_port, 502);
        assert!((32768..=60999).contains(&b.client_port), "{}", b.client_port);
        // UDP peers share a fixed port (mDNS, NTP); TCP gets it back once the first connection ends
        assert_eq!(plan.allocate(Proto::Udp, false, own(0, 0), [5353, 5353], &mut rng).client_port, 5353);
        assert_eq!(plan.allocate(Proto::Udp, false, own(0, 1), [5353, 5353], &mut rng).client_port, 5353);
        plan.release(Proto::Tcp, &a);
        assert_eq!(plan.allocate(Proto::Tcp, false, own(0, 0), [502, 502], &mut rng).client_port, 502);
    }

    #[test]
    fn ranks_map_to_stable_hosts_inside_the_prefixes() {
        let mut plan = AddressPlan::new(WireConfig::default());
        let mut rng = SplitMix64::new(2);
        let a = plan.allocate(Proto::Udp, false, own(3, 1), [0, 0], &mut rng);
        let b = plan.allocate(Proto::Udp, false, own(3 + 65_534, 1 + 2 * 65_534), [0, 0], &mut rng);
        assert_eq!((a.client.ip, a.server.ip), (b.client.ip, b.server.ip), "rank wraps modulo client_hosts");
        assert_eq!(&a.client.ip[..4], &[10, 1, 0, 4]);
        assert_eq!(&a.server.ip[..4], &[10, 2, 0, 2]);
        assert!(matches!(a.server_port, 53 | 123));
        assert_eq!(a.client.mac, mac_for(&a.client.ip));
        assert_eq!(a.client.mac[0] & 0x03, 0x02, "locally administered unicast");
        // a host seen on both sides: the server end at a client-side rank
        let c = plan.allocate(Proto::Udp, false, [(Side::Client, 7), (Side::Client, 3)], [0, 0], &mut rng);
        assert_eq!((&c.client.ip[..4], &c.server.ip[..4]), (&[10, 1, 0, 8][..], &a.client.ip[..4]));
        let v6 = plan.allocate(Proto::Tcp, true, own(0, 0), [0, 8080], &mut rng);
        assert_eq!(&v6.client.ip[..4], &[0xfd, 0, 0, 1]);
        assert_eq!(v6.server_port, 8080);
    }

    #[test]
    fn loads_toml_with_defaults_and_line_column_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("wire.toml");
        std::fs::write(&p, "client_v4 = \"192.0.2.0/24\"\nclient_hosts = 3\n").unwrap();
        let c = WireConfig::load(&p).unwrap();
        assert_eq!(c.client_hosts, 3);
        assert_eq!(c.server_v4, WireConfig::default().server_v4);
        std::fs::write(&p, "client_hosts = 3\nmtu = \"big\"\n").unwrap();
        let e = WireConfig::load(&p).unwrap_err().to_string();
        assert!(e.contains("wire.toml: 2:7:"), "{e}");
        std::fs::write(&p, "colour = 1\n").unwrap();
        assert!(WireConfig::load(&p).unwrap_err().to_string().contains("colour"));
        std::fs::write(&p, "mtu = 100\n").unwrap();
        assert!(WireConfig::load(&p).unwrap_err().to_string().contains("mtu 100"));
    }

    #[test]
    fn validation_names_the_field() {
        let mut c = WireConfig::default();
        c.client_v4 = "fd00::/64".parse().unwrap();
        assert!(c.validate().unwrap_err().to_string().starts_with("client_v4"));
        let c = WireConfig { ephemeral_ports: [2000, 1000], ..WireConfig::default() };
        assert_eq!(c.validate(), Err(WireConfigError::Ports(2000, 1000)));
    }
}
