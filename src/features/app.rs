//! Application guess from well-known ports (IP flows) or the EtherType (no-flow traffic).
//! A guess, as NeCSTGen's: no payload inspection.

use crate::capture::link::ethertype;

/// Application label of a flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum App {
    Http, Tls, Smtp, Ssh, Ftp, FtpData, Irc, Imap, Pop, Sip, Telnet, Dns, Dhcp, Dhcpv6, Modbus,
    Ntp, Snmp, Mdns, Ssdp, Stun, Syslog, Smb, Netbios, Rdp, Mqtt, Coap, Ldap, Kerberos, Llmnr,
    Arp, Eapol, Lldp, Icmp, OtherTcp, OtherUdp, Other,
}

impl App {
    pub fn name(self) -> &'static str {
        use App::*;
        match self {
            Http => "http", Tls => "tls", Smtp => "smtp", Ssh => "ssh", Ftp => "ftp", FtpData => "ftp_data",
            Irc => "irc", Imap => "imap", Pop => "pop", Sip => "sip", Telnet => "telnet", Dns => "dns",
            Dhcp => "dhcp", Dhcpv6 => "dhcpv6", Modbus => "modbus", Ntp => "ntp", Snmp => "snmp",
            Mdns => "mdns", Ssdp => "ssdp", Stun => "stun", Syslog => "syslog", Smb => "smb",
            Netbios => "netbios", Rdp => "rdp", Mqtt => "mqtt", Coap => "coap", Ldap => "ldap",
            Kerberos => "kerberos", Llmnr => "llmnr", Arp => "arp", Eapol => "eapol", Lldp => "lldp",
            Icmp => "icmp", OtherTcp => "other_tcp", OtherUdp => "other_udp", Other => "other",
        }
    }
}

/// The application a well-known port belongs to.
pub fn by_port(port: u16) -> Option<App> {
    use App::*;
    Some(match port {
        80 | 8080 | 8000 | 8008 => Http,
        443 | 8443 | 993 | 995 | 465 | 853 => match port {
            993 => Imap,
            995 => Pop,
            465 => Smtp,
            _ => Tls,
        },
        25 | 587 => Smtp,
        22 => Ssh,
        21 => Ftp,
        20 => FtpData,
        6667 | 6697 | 194 => Irc,
        143 => Imap,
        110 => Pop,
        5060 | 5061 => Sip,
        23 => Telnet,
        53 => Dns,
        67 | 68 => Dhcp,
        546 | 547 => Dhcpv6,
        502 => Modbus,
        123 => Ntp,
        161 | 162 => Snmp,
        5353 => Mdns,
        1900 => Ssdp,
        3478 | 3479 => Stun,
        514 | 6514 => Syslog,
        445 => Smb,
        137..=139 => Netbios,
        3389 => Rdp,
        1883 | 8883 => Mqtt,
        5683 | 5684 => Coap,
        389 | 636 => Ldap,
        88 => Kerberos,
        5355 => Llmnr,
        _ => return None,
    })
}

/// Guess for a flow from its server port (then client port), protocol and EtherType.
pub fn guess(ip_proto: u8, ip_version: u8, ethertype_: u16, server_port: u16, client_port: u16) -> App {
    if ip_version == 0 {
        return match ethertype_ {
            ethertype::ARP => App::Arp,
            ethertype::EAPOL => App::Eapol,
            ethertype::LLDP => App::Lldp,
            _ => App::Other,
        };
    }
    match ip_proto {
        1 | 58 => App::Icmp,
        6 | 17 | 132 | 33 | 136 => by_port(server_port).or_else(|| by_port(client_port)).unwrap_or(if ip_proto == 6 {
            App::OtherTcp
        } else if ip_proto == 17 {
            App::OtherUdp
        } else {
            App::Other
        }),
        _ => App::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn guesses() {
        assert_eq!(guess(6, 4, 0x800, 443, 51234), App::Tls);
        assert_eq!(guess(17, 6, 0x86dd, 5353, 5353), App::Mdns);
        assert_eq!(guess(6, 4, 0x800, 40000, 502), App::Modbus);
        assert_eq!(guess(0, 0, 0x888e, 0, 0), App::Eapol);
        assert_eq!(guess(6, 4, 0x800, 40000, 41000), App::OtherTcp);
    }
}
