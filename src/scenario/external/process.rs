//! The external client as a child process: started with the gateway URL, its stdout read line by
//! line, commands written to its stdin, its stderr kept (the last [`STDERR_TAIL_BYTES`]) for the
//! failure report, and killed at the end of the run. `kill_on_drop` makes sure a harness that
//! panics or times out never leaves it behind.

use std::process::Stdio;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use super::contract::MAX_LINE_BYTES;

/// Bytes of the process's stderr kept for the failure report (the end of it: where it died).
pub const STDERR_TAIL_BYTES: usize = 16 * 1024;

/// What the stdout reader saw.
#[derive(Debug)]
pub enum Stdout {
    /// One line (1-based number, text without the newline).
    Line(usize, String),
    /// A line longer than [`MAX_LINE_BYTES`]; reading stops there.
    TooLong(usize),
    /// Not UTF-8; reading stops there.
    NotUtf8(usize),
    /// End of stdout.
    Eof,
}

/// A running external client.
#[derive(Debug)]
pub struct Process {
    child: Child,
    stdin: Option<ChildStdin>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

/// `command` with every `{url}` replaced, for the error message and for spawning.
pub fn substitute(command: &[String], url: &str) -> Vec<String> {
    command.iter().map(|a| a.replace("{url}", url)).collect()
}

impl Process {
    /// Starts `argv` (already substituted) with `env` added to the harness's environment.
    pub fn spawn(
        argv: &[String],
        env: &[(String, String)],
    ) -> Result<(Process, mpsc::UnboundedReceiver<Stdout>), String> {
        let (program, args) = argv.split_first().ok_or("`client.command` is empty")?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // Its own process group, so the end of the run kills what it started too (a browser).
        #[cfg(unix)]
        cmd.process_group(0);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start client command {argv:?}: {e}"))?;
        let stdout = child.stdout.take().ok_or("client stdout not piped")?;
        let stderr_pipe = child.stderr.take().ok_or("client stderr not piped")?;
        let stdin = child.stdin.take();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(read_lines(stdout, tx));
        let stderr: Arc<Mutex<Vec<u8>>> = Arc::default();
        tokio::spawn(keep_tail(stderr_pipe, stderr.clone()));
        Ok((Process { child, stdin, stderr }, rx))
    }

    /// Writes one line to the process's stdin; an error when it closed its stdin or exited.
    pub async fn write_line(&mut self, line: &str) -> std::io::Result<()> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "stdin closed"));
        };
        stdin.write_all(line.as_bytes()).await?;
        stdin.write_all(b"\n").await?;
        stdin.flush().await
    }

    /// The exit status if the process has ended.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Kills the process (if still running) and reaps it; returns how it had ended if it ended on
    /// its own before.
    pub async fn kill(&mut self) -> Option<std::process::ExitStatus> {
        self.stdin = None;
        let before = self.exited();
        #[cfg(unix)]
        if let Some(pid) = self.child.id().and_then(|p| libc::pid_t::try_from(p).ok()) {
            // SAFETY: killpg only sends a signal; the group is the child's own (process_group(0)),
            // so nothing of the harness's is hit.
            unsafe {
                libc::killpg(pid, libc::SIGKILL);
            }
        }
        if before.is_none() {
            let _ = self.child.start_kill();
        }
        let _ = self.child.wait().await;
        before
    }

    /// The end of what the process wrote on stderr, as text.
    pub fn stderr_tail(&self) -> String {
        let b = self.stderr.lock().expect("stderr lock");
        String::from_utf8_lossy(&b).into_owned()
    }
}

async fn read_lines(stdout: tokio::process::ChildStdout, tx: mpsc::UnboundedSender<Stdout>) {
    let mut r = BufReader::new(stdout);
    let mut n = 0;
    loop {
        n += 1;
        let mut buf = Vec::new();
        // `take` bounds what one line may make us hold; a read error ends stdout like EOF.
        let got = (&mut r)
            .take(MAX_LINE_BYTES as u64 + 1)
            .read_until(b'\n', &mut buf)
            .await
            .unwrap_or_default();
        if got == 0 {
            let _ = tx.send(Stdout::Eof);
            return;
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
        } else if buf.len() > MAX_LINE_BYTES {
            let _ = tx.send(Stdout::TooLong(n));
            return;
        }
        match String::from_utf8(buf) {
            Ok(s) if s.trim().is_empty() => {}
            Ok(s) => {
                if tx.send(Stdout::Line(n, s)).is_err() {
                    return;
                }
            }
            Err(_) => {
                let _ = tx.send(Stdout::NotUtf8(n));
                return;
            }
        }
    }
}

async fn keep_tail(mut pipe: tokio::process::ChildStderr, into: Arc<Mutex<Vec<u8>>>) {
    let mut chunk = [0u8; 4096];
    while let Ok(n) = pipe.read(&mut chunk).await {
        if n == 0 {
            return;
        }
        let mut b = into.lock().expect("stderr lock");
        b.extend_from_slice(&chunk[..n]);
        if b.len() > STDERR_TAIL_BYTES {
            let cut = b.len() - STDERR_TAIL_BYTES;
            b.drain(..cut);
        }
    }
}
