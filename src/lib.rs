//! jt808-harness: a record-and-replay test harness for JT/T 808 (with JT/T 1078) WebSocket clients.
//!
//! Map of the code:
//! - [`cli`]: the commands behind the binary.
//! - [`codec`]: sans-IO JT/T 808 (deframer, escapes, XOR check, headers, reassembly, typed bodies, encoder).
//! - [`client`]: the real reconnecting decoder client (backoff with jitter, heartbeat, send queue).
//! - [`gateway`]: the simulated terminal gateway (WebSocket server, sources, terminal script).
//! - [`explore`]: fault-schedule search and shrinking to a reproducer scenario.
//! - [`faults`]: the fault catalogue applied between gateway and client.
//! - [`capture`]: capture format, recording proxy, pcap import, redaction, inspection.
//! - [`scenario`]: scenario files and the runner that turns them into transcripts.
//! - [`stress`]: reconnection at scale.
//! - [`transcript`]: the deterministic record of a run, YAML for insta.
//! - [`transport`]: TCP or in-memory pipes under the WebSockets.
#![warn(missing_docs)]

pub mod capture;
pub mod cli;
pub mod client;
pub mod codec;
pub mod explore;
pub mod faults;
pub mod gateway;
pub mod procstat;
pub mod scenario;
pub mod stress;
pub mod transcript;
pub mod transport;
