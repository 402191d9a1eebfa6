//! The one check every tool that writes a file from another file makes first: the output must not
//! be the input. `File::create` truncates before a single byte is read, so an `--out` that names
//! the input (spelt differently, through a symlink or as a hard link) would destroy it.

use std::path::Path;

/// True when `output` is the very file `input` is: same device and inode (Unix) or file index
/// (Windows), so a different spelling of the path, a symlink or a hard link is still caught.
/// Checked with `same-file`, which opens both only for reading; call it before opening anything
/// for writing. An output that does not exist yet (or cannot be opened) is not the input.
pub fn same_file(input: &Path, output: &Path) -> bool {
    same_file::is_same_file(input, output).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_file_sees_through_spellings_symlinks_and_hard_links() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = dir.path().join("in.pcap");
        std::fs::write(&input, b"x").expect("write");
        let other = dir.path().join("other.pcap");
        std::fs::write(&other, b"x").expect("write");
        assert!(same_file(&input, &input));
        assert!(same_file(&input, &dir.path().join(".").join("in.pcap")));
        assert!(!same_file(&input, &other), "same content, another file");
        assert!(!same_file(&input, &dir.path().join("new.jsonl")), "does not exist yet");
        #[cfg(unix)]
        {
            let link = dir.path().join("link.pcap");
            std::os::unix::fs::symlink(&input, &link).expect("symlink");
            assert!(same_file(&input, &link));
            let hard = dir.path().join("hard.pcap");
            std::fs::hard_link(&input, &hard).expect("hard link");
            assert!(same_file(&input, &hard));
        }
    }
}
