//! The stress run itself: the real [`crate::gateway::Gateway`] over loopback TCP (in this process,
//! in a child process, or external) and N real clients, each on its own gateway session `/c/<id>`,
//! through disconnect storms; the observations go into a [`super::metrics::Metrics`] and come out
//! as [`super::metrics::RunFigures`].
//!
//! The run, in order (one method of `Fleet` each):
//! 1. `Fleet::start`: the open-file limit is raised and checked (each connection costs this
//!    process two descriptors when the gateway is in it, see [`sys::FDS_PER_CLIENT`]); the gateway
//!    starts on `127.0.0.1:0` (or in a child process, or not at all for `--url`).
//! 2. `Fleet::ramp`: the idle baseline RSS is read, then clients start at
//!    [`StressOpts::connect_rate`] per second. Each session's [`super::feed::StressFeed`] offers
//!    the client numbered 0x0200 frames, one per [`StressOpts::frame_interval`].
//! 3. `Fleet::idle_reading`: once every client is connected and [`StressOpts::settle`] has
//!    passed, the idle-connected RSS is read (both readings after trimming the heap): memory per
//!    idle connection. The storm phase of [`StressOpts::duration`] starts.
//! 4. `Fleet::storm_phase`: each client queues a 0x8103 platform command every
//!    [`StressOpts::command_interval`] (the feed answers it with 0x0001, as a terminal would); each
//!    [`StormSpec`] fires every `every` seconds, picks `fraction` of the live connections (a seeded
//!    choice over their sorted client ids, so a seed picks the same clients every time) and drops
//!    them.
//! 5. `Fleet::drain`: no new commands, the feeds stop offering frames; the run waits until every
//!    client is connected, has every frame offered and every command confirmed, or
//!    [`StressOpts::drain_timeout`] passes. Then the figures are computed and everything is shut
//!    down (`Fleet::finish`).
//!
//! A message that is not the stress feed ends the run at once with
//! [`StressError::NotStressFeed`]: the gateway serves something else, and nothing it sends could be
//! counted.
//!
//! Attempts: the figures count *re*connection attempts (a client's attempt 2, 3, ...), the load the
//! backoff puts on the gateway; first attempts follow the ramp and are left out.
//!
//! Times: every observation is a `Duration` since the run started. A client event's time is the
//! client's start offset plus the event's own `t_ms` (so a lagging collector does not stretch the
//! figures); an event is never placed before the storm that caused it (storms are recorded before
//! the connections are told to drop, and a dropped client's later events are clamped to the storm's
//! time, which the millisecond resolution of `t_ms` could otherwise undercut).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::book::{Shared, add_samples, collect};
use super::clients::{command_loop, external_addr, start_client};
use super::feed::{frames_before, phase_of, session_path};
use super::options::{GatewayPlacement, StormSpec, StressOpts, storm_schedule};
use super::outcome::{Outcome, SideMemory, StressError};
use super::phase::Phases;
use super::side::{ChildGateway, GatewaySide, check_one_per_client, start_local_gateway, trim_heap};
use super::sys::{self, ResourceSample};
use crate::client::Client;

/// How often the waiting loops look at the book.
const POLL: Duration = Duration::from_millis(50);

/// One run in progress: its options, its clients and the gateway side.
struct Fleet {
    opts: StressOpts,
    ids: Vec<usize>,
    url: String,
    shared: Arc<Shared>,
    side: GatewaySide,
    phases: Phases,
    problems: Vec<String>,
    nofile: Option<sys::NofileLimit>,
    clients: Arc<Vec<Client>>,
    collector: Option<JoinHandle<()>>,
}

/// Runs one stress run (one jitter setting) and returns what it measured. See the module doc for
/// the phases.
pub async fn run(opts: StressOpts) -> Result<Outcome, StressError> {
    let mut fleet = Fleet::start(opts).await?;
    let own_base = fleet.baseline().await;
    fleet.ramp().await?;
    let mut sides = None;
    let mut expected = None;
    let phase_end;
    if fleet.wait_connected().await {
        sides = fleet.idle_reading(own_base).await;
        phase_end = fleet.storm_phase().await?;
        expected = fleet.drain(phase_end).await?;
    }
    fleet.finish(expected, sides).await
}

