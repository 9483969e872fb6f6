//! `trafgen eval` end to end: the binary on captures the test builds with
//! `trafgen::fixture`: a capture against itself is zero everywhere, two different captures
//! give every metric in the JSON, `--html` writes a self-contained page with SVG charts,
//! `--split` reports floor and baseline, bad input is an error naming the file. The
//! `data_tier_*` test also splits a real capture from `../shared/data/pcap` when present.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use trafgen::eval::METRICS;
use trafgen::fixture;

const T0: i64 = 1_700_000_000 * 1_000_000_000;

fn trafgen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trafgen")).args(args).output().expect("run trafgen")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// A: the demo mix. B: other servers, ports and sizes, UDP but no ICMP/ARP/IPv6.
fn captures(dir: &Path) -> (PathBuf, PathBuf) {
    let a = dir.join("a.pcap");
    fixture::write_pcap(&a, fixture::demo_mix(40, T0)).unwrap();
    let b = dir.join("b.pcap");
    let mut frames = Vec::new();
    for i in 0..30u16 {
        let c = [192, 168, 1, (i % 7 + 1) as u8];
        let start = T0 + i64::from(i) * 35_000_000;
        frames.extend(fixture::tcp_connection(c, [192, 168, 2, 1], 50000 + i, 8443, start, 1 + usize::from(i % 3), 60, 700));
        frames.extend(fixture::udp_exchange(c, [192, 168, 2, 53], 40000 + i, 5353, start + 4_000_000, 30, 300));
    }
    frames.sort_by_key(|f| f.0);
    fixture::write_pcap(&b, frames).unwrap();
    (a, b)
}

fn json(out: &Output) -> serde_json::Value {
    assert!(out.status.success(), "status {:?}\nstderr: {}", out.status, String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("valid JSON on stdout")
}

fn rows(doc: &serde_json::Value) -> &Vec<serde_json::Value> {
    doc["metrics"].as_array().expect("metrics array")
}

#[test]
fn a_capture_against_itself_is_zero_on_every_metric_and_passes() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = captures(dir.path());
    let out = trafgen(&["eval", s(&a), s(&a)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("jsd_src_ip_rank*") && text.contains("acf_rate_100ms"), "{text}");
    assert!(text.contains(&format!("{} pass, 0 within floor, 0 FAIL, 0 n/a", METRICS.len())), "{text}");

    let doc = json(&trafgen(&["eval", s(&a), s(&a), "--json"]));
    assert_eq!(rows(&doc).len(), METRICS.len());
    for r in rows(&doc) {
        assert_eq!(r["synthetic"].as_f64(), Some(0.0), "{r}");
        assert_eq!(r["verdict"], "pass", "{r}");
        assert!(r["floor"].is_null() && r["ratio_synthetic_floor"].is_null());
    }
    assert_eq!(doc["mode"], "pair");
    assert_eq!(doc["reference"]["validity"]["violations_total"], 0);
}

#[test]
fn two_different_captures_report_every_metric_in_json() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = captures(dir.path());
    let doc = json(&trafgen(&["eval", s(&a), s(&b), "--json", "--seed", "7"]));
    let names: Vec<&str> = rows(&doc).iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(names, METRICS.iter().map(|d| d.name).collect::<Vec<_>>());
    let row = |n: &str| rows(&doc).iter().find(|r| r["name"] == n).unwrap().clone();
    for r in rows(&doc) {
        for key in ["class", "synthetic", "floor", "baseline", "ratio_synthetic_baseline", "tolerance", "verdict"] {
            assert!(r.get(key).is_some(), "{key} missing in {r}");
        }
    }
    // B has no traffic on A's server ports and no ICMP/ARP: large JSDs, failing verdicts
    assert!(row("jsd_dst_port")["synthetic"].as_f64().unwrap() > 0.3);
    assert_eq!(row("jsd_dst_port")["verdict"], "fail");
    // B has no no-flow groups: undefined, not zero
    assert!(row("emd_flow_packets_noflow")["synthetic"].is_null());
    assert_eq!(row("emd_flow_packets_noflow")["verdict"], "not_applicable");
    // the baseline keeps A's marginals: its port JSD is small, its flow structure is gone
    assert!(row("jsd_dst_port")["baseline"].as_f64().unwrap() < 0.05);
    assert!(row("ks_flow_bytes")["baseline"].as_f64().unwrap() > 0.3);
    assert_eq!(doc["seed"], 7);
    assert_eq!(doc["synthetic"]["flows_connected"], 30);
}

