//! Command implementations behind the `jt808-harness` binary. `main.rs` only parses arguments and
//! maps errors to exit codes; each command here is a plain function that tests can call.

pub mod decode;
pub mod decode_capture;
pub mod run;

use std::io::{self, Write};

/// Writes `text` to standard output. A reader that went away (`inspect F | head -1`) is not an
/// error: the command ends quietly with its own status, as Unix tools do.
pub fn print_quietly(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// True when `error`, or any error it wraps, is a broken pipe: standard output's reader went
/// away, which ends a command quietly rather than as a failure.
pub fn is_broken_pipe(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut e = Some(error);
    while let Some(err) = e {
        if err
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
        {
            return true;
        }
        e = err.source();
    }
    false
}
