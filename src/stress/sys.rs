//! What the operating system says about this process, and the loopback plumbing that lets one process
//! hold tens of thousands of TCP connections. Linux only in substance (`/proc`, `127.0.0.0/8` routed to
//! `lo`); elsewhere the `/proc` readers return [`io::ErrorKind::Unsupported`]. No tokio here except
//! [`connect_from`], which is the one place a client socket is bound to a chosen source address.
//!
//! Why the plumbing is needed: a stress run puts the gateway and N clients in **one process**, so every
//! connection costs two file descriptors (the client's socket and the gateway's accepted socket), and
//! every client socket needs its own ephemeral port on its source address. Linux hands out ephemeral
//! ports from `net.ipv4.ip_local_port_range` (default `32768 60999`, 28,232 ports); a socket bound to
//! `(ip, 0)` before `connect` gets a port unique on that `ip`, so one source address carries at most
//! about 28,000 clients. The whole of `127.0.0.0/8` is local on Linux, so clients spread over
//! 127.0.0.1, 127.0.0.2, ... without any configuration.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;

use serde::Serialize;

pub use crate::procstat::{Memory, ResourceSample, cpu_time, memory, parse_stat_ticks, parse_status, sample};
use crate::procstat::{invalid, read_proc};
use tokio::net::{TcpSocket, TcpStream};

/// Default cap of client connections per loopback source address: a little under the 28,232 ports of
/// Linux's default ephemeral range (`32768 60999`), leaving room for the few other sockets the
/// process opens. Lower it with [`source_ip`]'s `per_address` when `ip_local_port_range` is narrower
/// (see [`ephemeral_ports`]).
pub const MAX_CONNECTIONS_PER_SOURCE: usize = 28_000;

/// File descriptors one client costs when the gateway is in the same process: its own socket and the
/// gateway's accepted socket.
pub const FDS_PER_CLIENT: u64 = 2;

/// Descriptors kept spare on top of [`FDS_PER_CLIENT`] × clients: stdio, the listener, tokio's epoll
/// and wakers, report files, the `/proc` readers.
pub const FD_HEADROOM: u64 = 64;

/// The open-file limit (`RLIMIT_NOFILE`) before and after [`raise_nofile_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct NofileLimit {
    /// Soft limit found when the process started.
    pub soft_before: u64,
    /// Soft limit now (the hard limit if raising worked).
    pub soft: u64,
    /// Hard limit: the ceiling an unprivileged process can raise its soft limit to.
    pub hard: u64,
}

/// Open files a run of `clients` clients needs: [`FDS_PER_CLIENT`] each (both ends are in this
/// process) plus [`FD_HEADROOM`].
pub fn fds_needed(clients: usize) -> u64 {
    clients as u64 * FDS_PER_CLIENT + FD_HEADROOM
}

/// The open-file limit is too low for the run; nothing this process can do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{clients} clients need about {needed} open files ({FDS_PER_CLIENT} per client because the gateway \
     and the clients share this process, plus {FD_HEADROOM} spare), but the open-file limit is {soft} \
     (hard limit {hard}). Raise the hard limit: `ulimit -Hn {needed}` (as root, or in \
     /etc/security/limits.conf), `LimitNOFILE={needed}` in the systemd unit, or `--ulimit \
     nofile={needed}` for docker; then `ulimit -n {needed}` in the shell that runs the test"
)]
pub struct FdShortage {
    /// Clients asked for.
    pub clients: usize,
    /// Descriptors they need ([`fds_needed`]).
    pub needed: u64,
    /// Soft limit in force.
    pub soft: u64,
    /// Hard limit in force.
    pub hard: u64,
}

impl NofileLimit {
    /// Whether `clients` clients fit under the soft limit; the error says what to raise and how.
    pub fn check(&self, clients: usize) -> Result<(), FdShortage> {
        let needed = fds_needed(clients);
        if needed <= self.soft {
            Ok(())
        } else {
            Err(FdShortage {
                clients,
                needed,
                soft: self.soft,
                hard: self.hard,
            })
        }
    }
}

impl fmt::Display for NofileLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "open files: soft {} (was {}), hard {}",
            self.soft, self.soft_before, self.hard
        )
    }
}

