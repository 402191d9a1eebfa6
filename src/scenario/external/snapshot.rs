//! Where an external client's normalised transcripts are stored, and the comparison with them.
//!
//! They live in `tests/snapshots/` beside the built-in client's, as
//! `external_client__<scenario>@external-<label>.snap`: the name insta gives
//! `assert_snapshot!("<scenario>@external-<label>", ..)` in `tests/external_client.rs`, so `run`
//! and the test suite read and write the same files, and `cargo insta review` works on both.

use std::path::{Path, PathBuf};

use crate::cli::run::{diff, snapshot_content};

/// The snapshot name (without insta's file prefix): `<scenario>@external-<label>`.
pub fn name(scenario: &str, label: &str) -> String {
    format!("{scenario}@external-{label}")
}

/// The snapshot file.
pub fn path(dir: &Path, scenario: &str, label: &str) -> PathBuf {
    dir.join(format!("external_client__{}.snap", name(scenario, label)))
}

/// None when `yaml` equals the stored snapshot, else a diff (or a note that none is stored). With
/// `write_new`, a changed or missing one is written next to it as `.snap.new` for review.
pub fn compare(dir: &Path, scenario: &str, label: &str, yaml: &str, write_new: bool) -> Option<String> {
    let snap = path(dir, scenario, label);
    let result = match std::fs::read_to_string(&snap) {
        Ok(text) => diff(snapshot_content(&text), yaml, "stored snapshot", "this run"),
        Err(_) => Some(format!("no stored snapshot at {}", snap.display())),
    };
    match result {
        Some(diff) if write_new => {
            let header = "---\nsource: tests/external_client.rs\nexpression: yaml\n---\n";
            let new = snap.with_extension("snap.new");
            // A `.snap.new` that could not be written is said, never dropped silently.
            match std::fs::write(&new, format!("{header}{yaml}")) {
                Ok(()) => Some(diff),
                Err(e) => Some(format!("{diff}\ncould not write {}: {e}", new.display())),
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snap_new_that_cannot_be_written_is_reported() {
        let dir = Path::new("/nonexistent/jt808-harness-snapshots");
        let r = compare(dir, "s", "node", "events: []\n", true).expect("no stored snapshot");
        assert!(r.contains("no stored snapshot"), "{r}");
        assert!(
            r.contains("could not write /nonexistent/jt808-harness-snapshots/"),
            "{r}"
        );
        // Without write_new nothing is attempted, so nothing is reported beyond the missing file.
        let r = compare(dir, "s", "node", "events: []\n", false).expect("no stored snapshot");
        assert!(!r.contains("could not write"), "{r}");
    }
}
