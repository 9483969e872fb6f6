//! Link types and link-layer stripping.
//!
//! This module owns the mapping from a libpcap DLT value to a [`LinkType`] and the removal of
//! the link-layer header of one frame, giving the MAC pair (when the link has one), the
//! EtherType and the offset where the network layer starts. VLAN tags (802.1Q, 802.1ad/QinQ)
//! are walked here. It never panics on any input: short frames yield `None`.

/// Link types trafgen can strip down to the network layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkType {
    /// DLT_EN10MB (1): Ethernet II, possibly VLAN-tagged.
    Ethernet,
    /// DLT_RAW (12/14), LINKTYPE_RAW (101), LINKTYPE_IPV4 (228), LINKTYPE_IPV6 (229).
    RawIp,
    /// DLT_NULL (0): 4-byte address family in the writer's byte order.
    Null,
    /// DLT_LOOP (108): 4-byte address family in network byte order.
    Loop,
    /// DLT_LINUX_SLL (113): Linux cooked capture v1.
    LinuxSll,
    /// DLT_LINUX_SLL2 (276): Linux cooked capture v2.
    LinuxSll2,
}

impl LinkType {
    /// Maps a DLT value as libpcap reports it; `None` for unsupported types.
    pub fn from_dlt(dlt: i32) -> Option<LinkType> {
        Some(match dlt {
            1 => LinkType::Ethernet,
            12 | 14 | 101 | 228 | 229 => LinkType::RawIp,
            0 => LinkType::Null,
            108 => LinkType::Loop,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            _ => return None,
        })
    }

    /// Short name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            LinkType::Ethernet => "ethernet",
            LinkType::RawIp => "raw_ip",
            LinkType::Null => "null",
            LinkType::Loop => "loop",
            LinkType::LinuxSll => "linux_sll",
            LinkType::LinuxSll2 => "linux_sll2",
        }
    }
}

/// EtherType values used by the decoder.
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const VLAN: u16 = 0x8100;
    pub const QINQ: u16 = 0x88a8;
    pub const QINQ_OLD: u16 = 0x9100;
    pub const IPV6: u16 = 0x86dd;
    pub const EAPOL: u16 = 0x888e;
    pub const LLDP: u16 = 0x88cc;
    /// Pseudo EtherType for raw IP links: the version nibble decides.
    pub const RAW_IP: u16 = 0xffff;
}

/// The link layer of one frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkInfo {
    /// Source and destination MAC (Ethernet); SLL carries only a source address.
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub has_mac: bool,
    /// EtherType of the network layer (after VLAN tags), or [`ethertype::RAW_IP`].
    pub ethertype: u16,
    /// Outermost VLAN id (0 when untagged) and number of tags.
    pub vlan_id: u16,
    pub vlan_depth: u8,
    /// Byte offset where the network layer starts.
    pub l3_offset: usize,
}

const MAX_VLAN_TAGS: u8 = 8;

