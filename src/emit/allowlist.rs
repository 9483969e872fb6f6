//! The destination allowlist: the prefixes a stream may send to.
//!
//! This module owns two checks. Before a stream starts, [`Allowlist::check_plan`] refuses an
//! address plan ([`WireConfig`]) with a prefix outside the list, so a model stream whose
//! addresses could leave the testbed never starts. While it runs, [`Allowlist::check_frame`]
//! reads the destination of every frame about to be sent (IPv4/IPv6 destination address, the
//! target protocol address of an ARP packet, behind up to two VLAN tags) and refuses a frame
//! outside the list, or one whose destination cannot be read: nothing unchecked leaves.
//! It does not send, and it does not rewrite frames.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::wire::{Cidr, WireConfig};

/// Prefixes a stream may send to. Never empty.
#[derive(Clone, Debug, PartialEq)]
pub struct Allowlist {
    prefixes: Vec<Cidr>,
}

/// Why a frame or a plan is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AllowlistError {
    #[error("the destination allowlist is empty: name at least one prefix (e.g. --allow 10.0.0.0/8)")]
    Empty,
    #[error("address plan: {field} = {prefix} is not inside the allowlist ({allowlist}); widen the allowlist or change the plan (--wire-config)")]
    PlanOutside { field: &'static str, prefix: Cidr, allowlist: String },
    #[error("frame to {dst} ({what}) is outside the allowlist ({allowlist}); not sent")]
    Outside { dst: IpAddr, what: &'static str, allowlist: String },
    #[error("frame of {len} bytes with ethertype {ethertype:#06x} has no destination the allowlist can check; not sent")]
    Unchecked { ethertype: u16, len: usize },
}

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
const ETH_ARP: u16 = 0x0806;
const ETH_VLAN: [u16; 3] = [0x8100, 0x88a8, 0x9100];

impl Allowlist {
    pub fn new(prefixes: Vec<Cidr>) -> Result<Allowlist, AllowlistError> {
        if prefixes.is_empty() {
            return Err(AllowlistError::Empty);
        }
        Ok(Allowlist { prefixes })
    }

    /// The default of `trafgen send` when no `--allow` is given: private and documentation
    /// space only (RFC 1918, RFC 2544 benchmarking, the three TEST-NETs, IPv6 ULA and
    /// documentation prefixes), never a public address.
    pub fn testbed_default() -> Allowlist {
        let p = |s: &str| s.parse::<Cidr>().expect("valid built-in prefix");
        Allowlist {
            prefixes: vec![
                p("10.0.0.0/8"),
                p("172.16.0.0/12"),
                p("192.168.0.0/16"),
                p("198.18.0.0/15"),
                p("192.0.2.0/24"),
                p("198.51.100.0/24"),
                p("203.0.113.0/24"),
                p("fc00::/7"),
                p("2001:db8::/32"),
            ],
        }
    }

    pub fn prefixes(&self) -> &[Cidr] {
        &self.prefixes
    }

    /// True when `ip` lies in one of the prefixes.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.prefixes.iter().any(|c| c.contains_addr(ip))
    }

    /// Refuses a plan with any prefix (client/server, IPv4/IPv6) outside the list: every
    /// address a model stream can send to lies in one of them.
    pub fn check_plan(&self, plan: &WireConfig) -> Result<(), AllowlistError> {
        let fields = ["client_v4", "server_v4", "client_v6", "server_v6"];
        for (field, prefix) in fields.into_iter().zip(plan.prefixes()) {
            if !self.prefixes.iter().any(|c| c.contains(&prefix)) {
                return Err(AllowlistError::PlanOutside { field, prefix, allowlist: self.to_string() });
            }
        }
        Ok(())
    }

    /// Checks the destination of one Ethernet frame given as its parts (header, payload):
    /// only the first part is read, so it must hold the Ethernet and IP (or ARP) headers,
    /// which is how the wire stage and the pcap source hand frames over.
    pub fn check_frame(&self, frame: &[u8]) -> Result<(), AllowlistError> {
        let unchecked = |ethertype| AllowlistError::Unchecked { ethertype, len: frame.len() };
        let be16 = |at: usize| frame.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
        let mut at = 12;
        let mut ethertype = be16(at).ok_or(unchecked(0))?;
        for _ in 0..2 {
            if ETH_VLAN.contains(&ethertype) {
                at += 4;
                ethertype = be16(at).ok_or(unchecked(ethertype))?;
            }
        }
        let l3 = at + 2;
        let (dst, what) = match ethertype {
            ETH_IPV4 => {
                let b = frame.get(l3 + 16..l3 + 20).ok_or(unchecked(ethertype))?;
                if frame[l3] >> 4 != 4 {
                    return Err(unchecked(ethertype));
                }
                (IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])), "IPv4 destination")
            }
            ETH_IPV6 => {
                let b = frame.get(l3 + 24..l3 + 40).ok_or(unchecked(ethertype))?;
                if frame[l3] >> 4 != 6 {
                    return Err(unchecked(ethertype));
                }
                let mut a = [0u8; 16];
                a.copy_from_slice(b);
                (IpAddr::V6(Ipv6Addr::from(a)), "IPv6 destination")
            }
            ETH_ARP => {
                // Ethernet/IPv4 ARP only: htype 1, ptype 0x0800, hlen 6, plen 4.
                let h = frame.get(l3..l3 + 28).ok_or(unchecked(ethertype))?;
                if h[0..6] != [0, 1, 8, 0, 6, 4] {
                    return Err(unchecked(ethertype));
                }
                (IpAddr::V4(Ipv4Addr::new(h[24], h[25], h[26], h[27])), "ARP target")
            }
            other => return Err(unchecked(other)),
        };
        if self.contains(dst) {
            Ok(())
        } else {
            Err(AllowlistError::Outside { dst, what, allowlist: self.to_string() })
        }
    }
}

