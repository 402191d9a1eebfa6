//! Where `run`'s relative paths point, so `jt808-harness run` gives the same result from any
//! directory:
//!
//! - paths inside a scenario file (a capture's `path`, the files of a `[client] command`) are
//!   relative to the scenario file ([`crate::scenario::Scenario::load`] resolves them);
//! - `--snapshots` (default `tests/snapshots`) is relative to the scenario's **project root**: the
//!   nearest directory above the scenario file that holds a `Cargo.toml`, or, for a scenario
//!   outside any crate, the parent of the scenario's directory (`x/scenarios/a.toml` -> `x`);
//! - with no PATH, `run` takes the `scenarios/` of the project the current directory is in (the
//!   nearest directory upwards with a `Cargo.toml` and a `scenarios/`), else `./scenarios`.
//!
//! Paths given on the command line (PATH, `--junit`, an absolute `--snapshots`) are the shell's:
//! relative to the current directory.

use std::path::{Path, PathBuf};

/// The absolute form of `p` (lexically; nothing is resolved through the file system).
fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The project root of the scenario file `scenario`, as the module doc defines it.
pub fn project_root(scenario: &Path) -> PathBuf {
    let file = absolute(scenario);
    let dir = file.parent().unwrap_or(Path::new("/"));
    dir.ancestors()
        .find(|d| d.join("Cargo.toml").is_file())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| dir.parent().unwrap_or(dir).to_path_buf())
}

/// The snapshot directory for `scenario`: `snapshots` itself when absolute, else below the
/// scenario's project root.
pub fn snapshots_for(scenario: &Path, snapshots: &Path) -> PathBuf {
    if snapshots.is_absolute() {
        snapshots.to_path_buf()
    } else {
        project_root(scenario).join(snapshots)
    }
}

/// What `run` runs without a PATH: the `scenarios/` of the project `cwd` (absolute) is in, else
/// `cwd/scenarios`; written `scenarios` when that is `cwd`'s own, so names stay short.
pub fn default_scenarios(cwd: &Path) -> PathBuf {
    match cwd
        .ancestors()
        .find(|d| d.join("Cargo.toml").is_file() && d.join("scenarios").is_dir())
    {
        Some(d) if d == cwd => PathBuf::from("scenarios"),
        Some(d) => d.join("scenarios"),
        None => PathBuf::from("scenarios"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_project_root_is_the_crate_above_the_scenario_else_its_directorys_parent() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("crate/scenarios/deep")).unwrap();
        std::fs::create_dir_all(root.join("loose/scenarios")).unwrap();
        std::fs::write(root.join("crate/Cargo.toml"), "").unwrap();
        let in_crate = root.join("crate/scenarios/deep/a.toml");
        assert_eq!(project_root(&in_crate), root.join("crate"));
        assert_eq!(
            snapshots_for(&in_crate, Path::new("tests/snapshots")),
            root.join("crate/tests/snapshots")
        );
        assert_eq!(snapshots_for(&in_crate, Path::new("/abs")), Path::new("/abs"));
        assert_eq!(project_root(&root.join("loose/scenarios/a.toml")), root.join("loose"));
        assert_eq!(
            default_scenarios(&root.join("crate/scenarios/deep")),
            root.join("crate/scenarios")
        );
        assert_eq!(default_scenarios(&root.join("loose")), Path::new("scenarios"));
        assert_eq!(default_scenarios(&root.join("crate")), Path::new("scenarios"));
    }
}