#[test]
fn html_report_is_one_page_with_inline_svg_charts() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = captures(dir.path());
    let page = dir.path().join("report.html");
    let out = trafgen(&["eval", s(&a), s(&b), "--html", s(&page)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    // 10 CDFs, 8 categorical bar charts, 1 autocorrelation chart
    assert_eq!(html.matches("<svg").count(), 19);
    for d in METRICS {
        assert!(html.contains(d.name), "{} missing", d.name);
    }
    // nothing to fetch: no scripts, stylesheets or images by address (SVG namespaces are names)
    for fetch in ["<script", "<link", "<img", "src=\"http", "href=\"http", "url("] {
        assert!(!html.contains(fetch), "{fetch}");
    }
}

#[test]
fn split_reports_floor_and_baseline_without_a_synthetic_arm() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = captures(dir.path());
    let keep = dir.path().join("parts");
    let doc = json(&trafgen(&["eval", "--split", "0.5", s(&a), "--json", "--split-dir", s(&keep), "--no-synthetic"]));
    assert_eq!(doc["mode"], "split");
    assert!(doc["synthetic"].is_null());
    let split = &doc["split"];
    let total = fixture::demo_mix(40, T0).len() as u64;
    assert_eq!(split["train_records"].as_u64().unwrap() + split["held_out_records"].as_u64().unwrap(), total);
    assert!(keep.join("a.train.pcap").exists() && keep.join("a.heldout.pcap").exists());
    for r in rows(&doc) {
        assert!(r["synthetic"].is_null() && r["verdict"] == "not_applicable", "{r}");
    }
    let row = |n: &str| rows(&doc).iter().find(|r| r["name"] == n).unwrap().clone();
    // the two halves of the mix are alike on single fields
    assert!(row("jsd_ip_proto")["floor"].as_f64().unwrap() < 0.05);
    // the text form says there is no synthetic arm
    let out = trafgen(&["eval", "--split", "0.5", s(&a), "--no-synthetic"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("no synthetic capture") && text.contains("floor"), "{text}");
    // by default a model trained on the first half generates the held-out span
    let doc = json(&trafgen(&["eval", "--split", "0.5", s(&a), "--json", "--epochs", "3"]));
    assert!(!doc["synthetic"].is_null());
    assert!(rows(&doc).iter().any(|r| !r["synthetic"].is_null()), "{doc}");
}

#[test]
fn bad_input_is_an_error_naming_the_file_and_bad_usage_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = captures(dir.path());
    let missing = dir.path().join("missing.pcap");
    let out = trafgen(&["eval", s(&a), s(&missing)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("missing.pcap") && !err.contains("panicked"), "{err}");
    let junk = dir.path().join("junk.pcap");
    std::fs::write(&junk, b"this is not a capture file at all").unwrap();
    let out = trafgen(&["eval", "--split", "0.5", s(&junk)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("junk.pcap") && err.contains("magic"), "{err}");
    for args in [vec!["eval", s(&a)], vec!["eval", "--split", "0.5", s(&a), s(&a)]] {
        let out = trafgen(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let out = trafgen(&["eval", "--split", "1.5", s(&a)]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("between 0 and 1"), "{err}");
}

/// Splits a real capture from `../shared/data/pcap` (or `TRAFGEN_DATA_DIR`) when present:
/// every record lands in one part, every metric is reported, and the baseline, which keeps
/// marginals and loses structure, is further from the held-out part than the floor on the
/// bytes-per-flow distribution.
#[test]
fn data_tier_eval_split_on_a_real_capture() {
    let root = std::env::var_os("TRAFGEN_DATA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data"));
    let path = root.join("pcap").join("iot-sentinel").join("HueSwitch_Setup-A-1-STA.pcap");
    if !path.exists() {
        eprintln!("data tier skipped: {} not found", path.display());
        return;
    }
    let mut reader = trafgen::capture::CaptureReader::open(&path).unwrap();
    let mut records = 0u64;
    while reader.next_record().unwrap().is_some() {
        records += 1;
    }
    let out = trafgen(&["eval", "--split", "0.5", s(&path), "--json", "--epochs", "5"]);
    let doc = json(&out);
    // the synthetic arm: a model trained on the first half generated the held-out span
    assert!(!doc["synthetic"].is_null(), "{doc}");
    assert_eq!(doc["synthetic"]["validity"]["violations_total"], 0, "{}", doc["synthetic"]);
    let split = &doc["split"];
    assert_eq!(split["train_records"].as_u64().unwrap() + split["held_out_records"].as_u64().unwrap(), records);
    assert_eq!(rows(&doc).len(), METRICS.len());
    let row = |n: &str| rows(&doc).iter().find(|r| r["name"] == n).unwrap().clone();
    let (floor, base) = (row("ks_flow_bytes")["floor"].as_f64().unwrap(), row("ks_flow_bytes")["baseline"].as_f64().unwrap());
    assert!(base > floor, "baseline {base} vs floor {floor}");
    let text = trafgen(&["eval", "--split", "0.5", s(&path), "--no-synthetic"]);
    eprintln!("{}", String::from_utf8_lossy(&text.stdout));
}