impl fmt::Display for Allowlist {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.prefixes.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{Proto, SynthPacket, PLAN_CHOOSES};
    use crate::wire::FrameBuilder;

    fn list(s: &[&str]) -> Allowlist {
        Allowlist::new(s.iter().map(|p| p.parse().unwrap()).collect()).unwrap()
    }

    fn frames(proto: Proto, v: u8, plan: WireConfig) -> Vec<Vec<u8>> {
        let mut b = FrameBuilder::new(plan, 3).unwrap();
        let mut out = Vec::new();
        for (i, dir) in [crate::flow::Direction::Forward, crate::flow::Direction::Backward].into_iter().enumerate() {
            let rec = SynthPacket {
                flow_id: 1,
                proto,
                ip_version: v,
                direction: dir,
                ts_ns: i as i64,
                size: 100,
                tcp_flags: 0,
                server_port: 0,
                client_port: 0,
                client_rank: PLAN_CHOOSES,
                server_rank: PLAN_CHOOSES,
                sides: crate::synth::OWN_SIDES,
                last: i == 1,
                hidden: false,
                tcp_timestamps: false,
            };
            let f = b.build(&rec).next().unwrap();
            out.push([f.header, f.payload].concat());
        }
        out
    }

    #[test]
    fn plan_inside_and_outside() {
        let plan = WireConfig::default();
        assert!(list(&["10.0.0.0/8", "fd00::/8"]).check_plan(&plan).is_ok());
        let e = list(&["10.1.0.0/16", "fd00::/8"]).check_plan(&plan).unwrap_err();
        assert!(matches!(e, AllowlistError::PlanOutside { field: "server_v4", .. }), "{e}");
        assert!(e.to_string().contains("10.2.0.0/16"), "{e}");
        let e = list(&["10.0.0.0/8"]).check_plan(&plan).unwrap_err();
        assert!(matches!(e, AllowlistError::PlanOutside { field: "client_v6", .. }), "{e}");
        assert_eq!(Allowlist::new(vec![]).unwrap_err(), AllowlistError::Empty);
        assert!(Allowlist::testbed_default().check_plan(&plan).is_ok());
    }

    #[test]
    fn every_kind_of_generated_frame_is_checked_by_its_destination() {
        let inside = list(&["10.0.0.0/8", "fd00::/8"]);
        let no_servers = list(&["10.1.0.0/16", "fd00:1::/64"]);
        for (proto, v) in [(Proto::Udp, 4), (Proto::Udp, 6), (Proto::IcmpEcho, 4), (Proto::Tcp, 6), (Proto::Arp, 4)] {
            let fs = frames(proto, v, WireConfig::default());
            for f in &fs {
                assert_eq!(inside.check_frame(f), Ok(()), "{proto:?} v{v}");
            }
            // the first frame goes client -> server: refused when servers are not allowed
            let e = no_servers.check_frame(&fs[0]).unwrap_err();
            assert!(matches!(e, AllowlistError::Outside { .. }), "{proto:?} v{v}: {e}");
            // the reply goes to the client, which is allowed
            assert_eq!(no_servers.check_frame(&fs[1]), Ok(()), "{proto:?} v{v} reply");
        }
    }

    #[test]
    fn vlan_tags_are_looked_through_and_unknown_frames_refused() {
        let fs = frames(Proto::Udp, 4, WireConfig::default());
        let mut tagged = fs[0][..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
        tagged.extend_from_slice(&fs[0][12..]);
        assert_eq!(list(&["10.2.0.0/16"]).check_frame(&tagged), Ok(()));
        assert!(list(&["10.1.0.0/16"]).check_frame(&tagged).is_err());
        // LLDP, a runt and an IPv4 ethertype over a non-IPv4 header are refused
        let mut lldp = fs[0].clone();
        lldp[12..14].copy_from_slice(&[0x88, 0xcc]);
        assert!(matches!(list(&["0.0.0.0/0"]).check_frame(&lldp), Err(AllowlistError::Unchecked { ethertype: 0x88cc, .. })));
        assert!(list(&["0.0.0.0/0"]).check_frame(&fs[0][..20]).is_err());
        let mut bad = fs[0].clone();
        bad[14] = 0x65;
        assert!(list(&["0.0.0.0/0"]).check_frame(&bad).is_err());
        assert!(list(&["0.0.0.0/0"]).check_frame(&[]).is_err());
    }
}
