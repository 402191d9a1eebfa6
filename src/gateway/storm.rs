//! Which connections a storm drops: a seeded choice shared by the gateway's control API
//! (`POST /storm`) and `stress` (its storms), so both pick the same victims from the same live
//! set and seed.

use rand::RngExt as _;
use rand_chacha::ChaCha8Rng;

/// The clients a storm drops: `round(fraction × live.len())` of `live` (sorted client ids), chosen
/// by a partial Fisher-Yates shuffle with `rng`, returned sorted. The same live set and seed always
/// give the same choice.
pub fn choose_victims(live: &[usize], fraction: f64, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let mut ids = live.to_vec();
    ids.sort_unstable();
    let count = ((fraction.clamp(0.0, 1.0) * ids.len() as f64).round() as usize).min(ids.len());
    for i in 0..count {
        let k = rng.random_range(i..ids.len());
        ids.swap(i, k);
    }
    ids.truncate(count);
    ids.sort_unstable();
    ids
}
