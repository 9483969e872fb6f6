//! Writes the seed inputs of every fuzz target into `fuzz/seeds/<target>/` (made from the
//! test fixture builders and `models/default`; nothing is copied from captures). Run by
//! `scripts/fuzz.sh` before fuzzing; libFuzzer reads the seeds and keeps its own corpus.
use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let sets = [
        ("capture", trafgen_fuzz::capture::seeds()),
        ("pcap_differential", trafgen_fuzz::capture::differential_seeds()),
        ("config", trafgen_fuzz::config::seeds()),
        ("model", trafgen_fuzz::model::seeds()),
    ];
    for (target, seeds) in sets {
        let dir = root.join(target);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create seed dir");
        for (name, bytes) in &seeds {
            std::fs::write(dir.join(name), bytes).expect("write seed");
        }
        println!("{target}: {} seeds in {}", seeds.len(), dir.display());
    }
}