impl Fleet {
    async fn start(opts: StressOpts) -> Result<Fleet, StressError> {
        let ids = opts.global_ids();
        let n = ids.len();
        if n == 0 {
            return Err(StressError::Options(
                "no clients to run (check --clients and --shard)".into(),
            ));
        }
        if !opts.storms.is_empty() && matches!(opts.gateway, GatewayPlacement::External { .. }) {
            return Err(StressError::Options(
                "storms need the gateway this run starts; with --url only connections, frames and commands are measured (storms on a shared gateway need its control API, not there yet)"
                    .into(),
            ));
        }
        let nofile = sys::raise_nofile_limit().ok();
        if let Some(lim) = &nofile {
            match opts.gateway {
                GatewayPlacement::InProcess => lim.check(n)?,
                _ => check_one_per_client(lim, n)?,
            }
        }
        let side = match &opts.gateway {
            GatewayPlacement::InProcess => {
                GatewaySide::Local(start_local_gateway(opts.seed, opts.feed(), opts.ws_buffer, opts.clients).await?)
            }
            GatewayPlacement::ChildProcess { exe } => {
                GatewaySide::Child(Box::new(ChildGateway::spawn(exe, &opts).await?))
            }
            GatewayPlacement::External { .. } => GatewaySide::External,
        };
        let url = match (&opts.gateway, side.addr()) {
            (GatewayPlacement::External { url }, _) => url.trim_end_matches('/').to_string(),
            (_, Some(addr)) => format!("ws://{addr}"),
            (_, None) => return Err(StressError::Options("the gateway has no address".into())),
        };
        Ok(Fleet {
            shared: Arc::new(Shared::new(&ids)),
            phases: Phases::new(opts.progress),
            opts,
            ids,
            url,
            side,
            problems: Vec::new(),
            nofile,
            clients: Arc::new(Vec::new()),
            collector: None,
        })
    }

    /// The idle baseline: gateway up, no client. This process's reading and the gateway child's.
    async fn baseline(&mut self) -> (Option<ResourceSample>, Option<ResourceSample>) {
        trim_heap();
        let own = sys::sample().ok();
        let gw = self.side.sample(true).await;
        if let Some(s) = own {
            let at = self.shared.now();
            self.shared.book().metrics.mark_idle_baseline(at, add_samples(s, gw));
        }
        (own, gw)
    }

    /// Clients started in batches every 10 ms at `connect_rate` per second.
    async fn ramp(&mut self) -> Result<(), StressError> {
        let n = self.ids.len();
        let dst = self.side.addr().or_else(|| external_addr(&self.url));
        let (new_tx, new_rx) = mpsc::unbounded_channel();
        self.collector = Some(tokio::spawn(collect(self.shared.clone(), new_rx)));
        let per_tick = (self.opts.connect_rate as usize / 100).max(1);
        let mut clients = Vec::with_capacity(n);
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        for (j, &id) in self.ids.iter().enumerate() {
            if j % per_tick == 0 {
                tick.tick().await;
                let b = self.shared.book();
                self.phases
                    .show("starting clients", || format!("{}/{n} connected", b.connected));
                if b.foreign.is_some() {
                    break;
                }
            }
            let url = format!("{}{}", self.url, session_path(id));
            self.shared.book().clients[j].offset = self.shared.now();
            let (client, events) = start_client(&self.opts, id, dst, &url)?;
            let _ = new_tx.send((j, events));
            clients.push(client);
        }
        self.clients = Arc::new(clients);
        Ok(())
    }

    fn foreign(&self) -> bool {
        self.shared.book().foreign.is_some()
    }