/// Strips the link layer of `frame`. Returns `None` when the frame is too short for its header.
pub fn strip(link: LinkType, frame: &[u8]) -> Option<LinkInfo> {
    let mut info = LinkInfo::default();
    match link {
        LinkType::Ethernet => {
            if frame.len() < 14 {
                return None;
            }
            info.dst_mac.copy_from_slice(&frame[0..6]);
            info.src_mac.copy_from_slice(&frame[6..12]);
            info.has_mac = true;
            let mut et = u16::from_be_bytes([frame[12], frame[13]]);
            let mut off = 14;
            while matches!(et, ethertype::VLAN | ethertype::QINQ | ethertype::QINQ_OLD) {
                if frame.len() < off + 4 || info.vlan_depth >= MAX_VLAN_TAGS {
                    return None;
                }
                if info.vlan_depth == 0 {
                    info.vlan_id = u16::from_be_bytes([frame[off], frame[off + 1]]) & 0x0fff;
                }
                info.vlan_depth += 1;
                et = u16::from_be_bytes([frame[off + 2], frame[off + 3]]);
                off += 4;
            }
            info.ethertype = et;
            info.l3_offset = off;
        }
        LinkType::RawIp => {
            info.ethertype = ethertype::RAW_IP;
            info.l3_offset = 0;
        }
        LinkType::Null | LinkType::Loop => {
            if frame.len() < 4 {
                return None;
            }
            let raw = [frame[0], frame[1], frame[2], frame[3]];
            // DLT_NULL is in the writer's byte order: whichever reading is small is right.
            let family = match link {
                LinkType::Loop => u32::from_be_bytes(raw),
                _ => {
                    let le = u32::from_le_bytes(raw);
                    if le > 0xffff { u32::from_be_bytes(raw) } else { le }
                }
            };
            info.ethertype = match family {
                2 => ethertype::IPV4,
                // AF_INET6 differs by OS: 10 Linux, 24 NetBSD/OpenBSD, 28 FreeBSD, 30 macOS.
                10 | 24 | 28 | 30 => ethertype::IPV6,
                _ => 0,
            };
            info.l3_offset = 4;
        }
        LinkType::LinuxSll => {
            // packet type(2) ARPHRD(2) addr len(2) addr(8) protocol(2)
            if frame.len() < 16 {
                return None;
            }
            let alen = u16::from_be_bytes([frame[4], frame[5]]) as usize;
            if alen == 6 {
                info.src_mac.copy_from_slice(&frame[6..12]);
                info.has_mac = true;
            }
            info.ethertype = u16::from_be_bytes([frame[14], frame[15]]);
            info.l3_offset = 16;
        }
        LinkType::LinuxSll2 => {
            // protocol(2) reserved(2) ifindex(4) ARPHRD(2) packet type(1) addr len(1) addr(8)
            if frame.len() < 20 {
                return None;
            }
            let alen = frame[11] as usize;
            if alen == 6 {
                info.src_mac.copy_from_slice(&frame[12..18]);
                info.has_mac = true;
            }
            info.ethertype = u16::from_be_bytes([frame[0], frame[1]]);
            info.l3_offset = 20;
        }
    }
    Some(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qinq_is_walked_and_outer_vlan_kept() {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x88, 0xa8, 0x00, 0x64, 0x81, 0x00, 0x00, 0xc8, 0x08, 0x00]);
        f.extend_from_slice(&[0x45; 20]);
        let i = strip(LinkType::Ethernet, &f).unwrap();
        assert_eq!((i.vlan_id, i.vlan_depth, i.ethertype, i.l3_offset), (100, 2, ethertype::IPV4, 22));
    }

    #[test]
    fn short_frames_are_none_not_panics() {
        for lt in [LinkType::Ethernet, LinkType::Null, LinkType::Loop, LinkType::LinuxSll, LinkType::LinuxSll2] {
            for n in 0..4 {
                assert!(strip(lt, &vec![0x81; n]).is_none(), "{lt:?} {n}");
            }
        }
        // a VLAN tag cut in half
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x81, 0x00, 0x00]);
        assert!(strip(LinkType::Ethernet, &f).is_none());
    }

    #[test]
    fn null_accepts_both_byte_orders() {
        let le = strip(LinkType::Null, &[2, 0, 0, 0]).unwrap();
        let be = strip(LinkType::Null, &[0, 0, 0, 2]).unwrap();
        assert_eq!(le.ethertype, ethertype::IPV4);
        assert_eq!(be.ethertype, ethertype::IPV4);
        assert_eq!(strip(LinkType::Loop, &[0, 0, 0, 30]).unwrap().ethertype, ethertype::IPV6);
    }

    #[test]
    fn dlt_mapping() {
        assert_eq!(LinkType::from_dlt(101), Some(LinkType::RawIp));
        assert_eq!(LinkType::from_dlt(276), Some(LinkType::LinuxSll2));
        assert_eq!(LinkType::from_dlt(105), None); // 802.11
    }
}