/// Raises the open-file soft limit to the hard limit (`setrlimit(RLIMIT_NOFILE)`), which any process
/// may do, and reports both. Whether that is enough is [`NofileLimit::check`]'s question.
#[cfg(unix)]
#[allow(clippy::unnecessary_cast)] // rlim_t is u64 on Linux but not on every unix.
pub fn raise_nofile_limit() -> io::Result<NofileLimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let soft_before = lim.rlim_cur as u64;
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("setrlimit(RLIMIT_NOFILE, {}): {e}", lim.rlim_max),
            ));
        }
        lim = raised;
    }
    Ok(NofileLimit {
        soft_before,
        soft: lim.rlim_cur as u64,
        hard: lim.rlim_max as u64,
    })
}

/// Raises the open-file limit (unix only).
#[cfg(not(unix))]
pub fn raise_nofile_limit() -> io::Result<NofileLimit> {
    Err(io::Error::new(io::ErrorKind::Unsupported, "RLIMIT_NOFILE is unix only"))
}

/// The kernel's ephemeral port range (`/proc/sys/net/ipv4/ip_local_port_range`), to choose a
/// `per_address` cap for [`source_ip`] below its size.
pub fn ephemeral_ports() -> io::Result<RangeInclusive<u16>> {
    let text = read_proc("/proc/sys/net/ipv4/ip_local_port_range")?;
    let mut it = text.split_whitespace().map(str::parse::<u16>);
    match (it.next(), it.next()) {
        (Some(Ok(lo)), Some(Ok(hi))) if lo <= hi => Ok(lo..=hi),
        _ => Err(invalid(format!(
            "ip_local_port_range: expected two ports, got {text:?}"
        ))),
    }
}

/// Source address for client `client` (0-based) when each address carries at most `per_address`
/// clients: clients `0..per_address` use 127.0.0.1, the next `per_address` 127.0.0.2, and so on.
/// `None` when `per_address` is 0 or the client would need an address past 127.255.255.254.
pub fn source_ip(client: usize, per_address: usize) -> Option<Ipv4Addr> {
    let index = client.checked_div(per_address)?;
    // 127.0.0.1 + index must stay inside 127.0.0.0/8 and below its broadcast address.
    let host = u32::try_from(index).ok()?.checked_add(1)?;
    if host >= 0x00ff_ffff {
        return None;
    }
    Some(Ipv4Addr::from(0x7f00_0000 | host))
}

/// How many loopback source addresses `clients` clients take at `per_address` each.
pub fn source_ips_needed(clients: usize, per_address: usize) -> usize {
    if per_address == 0 {
        0
    } else {
        clients.div_ceil(per_address)
    }
}

/// Opens a TCP connection to `dst` from `src` (any free port), so that clients spread over several
/// loopback addresses ([`source_ip`]) do not run out of ephemeral ports on one of them.
pub async fn connect_from(src: IpAddr, dst: SocketAddr) -> io::Result<TcpStream> {
    let socket = match src {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket
        .bind(SocketAddr::new(src, 0))
        .map_err(|e| io::Error::new(e.kind(), format!("bind {src}:0: {e}")))?;
    socket
        .connect(dst)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("connect {src} -> {dst}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_ip_boundaries() {
        assert_eq!(source_ip(0, 3), Some(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(source_ip(2, 3), Some(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(source_ip(3, 3), Some(Ipv4Addr::new(127, 0, 0, 2)));
        assert_eq!(source_ip(255 * 3, 3), Some(Ipv4Addr::new(127, 0, 1, 0)));
        assert_eq!(source_ip(0x00ff_fffd, 1), Some(Ipv4Addr::new(127, 255, 255, 254)));
        assert_eq!(source_ip(0x00ff_fffe, 1), None);
        assert_eq!(source_ip(5, 0), None);
        assert_eq!(source_ips_needed(28_001, MAX_CONNECTIONS_PER_SOURCE), 2);
    }

    #[test]
    fn fd_shortage_names_what_to_raise() {
        let lim = NofileLimit {
            soft_before: 1024,
            soft: 4096,
            hard: 4096,
        };
        assert!(lim.check(2000).is_ok());
        let err = lim.check(5000).unwrap_err();
        assert_eq!(err.needed, 10_064);
        let msg = err.to_string();
        assert!(
            msg.contains("ulimit -Hn 10064") && msg.contains("LimitNOFILE=10064"),
            "{msg}"
        );
    }
}