    /// Waits for the whole fleet; false when the run cannot go on (the feed is not the stress
    /// feed).
    async fn wait_connected(&mut self) -> bool {
        let n = self.ids.len();
        let wait_until = Instant::now() + self.opts.connect_wait;
        loop {
            let connected = self.shared.book().connected;
            self.phases.show("connecting", || format!("{connected}/{n}"));
            if self.foreign() {
                return false;
            }
            if connected == n {
                break;
            }
            if Instant::now() >= wait_until {
                self.problems.push(format!(
                    "only {connected} of {n} clients connected within {:?}",
                    self.opts.connect_wait
                ));
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        tokio::time::sleep(self.opts.settle).await;
        !self.foreign()
    }

    /// The idle-connected reading: memory per idle connection, of each side when they are apart.
    async fn idle_reading(&mut self, base: (Option<ResourceSample>, Option<ResourceSample>)) -> Option<SideMemory> {
        trim_heap();
        let own_idle = sys::sample().ok()?;
        let gw_idle = self.side.sample(true).await;
        let at = self.shared.now();
        let mut b = self.shared.book();
        let connected = b.connected;
        b.metrics
            .mark_idle_connected(at, add_samples(own_idle, gw_idle), connected);
        match (base, gw_idle) {
            ((Some(ob), Some(gb)), Some(gi)) if connected > 0 => Some(SideMemory {
                client_bytes: own_idle.rss_bytes.saturating_sub(ob.rss_bytes) / connected as u64,
                gateway_bytes: gi.rss_bytes.saturating_sub(gb.rss_bytes) / connected as u64,
            }),
            _ => None,
        }
    }

    async fn sample(&mut self) {
        let gw = self.side.sample(false).await;
        if let Ok(s) = sys::sample() {
            let at = self.shared.now();
            self.shared.book().metrics.resources(at, add_samples(s, gw));
        }
    }

    /// Fires storm `number` (`spec`): records it, then has the gateway drop its victims.
    async fn storm(&mut self, number: usize, spec: &StormSpec) -> Result<(), StressError> {
        let victims = self.side.pick(spec.fraction, self.opts.seed, number).await?;
        let at = self.shared.now();
        {
            let mut b = self.shared.book();
            let local: Vec<usize> = victims.iter().filter_map(|(c, _)| self.opts.local_of(*c)).collect();
            for &j in &local {
                if let Some(c) = b.clients.get_mut(j) {
                    c.floor = at;
                }
            }
            b.metrics.storm(at, spec.mode, spec.fraction, local);
        }
        let conns: Vec<u64> = victims.iter().map(|(_, conn)| *conn).collect();
        self.side.drop_conns(spec.mode, &conns).await
    }

    /// The storm phase, with its commands; returns when it ended (the commands all queued).
    async fn storm_phase(&mut self) -> Result<Instant, StressError> {
        let n = self.ids.len();
        let phase_start = Instant::now();
        let commander = tokio::spawn(command_loop(
            self.clients.clone(),
            self.ids.clone(),
            self.opts.duration,
            self.opts.command_interval,
        ));
        let schedule = storm_schedule(&self.opts.storms, self.opts.duration);
        let (mut next_storm, mut next_sample) = (0, phase_start);
        let phase_end = phase_start + self.opts.duration;
        while Instant::now() < phase_end && !self.foreign() {
            if Instant::now() >= next_sample {
                self.sample().await;
                next_sample += self.opts.sample_every;
            }
            if let Some((at, spec)) = schedule.get(next_storm)
                && Instant::now() >= phase_start + *at
            {
                self.storm(next_storm, spec).await?;
                next_storm += 1;
            }
            {
                let b = self.shared.book();
                self.phases.show("running", || {
                    format!(
                        "storms {next_storm}/{} · connected {}/{n} · attempts {}",
                        schedule.len(),
                        b.connected,
                        b.attempts
                    )
                });
            }
            let wake = [phase_end, next_sample]
                .into_iter()
                .chain(schedule.get(next_storm).map(|(at, _)| phase_start + *at))
                .min()
                .unwrap_or(phase_end);
            tokio::time::sleep_until(wake.min(Instant::now() + Duration::from_millis(200))).await;
        }
        if self.foreign() {
            commander.abort();
        }
        let _ = commander.await;
        Ok(phase_end)
    }

    /// Stops the feeds and waits for every client, frame and confirmation; returns the frames
    /// each client was offered, when this run controls the feeds.
    async fn drain(&mut self, phase_end: Instant) -> Result<Option<Vec<u64>>, StressError> {
        let n = self.ids.len();
        let interval = self.opts.frame_interval;
        let stop_at = self.side.stop_frames(interval).await?;
        let limit = self.opts.frames;
        let expected: Option<Vec<u64>> = match (stop_at, limit) {
            (Some(stop), _) => Some(
                self.ids
                    .iter()
                    .map(|&id| frames_before(stop, phase_of(id, interval), interval).min(limit.unwrap_or(u64::MAX)))
                    .collect(),
            ),
            (None, Some(n)) => Some(vec![n; self.ids.len()]),
            (None, None) => None,
        };
        let drain_until = Instant::now() + self.opts.drain_timeout + interval;
        let mut next_sample = Instant::now();
        while !self.foreign() {
            if Instant::now() >= next_sample {
                self.sample().await;
                next_sample += self.opts.sample_every;
            }
            // The feeds stop one interval from now; frames due before then are still coming.
            let past_stop = phase_end.elapsed() > interval;
            let (done, connected) = {
                let b = self.shared.book();
                (past_stop && b.drained(expected.as_deref()), b.connected)
            };
            self.phases.show("draining", || format!("connected {connected}/{n}"));
            if done {
                break;
            }
            if Instant::now() >= drain_until {
                self.problems.push(format!(
                    "not drained within {:?}: clients down, frames or confirmations still missing",
                    self.opts.drain_timeout
                ));
                let b = self.shared.book();
                self.problems.extend(b.laggards(expected.as_deref(), 5));
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        self.sample().await;
        Ok(expected)
    }

    /// Computes the figures, shuts clients and gateway down, and says whether the feed was wrong.
    async fn finish(mut self, expected: Option<Vec<u64>>, sides: Option<SideMemory>) -> Result<Outcome, StressError> {
        let end = self.shared.now();
        let (run_figures, foreign) = {
            let mut b = self.shared.book();
            if let Some(e) = &expected {
                for (j, count) in e.iter().enumerate() {
                    b.metrics.frames_sent(j, *count);
                }
            }
            self.problems.extend(b.problems.lines());
            (b.metrics.run(self.opts.label.clone(), end), b.foreign.take())
        };
        self.phases.show("shutting down", String::new);
        let stops = self.clients.iter().map(|c| async move {
            let _ = c.shutdown().await;
        });
        let _ = tokio::time::timeout(Duration::from_secs(10), futures_util::future::join_all(stops)).await;
        drop(self.clients);
        self.side.shutdown().await;
        // Every client's event stream ends when its task does; a collector still waiting means a
        // client task outlived its shutdown.
        if let Some(c) = self.collector
            && tokio::time::timeout(Duration::from_secs(5), c).await.is_err()
        {
            tracing::warn!("some clients had not stopped 5 s after the shutdown");
        }
        self.phases.done();
        if let Some(first) = foreign {
            return Err(StressError::NotStressFeed { url: self.url, first });
        }
        Ok(Outcome {
            run: run_figures,
            problems: self.problems,
            nofile: self.nofile,
            sides,
        })
    }
}
