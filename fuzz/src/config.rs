//! The `config` target: the daemon's TOML configuration (`trafgend.toml`) and the wire
//! settings file a stream may name (`wire_config`), parsed from the same text.
//!
//! Input: the file's text (not UTF-8: nothing to do, `Config::load` refuses such a file
//! before parsing). Beyond "no panic", every daemon-config error must be located: the file,
//! a line:column inside the text, and a field.

use std::path::Path;

use trafgen::daemon::config::Config;
use trafgen::wire::address::WireConfig;

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let path = Path::new("fuzz/trafgend.toml");
    match Config::from_toml_str(text, path) {
        Ok(cfg) => assert!(!cfg.streams.is_empty(), "a valid config has a stream"),
        Err(e) => {
            let shown = e.to_string();
            let d = e.diagnostic().unwrap_or_else(|| panic!("not located: {shown}"));
            let lines = text.split('\n').count();
            assert!(d.line >= 1 && d.line <= lines && d.column >= 1, "{shown} (text has {lines} lines)");
            let line_chars = text.split('\n').nth(d.line - 1).map_or(0, |l| l.chars().count());
            assert!(d.column <= line_chars + 1, "{shown}: column past the end of line {}", d.line);
            // TOML allows an empty key (`'' = 1`): its error names the field as ``
            assert!((!d.field.is_empty() || shown.contains("field ``")) && shown.starts_with("fuzz/trafgend.toml:"), "{shown}");
        }
    }
    if let Err(e) = WireConfig::from_toml_str(text, Path::new("fuzz/wire.toml")) {
        assert!(e.to_string().starts_with("fuzz/wire.toml: "), "{e}");
    }
}

/// Seeds: the reference configuration, the configuration of the unit tests, a wire file.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let reference = std::fs::read(root.join("etc/trafgend.toml")).expect("etc/trafgend.toml");
    let small = b"[daemon]\nmetrics_listen = \"[::1]:9100\"\nlog_format = \"pretty\"\n\n[[stream]]\nname = \"lab-web\"\ninterface = \"veth0\"\nmodel = \"models/web\"\nseed = 42\npps = 1000\nallowlist = [\"10.0.0.0/8\", \"fd00::/8\"]\n\n[stream.addresses]\nclient_v4 = \"10.1.0.0/16\"\nserver_v4 = \"10.2.0.0/16\"\nclient_v6 = \"fd00:1::/64\"\n\n[[stream]]\nname = \"replay\"\ninterface = \"eth1\"\npcap = \"/var/lib/trafgend/sample.pcapng\"\nseed = 7\nmultiplier = 2.5\nloop = 3\ntopspeed = false\nstall = \"shift\"\ncpu = 1\nfifo_priority = 10\nceiling_pps = 5e4\nallowlist = [\n    \"192.168.0.0/16\",\n]\n";
    let wire = b"client_v4 = \"10.1.0.0/16\"\nserver_v6 = \"fd00:2::/64\"\nclient_hosts = 10\nephemeral_ports = [40000, 50000]\ntcp_server_ports = [443]\nmtu = 1500\nttl = 64\npayload_pattern = \"ab\"\nflow_idle_s = 30.0\n";
    vec![("reference".into(), reference), ("small".into(), small.to_vec()), ("wire".into(), wire.to_vec())]
}
