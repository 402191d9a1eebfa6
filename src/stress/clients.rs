//! The stress fleet's clients: each one a real [`Client`] (the type `jt808-harness client` runs)
//! on its own session, bound to its own loopback source address when the gateway is on loopback,
//! and the command loop that gives each one a platform command to deliver every interval.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use super::book::COMMAND_ID;
use super::feed::phone_of;
use super::options::StressOpts;
use super::outcome::StressError;
use super::sys;
use crate::client::{Client, ClientError, Events, TcpConnector};
use crate::codec::body::{Body, RawBody};
use crate::codec::{Message, Version};

/// Width of one slot of the command loop: commands are spread over the slots of an interval.
pub const COMMAND_SLOT: Duration = Duration::from_millis(100);

/// The command client `id` sends: [`COMMAND_ID`] with one parameter (0x0001 terminal heartbeat
/// interval, 4 bytes, 30 s).
pub fn command_message(id: usize) -> Message {
    let body = vec![1, 0, 0, 0, 1, 4, 0, 0, 0, 30];
    Message::new(
        COMMAND_ID,
        Version::V2013,
        phone_of(id),
        0,
        Body::Raw(RawBody { raw: body }),
    )
}

/// Starts client `id` on `url`: from its loopback source address ([`sys::source_ip`]) when the
/// gateway is on an IPv4 loopback address, by plain TCP to the URL's host otherwise.
pub(crate) fn start_client(
    opts: &StressOpts,
    id: usize,
    dst: Option<SocketAddr>,
    url: &str,
) -> Result<(Client, Events), StressError> {
    let cfg = opts.client_config(id);
    match dst {
        Some(dst) if dst.ip().is_loopback() && dst.is_ipv4() => {
            let slot = id + opts.source_offset.saturating_mul(opts.per_source);
            let src = sys::source_ip(slot, opts.per_source).ok_or(StressError::NoSourceAddress {
                client: id,
                per_source: opts.per_source,
            })?;
            let connector = move || async move {
                let s = sys::connect_from(IpAddr::V4(src), dst).await?;
                s.set_nodelay(true)?;
                Ok(s)
            };
            Ok(Client::with_connector(connector, url, cfg))
        }
        _ => {
            let c = TcpConnector::from_url(url).map_err(ClientError::from)?;
            Ok(Client::with_connector(c, url, cfg))
        }
    }
}

/// The socket address of a `ws://IP:PORT/...` URL, if it names one (a host name does not).
pub(crate) fn external_addr(url: &str) -> Option<SocketAddr> {
    let rest = url.strip_prefix("ws://")?;
    let host = rest.split('/').next()?;
    host.parse().ok()
}

/// Commands queued per client by a storm phase of `duration` with one command per `interval`:
/// slot `t` (1, 2, ... up to `duration / COMMAND_SLOT`) sends to the clients whose global id is
/// `t` modulo the slots per interval (by global id). Fixed by the options alone, so two shards of a fleet send
/// exactly what one unsharded run sends.
pub fn command_slots(duration: Duration, interval: Duration) -> Option<(usize, usize)> {
    if interval.is_zero() {
        return None;
    }
    let slots = (interval.as_millis() / COMMAND_SLOT.as_millis()).max(1) as usize;
    let ticks = (duration.as_millis() / COMMAND_SLOT.as_millis()) as usize;
    Some((slots, ticks))
}

/// Queues the commands of [`command_slots`]: slot `t` at `t × COMMAND_SLOT` after the call (so the
/// first commands are not sent at the very instant of the idle reading). A slot that comes late
/// still sends its commands: the count never depends on timing.
pub(crate) async fn command_loop(clients: Arc<Vec<Client>>, ids: Vec<usize>, duration: Duration, interval: Duration) {
    let Some((slots, ticks)) = command_slots(duration, interval) else {
        return;
    };
    let start = tokio::time::Instant::now();
    for t in 1..=ticks {
        tokio::time::sleep_until(start + COMMAND_SLOT * t as u32).await;
        for (j, c) in clients.iter().enumerate() {
            if ids[j] % slots == t % slots {
                // A full queue is an event the collector counts as a problem.
                let _ = c.send(command_message(ids[j]));
            }
        }
    }
}
