//! Replays every file of every fuzz target's seed corpus (`fuzz/corpus/TARGET/`) through the same
//! property check the fuzzer runs (`fuzz/checks.rs`), so CI catches a regression without fuzzing.
//! The corpora are made by the `#[ignore]`d `generate_corpora` below from the bundled vectors,
//! captures and scenarios; crashing inputs a fuzzer found are added to them by hand.

#[path = "../fuzz/checks.rs"]
mod checks;
#[allow(dead_code)] // each test binary uses a part of the shared fixtures
mod support;

use std::path::{Path, PathBuf};

/// A target's name and its property check.
type Target = (&'static str, fn(&[u8]));

const TARGETS: [Target; 6] = [
    ("decoder_stream", checks::decoder_stream),
    ("bodies", checks::bodies),
    ("capture_reader", checks::capture_reader),
    ("scenario_loader", checks::scenario_loader),
    ("pcap_import", checks::pcap_import),
    ("redact", checks::redact),
];

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn corpus(target: &str) -> PathBuf {
    root().join("fuzz/corpus").join(target)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

#[test]
fn every_corpus_file_holds_its_property() {
    for (target, check) in TARGETS {
        let inputs = files(&corpus(target));
        assert!(inputs.len() >= 3, "{target}: only {} seed files", inputs.len());
        for path in inputs {
            let data = std::fs::read(&path).expect("corpus file");
            let name = path.display().to_string();
            if let Err(panic) = std::panic::catch_unwind(|| check(&data)) {
                let why = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panic!("{target}: {name}: {why}");
            }
        }
    }
}

#[test]
fn committed_corpora_stay_small() {
    let total: u64 = TARGETS
        .iter()
        .flat_map(|(t, _)| files(&corpus(t)))
        .map(|p| std::fs::metadata(p).expect("corpus file").len())
        .sum();
    assert!(
        total < 1 << 20,
        "fuzz/corpus holds {total} bytes; keep it well under 2 MB"
    );
}

/// The bundled vectors whose hex is whole: (id, wire bytes).
fn vectors() -> Vec<(String, Vec<u8>)> {
    support::vectors::all()
        .into_iter()
        .filter_map(|v| Some((v.exact_bytes()?, v.id)))
        .map(|(bytes, id)| (id, bytes))
        .collect()
}

/// The first `lines` lines of a text file.
fn head(path: &Path, lines: usize) -> Vec<u8> {
    let text = std::fs::read_to_string(path).expect("bundled file");
    let mut out: String = text.split_inclusive('\n').take(lines).collect();
    out.truncate(out.len().min(16 << 10));
    out.into_bytes()
}

fn write_seed(target: &str, name: &str, data: &[u8]) {
    let dir = corpus(target);
    std::fs::create_dir_all(&dir).expect("corpus dir");
    std::fs::write(dir.join(name), data).expect("seed file");
}

/// Regenerates the seed corpora (`cargo test --test fuzz_corpus -- --ignored`): vectors for the
/// decoder (each alone under the default and two small-limit settings, all of them in one stream
/// cut at a few points) and the bodies (every vector's body under its id and version), the
/// bundled captures (first lines) for the reader and redaction, the scenarios, and the pcap.
#[test]
#[ignore = "writes fuzz/corpus/; run by hand after changing the vectors, captures or scenarios"]
fn generate_corpora() {
    use jt808_harness::codec::{Deframer, Item};
    let vectors = vectors();
    for (id, wire) in &vectors {
        write_seed("decoder_stream", id, &checks::decoder_stream_input(0, &[5], wire));
        Deframer::default().push(wire, |item| {
            if let Item::Frame(f) = item {
                let id_at = checks::BODY_IDS.iter().position(|&i| i == f.header.msg_id);
                let v_at = checks::VERSIONS.iter().position(|&v| v == f.header.version);
                if let (Some(i), Some(v)) = (id_at, v_at) {
                    let sel = (i * checks::VERSIONS.len() + v) as u8;
                    write_seed("bodies", id, &[&[sel][..], f.body()].concat());
                }
            }
        });
    }
    let all: Vec<u8> = vectors.iter().flat_map(|(_, w)| w.clone()).collect();
    for (name, cfg) in [
        ("all_vectors", 0u8),
        ("all_vectors_small_limits", 0b0110_1101),
        ("all_vectors_rejoin", 0b1111_1111),
    ] {
        write_seed(
            "decoder_stream",
            name,
            &checks::decoder_stream_input(cfg, &[1, 300, 301, 2000], &all),
        );
    }
    for entry in std::fs::read_dir(root().join("captures")).expect("captures/") {
        let path = entry.expect("entry").path();
        let name = path.file_name().expect("file name").to_string_lossy().into_owned();
        if name.ends_with(".jsonl") {
            write_seed("capture_reader", &name, &head(&path, 40));
            write_seed("redact", &name, &head(&path, 40));
        } else if name.ends_with(".pcap") || name.ends_with(".pcapng") {
            let bytes = std::fs::read(&path).expect("pcap");
            write_seed("pcap_import", &name, &bytes);
            // Cut inside the file header, inside a packet header, and inside a packet.
            for cut in [16, 30, bytes.len() / 2] {
                write_seed(
                    "pcap_import",
                    &format!("{name}.cut{cut}"),
                    &bytes[..cut.min(bytes.len())],
                );
            }
        }
    }
    for entry in std::fs::read_dir(root().join("scenarios")).expect("scenarios/") {
        let path = entry.expect("entry").path();
        let name = path.file_name().expect("file name").to_string_lossy().into_owned();
        write_seed("scenario_loader", &name, &std::fs::read(&path).expect("scenario"));
    }
}
