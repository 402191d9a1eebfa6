//! A fleet terminal's route: where it is and how it moves (speed towards a target, stops, heading,
//! altitude, odometer and fuel), and the 0x0200 location it reports from there. Driven by the
//! terminal's own seeded RNG, so the same seed drives the same way.

use rand::RngExt;
use rand_chacha::ChaCha8Rng;

use crate::codec::Version;
use crate::codec::body::{ItemValue, Location, LocationItem, LocationItems};
use crate::gateway::terminal::sim_time;

/// Where a terminal is and how it moves.
#[derive(Debug, Clone)]
pub(super) struct Route {
    /// Degrees, north positive.
    lat: f64,
    /// Degrees, east positive.
    lng: f64,
    /// Degrees clockwise from north.
    heading: f64,
    /// km/h.
    speed: f64,
    /// Speed the driver is heading for, km/h.
    target: f64,
    /// Metres.
    altitude: f64,
    /// Metres driven.
    odometer: f64,
    /// Litres.
    fuel: f64,
    /// Seconds stopped still to wait (a red light).
    stop_for: f64,
}

/// Metres per degree of latitude.
const M_PER_DEG: f64 = 111_320.0;

impl Route {
    pub(super) fn new(rng: &mut ChaCha8Rng) -> Route {
        // Somewhere around Shenzhen (22.54 N, 114.06 E): plausible for a JT808 fleet.
        Route {
            lat: 22.54 + rng.random_range(-0.2..0.2),
            lng: 114.06 + rng.random_range(-0.3..0.3),
            heading: rng.random_range(0.0..360.0),
            speed: 0.0,
            target: rng.random_range(30.0..80.0),
            altitude: rng.random_range(5.0..120.0),
            odometer: rng.random_range(10_000.0..500_000_000.0),
            fuel: rng.random_range(80.0..400.0),
            stop_for: 0.0,
        }
    }

    /// Drives `dt` seconds: the speed eases toward a target that changes now and then, the
    /// heading drifts and sometimes turns, and the odd red light stops the vehicle.
    pub(super) fn advance(&mut self, rng: &mut ChaCha8Rng, dt: f64) {
        if dt <= 0.0 {
            return;
        }
        if self.stop_for > 0.0 {
            self.stop_for -= dt;
            self.speed = 0.0;
            return;
        }
        if rng.random_bool(0.05) {
            self.stop_for = rng.random_range(10.0..60.0);
            self.speed = 0.0;
            return;
        }
        if rng.random_bool(0.1) {
            self.target = rng.random_range(20.0..110.0);
        }
        let accel = (self.target - self.speed).clamp(-8.0 * dt, 5.0 * dt);
        self.speed = (self.speed + accel + rng.random_range(-1.0..1.0)).clamp(0.0, 130.0);
        self.heading += if rng.random_bool(0.08) {
            if rng.random_bool(0.5) { 90.0 } else { -90.0 }
        } else {
            rng.random_range(-8.0..8.0)
        };
        self.heading = self.heading.rem_euclid(360.0);
        let metres = self.speed / 3.6 * dt;
        let rad = self.heading.to_radians();
        self.lat += metres * rad.cos() / M_PER_DEG;
        self.lng += metres * rad.sin() / (M_PER_DEG * self.lat.to_radians().cos());
        self.altitude = (self.altitude + rng.random_range(-2.0..2.0)).clamp(0.0, 3000.0);
        self.odometer += metres;
        // About 10 L/100 km, refilled when low.
        self.fuel -= metres / 10_000.0;
        if self.fuel < 20.0 {
            self.fuel = 400.0;
        }
    }

    /// The basic block at virtual second `secs` (no items).
    pub(super) fn basic(&self, secs: u64) -> Location {
        // Status (JT808.md §5.3): bit 0 ACC on, bit 1 positioned, bit 18 GPS, bit 19 BeiDou; bits 2
        // and 3 stay clear (north, east). Alarm bit 1 overspeed above 100 km/h (§5.2).
        let status = 1 | 1 << 1 | 1 << 18 | 1 << 19;
        let alarm = if self.speed > 100.0 { 1 << 1 } else { 0 };
        Location {
            alarm,
            status,
            lat: (self.lat * 1e6).round() as u32,
            lng: (self.lng * 1e6).round() as u32,
            altitude: self.altitude.round() as u16,
            speed: (self.speed * 10.0).round() as u16,
            direction: (self.heading.round() as u16) % 360,
            time: sim_time(secs),
            items: LocationItems::new(),
            issues: Vec::new(),
        }
    }

    /// The full 0x0200 report, with the additional items of the module doc.
    pub(super) fn report(&self, secs: u64, version: Version, rng: &mut ChaCha8Rng) -> Location {
        let mut loc = self.basic(secs);
        let braking = u32::from(self.speed < self.target - 5.0);
        let mut items = vec![
            (0x01, ItemValue::Mileage((self.odometer / 100.0) as u32)),
            (0x02, ItemValue::Fuel((self.fuel * 10.0) as u16)),
            (0x03, ItemValue::RecorderSpeed((self.speed * 10.0).round() as u16)),
            (0x14, ItemValue::VideoAlarm(0)),
            (0x15, ItemValue::VideoSignalLoss(0)),
            (0x16, ItemValue::VideoOcclusion(0)),
            (0x17, ItemValue::StorageFault(0)),
            // Extended vehicle signal bit 4: braking.
            (0x25, ItemValue::VehicleSignal(braking << 4)),
            (0x2A, ItemValue::IoStatus(0)),
            (
                0x2B,
                ItemValue::Analog(rng.random_range(0..4096u32) | rng.random_range(0..4096u32) << 16),
            ),
            (0x30, ItemValue::SignalStrength(rng.random_range(8..32))),
            (0x31, ItemValue::Satellites(rng.random_range(6..21))),
        ];
        if version.is_2019() {
            items.push((0x06, ItemValue::CompartmentTemp(rng.random_range(180..280))));
        }
        loc.items = items
            .into_iter()
            .map(|(id, value)| LocationItem { id, value })
            .collect();
        loc
    }
}
